"""Heterogeneous devices (issue 20): global and per-tier macro-F1, bytes and simulated time per fleet setup.

    FEDHAR_DATA_DIR=../shared/data python simulations/devices.py --config configs/devices.yaml --out runs/devices

Every setup (a fleet of device tiers and its aggregation rule) is an ordinary `simulate` run folder
under points/seed_<s>/; the top folder holds results.json, metrics.csv, report.md and devices.png
with mean ± std over seeds. ``--resume`` continues in the same folder, keeping what finished.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study devices ...``."""
    return fedhar_main(["study", "devices", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
