"""Teacher-to-student distillation on sensor windows (or any windowed data).

    FEDHAR_DATA_DIR=../shared/data python simulations/distill.py --config configs/distill_uci.yaml --out runs/distill_uci

Trains the teacher (e.g. SmolLM2 with all 30 blocks + LoRA), computes its logits on the training
windows once (cached in the run folder), then the student (a few blocks, or no LLM) twice from
the same initialisation: on the labels alone, and on labels + the teacher's softened logits
(``distill.kd``). Reports macro-F1 and accuracy of all three, and parameters, weight memory and
inference time of teacher and student. Writes config.yaml, results.json, metrics.csv, report.md
and macro_f1.png.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study distill ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "distill", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
