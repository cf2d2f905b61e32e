"""Fine-tune chosen parts of a trained model on a small labelled set, with the one training loop.

Shared by few-shot adaptation on a held-out dataset and by on-device personalisation, so both
measure the same thing: seconds spent, and the parameters and bytes that changed on the device.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping, Sequence

import torch

from fedhar.data.dataset import WindowDataset
from fedhar.models.har_model import HARModel
from fedhar.training.config import TrainConfig
from fedhar.training.loop import fit
from fedhar.transfer.config import AdaptConfig


def adapt_train_config(base: TrainConfig, acfg: AdaptConfig, trainable: Sequence[str], n: int) -> TrainConfig:
    """``base`` with the adaptation's epochs (at least ``min_steps`` steps), batch size and lr."""
    batch = min(acfg.batch_size, max(1, n))
    steps_per_epoch = max(1, math.ceil(n / batch))
    epochs = max(acfg.epochs, math.ceil(acfg.min_steps / steps_per_epoch))
    if acfg.max_steps is not None:
        epochs = min(epochs, max(1, acfg.max_steps // steps_per_epoch))
    return dataclasses.replace(base, epochs=epochs, batch_size=batch, lr=acfg.lr, weight_decay=acfg.weight_decay,
                               trainable=list(trainable), progress=False, eval_every=epochs)


def adapt(model: HARModel, start: Mapping[str, torch.Tensor], data: WindowDataset, trainable: Sequence[str],
          base: TrainConfig, acfg: AdaptConfig, seed: int = 0, desc: str = "adapt") -> dict:
    """Load ``start`` into ``model`` and fine-tune ``trainable`` parts on ``data`` (in place).

    Returns seconds, epochs, and the parameters and bytes that training may change (the
    personal state a device would store).
    """
    model.load_trainable_state(start, where="adaptation start state")
    tcfg = adapt_train_config(base, acfg, trainable, len(data))
    model.set_trainable(tuple(trainable))
    changed = [p for p in model.parameters() if p.requires_grad]
    t0 = time.perf_counter()
    history = fit(model, data, tcfg, seed=seed, desc=desc)
    return {
        "seconds": time.perf_counter() - t0,
        "epochs": tcfg.epochs,
        "train_loss": history[-1]["train_loss"],
        "params_changed": int(sum(p.numel() for p in changed)),
        "bytes_changed": int(sum(p.numel() * p.element_size() for p in changed)),
    }


def changed_state(model: HARModel, trainable: Sequence[str]) -> dict[str, torch.Tensor]:
    """The entries of ``model``'s trainable state that ``trainable`` parts own (what to store)."""
    from fedhar.federated.personal import personal_keys

    state = model.trainable_state()
    return {k: state[k] for k in personal_keys(state.keys(), trainable)}
