"""Self-supervised pretraining of the masked autoencoder on unlabelled windows (``fedhar pretrain``).

A loop of its own because nothing in it is classification: no labels, no head, no label masks;
it shares seeding, the learning-rate schedule and autocast with :mod:`fedhar.training.loop`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from fedhar.models.mae import MaskedAutoencoder
from fedhar.training.config import PretrainConfig, TrainConfig
from fedhar.training.loop import autocast, lr_lambda, seed_everything

log = logging.getLogger(__name__)


@torch.no_grad()
def reconstruction_loss(model: MaskedAutoencoder, X: np.ndarray, batch_size: int = 256, seed: int = 0) -> float:
    """Mean masked-patch MSE over ``X`` with a fixed mask draw (comparable between epochs)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    for i in range(0, len(X), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size]))
        loss, _, _ = model(xb, generator=gen)
        total += float(loss) * len(xb)
        n += len(xb)
    model.train()
    return total / max(n, 1)


def pretrain_mae(X: np.ndarray, channels, cfg: PretrainConfig, seed: int = 0, X_test: np.ndarray | None = None,
                 on_epoch=None) -> tuple[MaskedAutoencoder, list[dict]]:
    """Train a masked autoencoder on standardised windows ``X`` ``(N, C, T)``."""
    gen = seed_everything(seed)
    model = MaskedAutoencoder(cfg.mae, channels, X.shape[2])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, math.ceil(len(X) / cfg.batch_size))
    tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, warmup_fraction=cfg.warmup_fraction)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(tcfg, steps * cfg.epochs))
    Xt = torch.from_numpy(np.ascontiguousarray(X))
    history = []
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for step in tqdm(range(steps), desc=f"pretrain epoch {epoch}/{cfg.epochs}", leave=False, disable=None):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            with autocast(cfg.precision):
                loss, _, _ = model(Xt[idx], generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch, "train_loss": total / len(Xt), "seconds": time.perf_counter() - t0}
        if X_test is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            row["test_loss"] = reconstruction_loss(model, X_test, seed=seed)
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return model, history


def run_pretrain(cfg, folder) -> dict:
    """The ``pretrain`` study (``fedhar pretrain``): the training side of ``cfg.data`` without labels
    -> an MAE folder (the run folder) that ``model.backbone.name`` can name. The label budget is
    ignored: pretraining uses every training window, and never the test side."""
    from fedhar.data.sources import load_splits
    from fedhar.data.splits import apply_channel_stats, fit_channel_stats
    from fedhar.reporting import curves_png

    data_cfg = dataclasses.replace(cfg.data, label_budget_k=None, label_budget_fraction=None, label_budget_balanced=False)
    train, test = load_splits(data_cfg, cfg.seed)
    mean, std = fit_channel_stats(train)
    X, X_test = apply_channel_stats(train, mean, std).X, apply_channel_stats(test, mean, std).X
    log.info("pretraining on %d unlabelled windows (%s), %d held out for the reconstruction loss",
             len(train), ",".join(train.channels), len(test))
    rows: list[dict] = []

    def on_epoch(row: dict) -> None:
        rows.append(row)
        folder.write_metrics(rows)
        if "test_loss" in row:
            log.info("epoch %d: train %.4f  test %.4f", row["epoch"], row["train_loss"], row["test_loss"])

    model, history = pretrain_mae(X, train.channels, cfg.pretrain, cfg.seed, X_test, on_epoch)
    model.save(folder.path, extra={"mean": mean.tolist(), "std": std.tolist(), "rate_hz": train.rate_hz,
                                   "windows": len(train), "source": cfg.data.source})
    folder.plot("loss_curve.png", curves_png, history, "epoch", {"masked-patch MSE": ["train_loss", "test_loss"]}, cfg.name)
    return folder.complete(windows=len(train), history=history,
                           final={"train_loss": history[-1]["train_loss"], "test_loss": history[-1].get("test_loss")},
                           parameters=int(sum(p.numel() for p in model.parameters())),
                           encoder_parameters=int(sum(p.numel() for p in model.encoder.parameters())))
