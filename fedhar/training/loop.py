"""The one training loop: central runs, Flower clients and continual strategies all call it.

Extension points are arguments, not subclasses: ``objective`` is the batch loss (cross-entropy,
or distillation's KD loss from :mod:`fedhar.distill`), ``penalties`` add terms to it (FedProx's
proximal term, EWC), ``on_epoch`` sees each epoch's metrics.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from fedhar.data.dataset import WindowDataset
from fedhar.data.vocab import MASK_KEY
from fedhar.training.augment import build_augment
from fedhar.training.config import TrainConfig
from fedhar.training.metrics import classification_metrics

Penalty = Callable[[nn.Module], torch.Tensor]
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
"""``objective(logits, labels, index, class_weight) -> loss`` for one batch: ``logits`` are already
label-masked; ``index`` holds the batch's rows in the training set, to look up per-window targets
(a teacher's logits); ``class_weight`` is set when ``train.class_weights`` is on."""


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
                  class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """The default objective: cross-entropy on the hard labels."""
    return nn.functional.cross_entropy(logits, labels, weight=class_weight)


def seed_everything(seed: int) -> torch.Generator:
    """Seed numpy and torch; return a generator for batch order so it depends on ``seed`` only."""
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def autocast(precision: str) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor per step: linear warmup, then ``cfg.schedule`` (shared with pretraining)."""
    warmup = int(cfg.warmup_fraction * total_steps)

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _class_weights(y: np.ndarray, num_classes: int) -> torch.Tensor:
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max(1, (counts > 0).sum()), 0.0)
    return torch.tensor(w, dtype=torch.float32)


@torch.inference_mode()
def predict_logits(model: nn.Module, X: np.ndarray, batch_size: int = 256, precision: str = "fp32") -> np.ndarray:
    """Logits for windows ``X`` ``(N, C, T)``, in inference mode and large batches."""
    was_training = model.training
    model.eval()
    out = []
    with autocast(precision):
        for i in range(0, len(X), batch_size):
            out.append(model(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size]))).float())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


MASKED = -1e9
"""Logit given to classes outside a window's label mask (finite, so the loss stays finite)."""


def label_mask_of(data: WindowDataset) -> np.ndarray | None:
    """The ``(N, K)`` per-window label mask of ``data``, or None (every class allowed)."""
    mask = data.extras.get(MASK_KEY)
    return None if mask is None else np.asarray(mask, dtype=bool)


def apply_label_mask(logits: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray | None):
    """Logits with disallowed classes set to :data:`MASKED` (torch or numpy, same shape back)."""
    if mask is None:
        return logits
    if isinstance(logits, np.ndarray):
        return np.where(mask, logits, np.float32(MASKED)).astype(logits.dtype)
    return logits.masked_fill(~mask, MASKED)


def evaluate(model: nn.Module, data: WindowDataset, cfg: TrainConfig | None = None,
             labels: Sequence[int] | None = None) -> dict:
    """Accuracy, macro-F1, confusion matrix and mean cross-entropy on ``data``.

    With a label mask in ``data.extras`` (see :func:`fedhar.data.vocab.with_label_mask`) only the
    allowed classes can be predicted, and macro-F1 averages over them alone.
    """
    cfg = cfg or TrainConfig()
    mask = label_mask_of(data)
    logits = apply_label_mask(predict_logits(model, data.X, cfg.eval_batch_size, cfg.precision), mask)
    if mask is not None and labels is None and len(data):
        labels = np.flatnonzero(mask.any(0)).tolist()
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.y))) if len(data) else float("nan")
    metrics = classification_metrics(data.y, logits.argmax(1), logits.shape[1], labels)
    metrics["loss"] = loss
    return metrics


def _pooled_features(model: nn.Module, X: torch.Tensor, batch_size: int, precision: str) -> torch.Tensor:
    """The frozen network's pooled features for every window, computed once (no autograd graph)."""
    out = []
    with torch.no_grad(), autocast(precision):
        for i in range(0, len(X), batch_size):
            out.append(model.features(X[i : i + batch_size]))
    return torch.cat(out)


