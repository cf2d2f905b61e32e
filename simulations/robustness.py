"""Privacy and robustness on the wire (issue 19): macro-F1 under attack per aggregation rule, and against epsilon.

    FEDHAR_DATA_DIR=../shared/data python simulations/robustness.py --config configs/robustness.yaml --out runs/robustness

Every point (rule x attack x fraction, and each epsilon) is an ordinary `simulate` run folder under
points/seed_<s>/; the top folder holds results.json, metrics.csv, report.md, attack_<kind>.png and
privacy.png with mean ± std over seeds. ``--resume`` continues in the same folder, keeping what finished.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study robustness ...``."""
    return fedhar_main(["study", "robustness", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
