"""Continual adaptation under device, placement and class drift, central or federated.

    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_placement.yaml --out runs/continual
    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_federated.yaml --out runs/continual_fed

Writes config.yaml, results.json (``runs[*].continual.{acc,bwt,forgetting,fwt,matrix}`` per
model and strategy), metrics.csv, report.md, matrices.png and accuracy_over_time.png into the
run folder. ``--resume`` continues an interrupted study in the same folder, keeping what finished.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study continual ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "continual", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
