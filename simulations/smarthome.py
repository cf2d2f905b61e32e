"""Smart-home HAR from sensor events as text, with teacher-to-student distillation.

    FEDHAR_DATA_DIR=../shared/data python simulations/smarthome.py --config configs/smarthome_ordonez.yaml --out runs/smarthome
    FEDHAR_DATA_DIR=../shared/data python simulations/smarthome.py --config configs/smarthome_federated.yaml --out runs/smarthome_fed

``smarthome.mode: central``: per home (chronological split by day), macro-F1 and accuracy of
zero-shot LLM scoring, a random forest on sensor counts + hour, a LoRA teacher (all 30 blocks),
a LoRA student (few blocks) trained directly, and the same student distilled from the teacher;
plus parameters, weight memory and inference time of teacher and student.
``smarthome.mode: federated``: the homes as Flower clients against each home's own model.
Writes config.yaml, results.json, metrics.csv, report.md and macro_f1.png.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study smarthome ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "smarthome", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
