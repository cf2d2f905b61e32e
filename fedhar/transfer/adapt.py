"""Fine-tune chosen parts of a trained model on a small labelled set, with the one training loop.

Shared by few-shot adaptation on a held-out dataset and by on-device personalisation, so both
measure the same thing: seconds spent, optimizer steps taken, and the parameters and bytes that
changed on the device.

How the budget is set (the same rule for every model variant, see :class:`AdaptConfig`):

* **validation** -- when every class of the labelled set has at least ``val_min_per_class``
  windows, ``val_fraction`` of each class (at least one window, never all) is held out. The
  rest trains for at most ``epochs`` passes (at least ``min_steps`` steps, at most
  ``max_steps``); after each epoch the validation macro-F1 is measured, training stops after
  ``patience`` epochs without improvement (once ``min_steps`` steps are done), and the best
  epoch's trainable state is restored. The validation windows are only used to stop.
* **no validation** (too few windows, e.g. k=1 or k=5 per class) -- all labelled windows train
  for ``epochs`` passes, at least ``min_steps`` steps and at most ``max_steps``: a fixed
  ``min_steps`` steps for tiny sets, ``epochs`` passes once the set is large enough.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Mapping, Sequence

import numpy as np
import torch

from fedhar.data.dataset import WindowDataset
from fedhar.models.har_model import HARModel
from fedhar.training.config import TrainConfig
from fedhar.training.loop import EarlyStopping, fit
from fedhar.transfer.config import AdaptConfig


def adapt_train_config(base: TrainConfig, acfg: AdaptConfig, trainable: Sequence[str], n: int) -> TrainConfig:
    """``base`` with the adaptation's epochs for ``n`` training windows (``acfg.epochs`` passes,
    at least ``min_steps`` steps, at most ``max_steps`` but at least one epoch), batch size and lr."""
    batch = min(acfg.batch_size, max(1, n))
    steps_per_epoch = max(1, math.ceil(n / batch))
    epochs = max(acfg.epochs, math.ceil(acfg.min_steps / steps_per_epoch))
    if acfg.max_steps is not None:
        epochs = min(epochs, max(1, acfg.max_steps // steps_per_epoch))
    return dataclasses.replace(base, epochs=epochs, batch_size=batch, lr=acfg.lr, weight_decay=acfg.weight_decay,
                               trainable=list(trainable), progress=False, eval_every=1)


def uses_validation(y: np.ndarray, acfg: AdaptConfig) -> bool:
    """Whether the labelled set with labels ``y`` holds out validation windows: ``acfg.validation``
    is on and every class present has at least ``acfg.val_min_per_class`` windows."""
    if not acfg.validation:
        return False
    counts = np.bincount(np.asarray(y, dtype=np.int64)) if len(y) else np.zeros(0, dtype=np.int64)
    present = counts[counts > 0]
    return len(present) > 0 and int(present.min()) >= acfg.val_min_per_class


def validation_split(data: WindowDataset, acfg: AdaptConfig, seed: int = 0) -> tuple[WindowDataset, WindowDataset | None]:
    """``(train, validation)`` parts of the labelled ``data``, stratified: per class
    ``round(val_fraction * n)`` windows (at least one, never all) go to validation, drawn with
    ``seed``. ``(data, None)`` when :func:`uses_validation` says the set is too small."""
    if not uses_validation(data.y, acfg):
        return data, None
    rng = np.random.default_rng(seed % 2**32)
    val = []
    for c in np.unique(data.y):
        idx = np.flatnonzero(data.y == c)
        n_val = min(len(idx) - 1, max(1, int(np.floor(acfg.val_fraction * len(idx) + 0.5))))
        val.append(rng.choice(idx, size=n_val, replace=False))
    is_val = np.zeros(len(data), dtype=bool)
    is_val[np.concatenate(val)] = True
    return data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))


def adapt(model: HARModel, start: Mapping[str, torch.Tensor] | None, data: WindowDataset, trainable: Sequence[str],
          base: TrainConfig, acfg: AdaptConfig, seed: int = 0, desc: str = "adapt") -> dict:
    """Load ``start`` into ``model`` (None: keep its weights) and fine-tune ``trainable`` parts on
    the labelled ``data`` under the budget rule of this module (in place).

    Returns seconds, the epochs and optimizer steps actually run, whether validation was used
    (``val_windows`` > 0, ``best_val_f1``, ``best_epoch``, ``early_stopped``), and the
    parameters and bytes that training may change (the personal state a device would store).
    """
    if start is not None:
        model.load_trainable_state(start, where="adaptation start state")
    train, val = validation_split(data, acfg, seed)
    tcfg = adapt_train_config(base, acfg, trainable, len(train))
    steps_per_epoch = max(1, math.ceil(len(train) / tcfg.batch_size))
    model.set_trainable(tuple(trainable))
    changed = [p for p in model.parameters() if p.requires_grad]
    stop = EarlyStopping(model, acfg.patience, min_epochs=math.ceil(acfg.min_steps / steps_per_epoch))
    t0 = time.perf_counter()
    history = fit(model, train, tcfg, seed=seed, eval_data=val, on_epoch=stop if val is not None else None, desc=desc)
    stop.restore(history)
    return {
        "seconds": time.perf_counter() - t0,
        "epochs": len(history),
        "max_epochs": tcfg.epochs,
        "steps": len(history) * steps_per_epoch,
        "batch_size": tcfg.batch_size,
        "train_windows": len(train),
        "validation": val is not None,
        "val_windows": len(val) if val is not None else 0,
        "best_val_f1": stop.best,
        "best_epoch": stop.best_epoch,
        "early_stopped": len(history) < tcfg.epochs,
        "train_loss": history[-1]["train_loss"],
        "params_changed": int(sum(p.numel() for p in changed)),
        "bytes_changed": int(sum(p.numel() * p.element_size() for p in changed)),
    }


ROW_FIELDS = ("seconds", "epochs", "steps", "train_windows", "validation", "val_windows", "best_val_f1", "best_epoch",
              "early_stopped", "params_changed", "bytes_changed")
"""What a results row records of one adaptation (see :func:`adapt`)."""


def row_fields(info: dict) -> dict:
    """The entries of :func:`adapt`'s ``info`` that a results row records."""
    return {k: info[k] for k in ROW_FIELDS}


