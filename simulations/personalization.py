"""On-device personalisation after federated training, per client.

    FEDHAR_DATA_DIR=../shared/data python simulations/personalization.py --config configs/personalization.yaml --out runs/pers

Trains the federated global model, then every client fine-tunes the head, LoRA + head, or
frontend + LoRA + head on its own training split and is tested on the rest of its windows; a
FedPer federation (head kept local from the start) runs beside them. Reports per client the
global and personalised macro-F1, the gain, the seconds and the parameters and bytes changed on
the device, and plots the gain distribution (gains.png). Personal state is saved per client.
"""

from __future__ import annotations

from fedhar.reporting.study import study_main


def runner(cfg):
    from fedhar.transfer.personalize import run_personalization

    return lambda c, out, resume: run_personalization(c, out, resume=resume)


def main(argv: list[str] | None = None) -> int:
    return study_main(__doc__, runner, argv, prog="personalization")


if __name__ == "__main__":
    raise SystemExit(main())
