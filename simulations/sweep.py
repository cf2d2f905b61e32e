"""One config value swept over a list (LoRA rank, label budget, ...), for several models.

    FEDHAR_DATA_DIR=../shared/data python simulations/sweep.py --config configs/sweep_rank.yaml --out runs/sweep_rank
    FEDHAR_DATA_DIR=../shared/data python simulations/sweep.py --config configs/sweep_labels.yaml --out runs/sweep_labels

Each point is a central run of the configured experiment; writes config.yaml, results.json,
metrics.csv, report.md (macro-F1, trainable parameters, training time) and sweep.png.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study sweep ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "sweep", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
