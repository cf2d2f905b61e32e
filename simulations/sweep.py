"""One config value swept over a list (LoRA rank, label budget, ...), for several models.

    FEDHAR_DATA_DIR=../shared/data python simulations/sweep.py --config configs/sweep_rank.yaml --out runs/sweep_rank
    FEDHAR_DATA_DIR=../shared/data python simulations/sweep.py --config configs/sweep_labels.yaml --out runs/sweep_labels

Each point is a central run of the configured experiment; writes config.yaml, results.json,
metrics.csv, report.md (macro-F1, trainable parameters, training time) and sweep.png.
"""

from __future__ import annotations

from fedhar.reporting.study import study_main


def runner(cfg):
    from fedhar.training.sweep import run_sweep

    return lambda c, out, resume: run_sweep(c, out, resume=resume)


def main(argv: list[str] | None = None) -> int:
    return study_main(__doc__, runner, argv, prog="sweep")


if __name__ == "__main__":
    raise SystemExit(main())