def fit(
    model: nn.Module,
    train: WindowDataset,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    eval_data: WindowDataset | None = None,
    penalties: Iterable[Penalty] = (),
    on_epoch: Callable[[dict], bool | None] | None = None,
    desc: str = "train",
    objective: Objective = cross_entropy,
) -> list[dict]:
    """Train ``model`` in place on ``train``; returns one metrics dict per epoch.

    ``on_epoch`` sees each epoch's row; returning ``True`` stops training early.

    Only parameters with ``requires_grad`` are optimised (``cfg.trainable`` chooses them on a
    HARModel), so frozen backbone weights get no gradient and no optimizer state.

    A label mask in ``train.extras`` (datasets pooled over a wider label space) keeps each
    window's loss to the classes its dataset has.

    Head-only training (``cfg.trainable == ["head"]``) runs the frozen parts in eval mode, so
    their outputs are a fixed function of the input; with ``cfg.feature_cache`` they are computed
    once and the head trains on them. Both paths consume the same random numbers (batch order,
    head dropout) and so give the same result; the cache only removes repeated forward passes.

    ``objective`` is the batch loss (see :data:`Objective`); distillation passes
    :func:`fedhar.distill.kd_objective` over a teacher's cached logits.

    ``cfg.augment`` (rotation) turns each training batch before the model sees it; the frozen
    parts' features then change every epoch, so the head-only feature cache is not used. A head
    with an ``extra_loss(logits, labels)`` (the label-name head's contrastive term) adds it.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(seed)
    if hasattr(model, "set_trainable"):
        model.set_trainable(tuple(cfg.trainable))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_per_epoch * cfg.epochs))
    weight = _class_weights(train.y, len(model.classes)) if cfg.class_weights else None
    X = torch.from_numpy(np.ascontiguousarray(train.X))
    y = torch.from_numpy(train.y)
    mask = label_mask_of(train)
    mask = torch.from_numpy(mask) if mask is not None else None
    penalties = list(penalties)
    head_only = set(cfg.trainable) == {"head"} and hasattr(model, "features")
    augment = build_augment(cfg.augment, train.channels, seed)
    extra_loss = getattr(model.head, "extra_loss", None)

    def set_modes() -> None:
        if head_only:
            model.eval()
            model.head.train()
        else:
            model.train()

    set_modes()
    t_cache = time.perf_counter()
    cache = head_only and cfg.feature_cache and augment is None
    feats = _pooled_features(model, X, cfg.eval_batch_size, cfg.precision) if cache else None
    history: list[dict] = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = t_cache if epoch == 1 else time.perf_counter()  # epoch 1 pays for the cache
        order = torch.randperm(len(train), generator=gen)
        total, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch}/{cfg.epochs}", disable=None if cfg.progress else True, leave=False)
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            with autocast(cfg.precision):
                if feats is not None:
                    logits = model.head.classify(feats[idx])
                else:
                    logits = model(augment(X[idx]) if augment is not None else X[idx])
            logits = apply_label_mask(logits.float(), mask[idx] if mask is not None else None)
            loss = objective(logits, y[idx], idx, weight)
            if extra_loss is not None:
                loss = loss + extra_loss(logits, y[idx])
            for penalty in penalties:
                loss = loss + penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), "seconds": time.perf_counter() - t0, "lr": sched.get_last_lr()[0]}
        if eval_data is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            m = evaluate(model, eval_data, cfg)
            set_modes()
            row.update({"test_loss": m["loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
        history.append(row)
        if on_epoch and on_epoch(row) is True:
            break
    return history


class EarlyStopping:
    """An ``on_epoch`` for :func:`fit` with ``eval_data`` (a validation set): it keeps the trainable
    state of the epoch with the best validation macro-F1 and stops after ``patience`` epochs
    without a better one, never before ``min_epochs``; :meth:`restore` then puts the best back."""

    def __init__(self, model: nn.Module, patience: int, min_epochs: int = 1) -> None:
        self.model, self.patience, self.min_epochs = model, patience, min_epochs
        self.best_f1, self.best_epoch, self.state, self.stale = -math.inf, None, None, 0

    def __call__(self, row: dict) -> bool:
        f1 = row.get("macro_f1")
        if f1 is None:
            return False
        if f1 > self.best_f1:
            self.best_f1, self.best_epoch, self.state, self.stale = f1, row["epoch"], self.model.trainable_state(), 0
        else:
            self.stale += 1
        return self.stale >= self.patience and row["epoch"] >= self.min_epochs

    def restore(self, history: list[dict]) -> None:
        """Load the best epoch's state unless training ended on it."""
        if self.state is not None and history and self.best_epoch != history[-1]["epoch"]:
            self.model.load_trainable_state(self.state, where="best validation epoch")

    @property
    def best(self) -> float | None:
        return None if self.best_epoch is None else float(self.best_f1)
