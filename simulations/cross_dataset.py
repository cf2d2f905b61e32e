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

from fedhar.reporting.study import study_main


def runner(cfg):
    if cfg.lodo.protocol == "mae":
        from fedhar.transfer.mae_lodo import run_mae_lodo

        return lambda c, out, resume: run_mae_lodo(c, out, resume=resume)
    from fedhar.transfer.lodo import run_lodo

    return lambda c, out, resume: run_lodo(c, out, resume=resume)


def main(argv: list[str] | None = None) -> int:
    return study_main(__doc__, runner, argv, prog="cross_dataset")


if __name__ == "__main__":
    raise SystemExit(main())
