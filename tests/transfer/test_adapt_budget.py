"""The adaptation budget: steps scale with the labelled windows, validation and early stopping
where every class has enough windows, a fixed step budget otherwise; budget draws follow the seed."""

import math

import numpy as np
import pytest
import torch

from fedhar.config import build_config
from fedhar.data import make_synthetic
from fedhar.exceptions import ConfigError
from fedhar.models import ModelConfig, build_model
from fedhar.schema import from_mapping
from fedhar.training import TrainConfig, evaluate
from fedhar.transfer import adapt as adapt_module
from fedhar.transfer.adapt import adapt, adaptation_rule, row_fields, uses_validation, validation_split
from fedhar.transfer.budget import parse_budget
from fedhar.transfer.config import AdaptConfig
from fedhar.transfer.lodo import adaptation_description, budget_seed

BASE = TrainConfig(precision="fp32", progress=False)


def _model(ds, name="none"):
    cfg = from_mapping(ModelConfig, {"backbone": {"name": name, "layers": 1, "d_model": 32},
                                     "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [2]}})
    m = build_model(cfg, ds.channels, ds.window_length, ds.classes, seed=0)
    m.normalizer.set_stats(ds.X.mean((0, 2)), ds.X.std((0, 2)))
    return m


@pytest.fixture
def data():
    return make_synthetic(n_per_class=12, subjects=3, seed=1, window=32)


def test_steps_scale_with_the_labelled_windows(data):
    acfg = AdaptConfig(epochs=2, min_steps=1, batch_size=8, val_min_per_class=100)  # never validation here
    model = _model(data)
    steps = {}
    for k in (2, 4, 8):
        few = parse_budget(f"k{k}").sample(data, seed=0)
        info = adapt(model, model.trainable_state(), few, ["head"], BASE, acfg)
        assert not info["validation"] and info["val_windows"] == 0 and info["best_val_f1"] is None
        assert info["epochs"] == 2 and info["train_windows"] == len(few) == 6 * k
        steps[k] = info["steps"]
        assert steps[k] == 2 * math.ceil(len(few) / 8)
    assert steps[2] < steps[4] < steps[8]
    assert set(row_fields(info)) >= {"steps", "epochs", "val_windows", "best_val_f1", "best_epoch", "seconds"}


def test_tiny_sets_get_the_fixed_min_steps(data):
    acfg = AdaptConfig(epochs=2, min_steps=12, batch_size=32)
    model = _model(data)
    for k in ("k1", "k5"):
        info = adapt(model, model.trainable_state(), parse_budget(k).sample(data, seed=0), ["head"], BASE, acfg)
        assert not info["validation"] and info["steps"] == 12 and not info["early_stopped"]


def test_validation_only_when_every_class_has_enough_windows(data):
    acfg = AdaptConfig(val_fraction=0.2, val_min_per_class=10)
    assert uses_validation(data.y, acfg)  # 12 per class
    for k in ("k1", "k5"):
        assert not uses_validation(parse_budget(k).sample(data, seed=0).y, acfg)
    assert uses_validation(parse_budget("k10").sample(data, seed=0).y, acfg)
    # One class down to 9 windows: no validation for the whole set.
    drop = np.flatnonzero(data.y == 3)[:3]
    short = data.subset(np.setdiff1d(np.arange(len(data)), drop))
    assert not uses_validation(short.y, acfg)
    assert validation_split(short, acfg)[1] is None
    # Switched off: never validation, however many windows each class has.
    off = AdaptConfig(val_fraction=0.2, val_min_per_class=10, validation=False)
    assert not uses_validation(data.y, off) and validation_split(data, off)[1] is None
    assert "no validation" in adaptation_rule(off)
    # Enough everywhere: a stratified, disjoint split, the same for a seed.
    train, val = validation_split(data, acfg, seed=5)
    assert np.bincount(val.y).tolist() == [2] * 6 and np.bincount(train.y).tolist() == [10] * 6
    assert len(train) + len(val) == len(data)
    rows = {x.tobytes() for x in data.X}
    assert {x.tobytes() for x in train.X} | {x.tobytes() for x in val.X} == rows
    again = validation_split(data, acfg, seed=5)[1]
    assert np.array_equal(again.X, val.X)
    info = adapt(_model(data), None, data, ["head"], BASE, AdaptConfig(epochs=3, min_steps=1, batch_size=16))
    assert info["validation"] and info["val_windows"] == 12 and info["train_windows"] == 60
    assert info["best_epoch"] is not None and 0.0 <= info["best_val_f1"] <= 1.0


def test_early_stopping_restores_the_best_epoch(data, monkeypatch):
    """A scripted loop: the head weights equal the epoch number, validation macro-F1 peaks at epoch 2."""
    scores = [0.3, 0.6, 0.5, 0.55, 0.4, 0.9, 0.9]
    seen = []

    def fake_fit(model, train, cfg, *, seed=0, eval_data=None, on_epoch=None, desc=""):
        assert eval_data is not None and len(eval_data) == 12 and cfg.eval_every == 1
        history = []
        for epoch in range(1, cfg.epochs + 1):
            with torch.no_grad():
                model.head.classifier.weight.fill_(float(epoch))
            row = {"epoch": epoch, "train_loss": 1.0 / epoch, "macro_f1": scores[epoch - 1]}
            history.append(row)
            seen.append(epoch)
            if on_epoch(row) is True:
                break
        return history

    monkeypatch.setattr(adapt_module, "fit", fake_fit)
    model = _model(data)
    acfg = AdaptConfig(epochs=7, min_steps=1, batch_size=60, patience=3)  # 60 training windows: one step per epoch
    info = adapt(model, None, data, ["head"], BASE, acfg)
    assert seen == [1, 2, 3, 4, 5]  # three epochs without beating 0.6, then stop
    assert info["early_stopped"] and info["epochs"] == 5 and info["steps"] == 5
    assert info["best_epoch"] == 2 and info["best_val_f1"] == pytest.approx(0.6)
    assert torch.all(model.head.classifier.weight == 2.0)  # epoch 2's state is back
    # Early stopping waits for min_steps: with min_steps 6 it runs on and finds epoch 6.
    seen.clear()
    info = adapt(_model(data), None, data, ["head"], BASE, AdaptConfig(epochs=7, min_steps=6, batch_size=60, patience=3))
    assert seen == [1, 2, 3, 4, 5, 6, 7] and info["best_epoch"] == 6 and not info["early_stopped"]


def test_real_run_restores_a_state_with_the_best_validation_score(data):
    acfg = AdaptConfig(epochs=6, min_steps=1, batch_size=16, lr=3e-2, patience=2)
    model = _model(data)
    info = adapt(model, None, data, ["head", "frontend"], BASE, acfg, seed=3)
    _, val = validation_split(data, acfg, seed=3)
    assert evaluate(model, val, BASE)["macro_f1"] == pytest.approx(info["best_val_f1"])
    assert info["steps"] == info["epochs"] * math.ceil(info["train_windows"] / 16)


def test_adapt_config_errors_name_the_key():
    for bad, key in (({"val_fraction": 1.5}, "adapt.val_fraction"), ({"val_fraction": 0}, "adapt.val_fraction"),
                     ({"val_min_per_class": 1}, "adapt.val_min_per_class"), ({"patience": 0}, "adapt.patience"),
                     ({"epochs": 0}, "adapt.epochs"), ({"min_steps": 50, "max_steps": 10}, "adapt.max_steps")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            AdaptConfig(**bad)
    with pytest.raises(ConfigError, match=r"adapt\.val_fraction"):
        build_config({"lodo": {"adapt": {"val_fraction": 1.5}}})
    assert AdaptConfig().epochs == 20 and AdaptConfig().max_steps is None and AdaptConfig().patience == 3


def test_budget_draws_follow_the_seed_and_are_shared_by_variants(data):
    cfg = build_config({"seed": 3})
    assert cfg.lodo.budget_seed is None and budget_seed(cfg) == 3
    assert budget_seed(build_config({"seed": 3, "lodo": {"budget_seed": 7}})) == 7
    # Every variant of one run draws with the same seed, so gets the same windows.
    seeds = {budget_seed(v.apply(cfg)) for v in cfg.lodo.variant_list(cfg)}
    assert seeds == {3}
    budget = parse_budget("k5")
    a, b = budget.sample(data, seed=budget_seed(cfg)), budget.sample(data, seed=budget_seed(cfg))
    assert np.array_equal(a.X, b.X)
    other = budget.sample(data, seed=budget_seed(build_config({"seed": 4})))
    assert not np.array_equal(a.X, other.X)
    described = adaptation_description(cfg)
    assert described["budget_seed"] == 3 and "fixed" in described["random_forest"]
    assert described["neural"] == adaptation_rule(cfg.lodo.adapt) and described["neural_settings"]["patience"] == 3
