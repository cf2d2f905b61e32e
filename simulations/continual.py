"""Continual adaptation under device, placement and class drift, central or federated.

    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_placement.yaml --out runs/continual
    FEDHAR_DATA_DIR=../shared/data python simulations/continual.py --config configs/continual_federated.yaml --out runs/continual_fed

Writes config.yaml, results.json (``runs[*].continual.{acc,bwt,forgetting,fwt,matrix}`` per
model and strategy), metrics.csv, report.md, matrices.png and accuracy_over_time.png into the
run folder. ``--resume`` continues an interrupted study in the same folder, keeping what finished.
"""

from __future__ import annotations

from fedhar.reporting.study import study_main


def runner(cfg):
    if cfg.continual.mode == "federated":
        from fedhar.continual.federated import run_continual_federated

        return lambda c, out, resume: run_continual_federated(c, out, resume=resume)
    from fedhar.continual.experiment import run_continual

    return lambda c, out, resume: run_continual(c, out, resume=resume)


def main(argv: list[str] | None = None) -> int:
    return study_main(__doc__, runner, argv, prog="continual")


if __name__ == "__main__":
    raise SystemExit(main())