def adaptation_rule(acfg: AdaptConfig) -> str:
    """The rule of this module in words, with ``acfg``'s numbers (for results and reports)."""
    cap = f", at most {acfg.max_steps} steps (but at least one epoch)" if acfg.max_steps is not None else ""
    plain = f"no validation: all labelled windows train for {acfg.epochs} epochs, at least {acfg.min_steps} steps{cap}"
    if not acfg.validation:
        return f"Every variant: {plain}, batch {acfg.batch_size}, lr {acfg.lr:g}."
    return (f"Every variant: when every class of the labelled set has >= {acfg.val_min_per_class} windows, a stratified "
            f"{acfg.val_fraction:g} of each class is held out for validation; the rest trains for up to {acfg.epochs} "
            f"epochs (at least {acfg.min_steps} steps{cap}, batch {acfg.batch_size}, lr {acfg.lr:g}), stopping after "
            f"{acfg.patience} epochs without a better validation macro-F1 (not before {acfg.min_steps} steps) and "
            f"restoring the best epoch's trainable state. Otherwise (e.g. k=1, k=5) {plain}.")


def changed_state(model: HARModel, trainable: Sequence[str]) -> dict[str, torch.Tensor]:
    """The entries of ``model``'s trainable state that ``trainable`` parts own (what to store)."""
    from fedhar.federated.personal import personal_keys

    state = model.trainable_state()
    return {k: state[k] for k in personal_keys(state.keys(), trainable)}
