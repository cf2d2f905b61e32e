"""The command line every study script in ``simulations/`` shares: --config, --out, --set, --resume."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable

from fedhar.config import ExperimentConfig, load_config
from fedhar.exceptions import FedharError

Runner = Callable[[ExperimentConfig, "str | None", bool], dict]


def study_main(doc: str, pick_runner: Callable[[ExperimentConfig], Runner], argv: list[str] | None = None,
               prog: str = "study") -> int:
    """Parse arguments, run the study, print its ``report.md``; FedharErrors exit 2 with one line."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", required=True, help="experiment YAML")
    ap.add_argument("--out", default=None, help="run folder (default: runs/<name>-<time>)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set train.epochs=1")
    ap.add_argument("--resume", action="store_true", help="continue the study in --out, keeping finished work")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("flwr").propagate = False
    try:
        cfg = load_config(args.config, args.overrides)
        results = pick_runner(cfg)(cfg, args.out, args.resume)
    except FedharError as exc:
        print(f"{prog}: error: {exc.reason}", file=sys.stderr)
        return 2
    print((Path(results["run_dir"]) / "report.md").read_text())
    print(f"run folder: {results['run_dir']}")
    return 0
