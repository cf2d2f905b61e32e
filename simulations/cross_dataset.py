"""Cross-dataset federated rounds: leave-one-dataset-out with zero-shot and few-shot adaptation.

    FEDHAR_DATA_DIR=../shared/data python simulations/cross_dataset.py --config configs/lodo.yaml --out runs/lodo

For each held-out dataset the others train one federation per model variant (pretrained LLM,
random-init LLM, no LLM, from-scratch Transformer); the global model is then scored on the
held-out dataset zero-shot and after adapting the head, or head + LoRA + frontend, on k = 1, 5,
10 windows per class and 1%, 10%, 100% of its training windows. A random forest runs beside
them. Writes config.yaml, results.json, metrics.csv, report.md and f1_vs_budget.png;
``--resume`` keeps every finished (held-out dataset, variant).

With ``lodo.protocol: mae`` (configs/mae_lodo.yaml) each fold instead pretrains a masked
autoencoder on the other datasets' unlabelled windows and fine-tunes it on the held-out one.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study cross_dataset ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "cross_dataset", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
