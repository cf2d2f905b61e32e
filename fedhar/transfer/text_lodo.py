"""The readings-as-text rows of a leave-one-dataset-out study: no training at all, each held-out
test window written as text and every class name scored by the LLM's likelihood. Scored on the
shared classes (beside every model's zero-shot) and on all of the held-out dataset's classes,
including the ones no training dataset has (beside the label-name head)."""

from __future__ import annotations

import logging
import time

import numpy as np

from fedhar.config import ExperimentConfig
from fedhar.data.dataset import WindowDataset
from fedhar.data.pool import PreparedDataset
from fedhar.training.metrics import classification_metrics
from fedhar.transfer.lodo import TEXT_ZERO_SHOT, restrict, unseen_row, zero_shot_row

log = logging.getLogger(__name__)


def stratified_cap(ds: WindowDataset, n: int | None, seed: int) -> WindowDataset:
    """At most ``n`` windows of ``ds``, each class keeping its share (at least one window)."""
    if n is None or len(ds) <= n:
        return ds
    rng = np.random.default_rng((seed, 0x7E47))
    keep = []
    for c in np.unique(ds.y):
        idx = np.flatnonzero(ds.y == c)
        keep.append(rng.choice(idx, size=max(1, round(n * len(idx) / len(ds))), replace=False))
    return ds.subset(np.sort(np.concatenate(keep)))


def text_zero_shot_rows(cfg: ExperimentConfig, held: str, target: PreparedDataset, shared: list[str],
                        unseen: list[str]) -> list[dict]:
    from fedhar.transfer.text_zero_shot import ReadingsZeroShot

    tcfg = cfg.lodo.text_zero_shot
    units = {"acc": "standardised", "gyro": "standardised"}  # the pool z-scores every dataset (fedhar.data.pool)
    scorer = ReadingsZeroShot(tcfg.backbone, layers=tcfg.layers, seed=cfg.seed, style=tcfg.style,
                              precision=cfg.train.precision, calibrate=tcfg.calibrate, downsample_hz=tcfg.downsample_hz,
                              units=units)
    test = stratified_cap(target.test, tcfg.max_windows, cfg.seed)
    t0 = time.perf_counter()

    def predict(ds: WindowDataset) -> np.ndarray:
        mask = np.asarray(ds.extras["label_mask"][0], dtype=bool)
        return scorer.predict(ds.X, ds.channels, cfg.lodo.rate_hz, ds.classes, mask)

    def zero_shot() -> dict:
        sub = restrict(test, shared)
        allowed = np.flatnonzero(np.asarray(sub.extras["label_mask"][0], dtype=bool)).tolist()
        return classification_metrics(sub.y, predict(sub), sub.num_classes, allowed)

    cost = {"trainable_params": 0, "tokens_per_window": scorer.mean_tokens, "test_windows": len(test)}
    rows = [zero_shot_row(held, TEXT_ZERO_SHOT, shared, zero_shot, **cost)]
    if unseen:
        rows.append(unseen_row(held, TEXT_ZERO_SHOT, test, unseen, predict, **cost))
    for r in rows:  # known once the windows are scored
        r.update(seconds=time.perf_counter() - t0, tokens_per_window=scorer.mean_tokens)
    return rows
