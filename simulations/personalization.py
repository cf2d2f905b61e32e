"""On-device personalisation after federated training, per client.

    FEDHAR_DATA_DIR=../shared/data python simulations/personalization.py --config configs/personalization.yaml --out runs/pers

Trains the federated global model, then every client fine-tunes the head, LoRA + head, or
frontend + LoRA + head on its own training split and is tested on the rest of its windows; a
FedPer federation (head kept local from the start) runs beside them. Reports per client the
global and personalised macro-F1, the gain, the seconds and the parameters and bytes changed on
the device, and plots the gain distribution (gains.png). Personal state is saved per client.
"""

from __future__ import annotations

import sys

from fedhar.cli import main as fedhar_main


def main(argv: list[str] | None = None) -> int:
    """``fedhar study personalization ...``, kept so that documented commands still work."""
    return fedhar_main(["study", "personalization", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
