"""Training on real UCI-HAR windows (a subset, so it stays quick) makes the loss fall."""

import numpy as np
import pytest

from fedhar.config import build_config
from fedhar.data import load_splits
from fedhar.training import fit
from fedhar.training.central import build_for_data

pytestmark = pytest.mark.slow


def test_loss_falls_on_real_uci(real_data):
    cfg = build_config({
        "data": {"source": "uci_har", "root": str(real_data), "split": "official", "max_windows": 600},
        "model": {"backbone": {"name": "smollm2-135m", "layers": 1}, "frontend": {"tokens": 8}},
        "train": {"epochs": 3, "batch_size": 32, "lr": 2e-3, "progress": False},
    })
    train, test = load_splits(cfg.data, cfg.seed)
    assert train.channels[0] == "body_acc_x" and len(train) <= 600 and len(np.unique(train.subject)) == 21
    model = build_for_data(cfg, train)
    hist = fit(model, train, cfg.train, eval_data=test)
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    assert hist[-1]["accuracy"] > 0.5  # six classes: chance is ~0.17
