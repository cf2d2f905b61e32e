"""Give the LLM its best shot: language couplings screened, then confirmed over seeds (issue 18).

    FEDHAR_DATA_DIR=../shared/data python simulations/llm_couplings.py --config configs/llm_couplings.yaml --out runs/llm_couplings

Writes screen/ (one seed, one held-out dataset, every coupling) and confirm/ (the best couplings,
their random-init twins and the baselines over every held-out dataset and seed) as ordinary
cross-dataset run folders, and in the top folder results.json, metrics.csv and report.md with the
verdicts. ``--resume`` continues in the same folder, keeping what finished.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study llm_couplings ...``."""
    return fedhar_main(["study", "llm_couplings", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
