"""Continual adaptation under device, placement and class drift, central or federated.

    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_placement.yaml --out runs/continual
    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_federated.yaml --out runs/continual_fed

Writes config.yaml, results.json (``runs[*].continual.{acc,bwt,forgetting,fwt,matrix}`` per
model and strategy), metrics.csv, report.md, matrices.png and accuracy_over_time.png into the
run folder. ``--resume`` continues an interrupted study in the same folder, keeping what finished.
"""

from __future__ import annotations

import argparse
import logging
import sys

from fedhar.config import load_config
from fedhar.exceptions import FedharError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="experiment YAML with a `continual:` section")
    ap.add_argument("--out", default=None, help="run folder (default: runs/<name>-<time>)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.epochs=1")
    ap.add_argument("--resume", action="store_true", help="continue the study in --out, keeping finished runs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("flwr").propagate = False
    try:
        cfg = load_config(args.config, args.overrides)
        if cfg.continual.mode == "federated":
            from fedhar.continual.federated import run_continual_federated

            results = run_continual_federated(cfg, args.out, resume=args.resume)
        else:
            from fedhar.continual.experiment import run_continual

            results = run_continual(cfg, args.out, resume=args.resume)
    except FedharError as exc:
        print(f"continual: error: {exc.reason}", file=sys.stderr)
        return 2
    from pathlib import Path

    print((Path(results["run_dir"]) / "report.md").read_text())
    print(f"run folder: {results['run_dir']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
