"""Harmonising datasets into one pool, and the missing-sensor path through the model."""

import numpy as np
import pytest
import torch

from fedhar.config import build_config
from fedhar.data import MASK_KEY, load
from fedhar.data.pool import align_sensors, label_space, pool, prepare, save_npz, standardise
from fedhar.exceptions import DataError
from fedhar.models import build_model


def _acc_only(ds, scale=3.0):
    return ds.select_channels(["acc_x", "acc_y", "acc_z"]).replace(X=ds.X[:, :3] * scale, units=("standardized",) * 3)


def test_align_sensors_zero_fills_what_is_missing(synthetic):
    aligned, have = align_sensors(_acc_only(synthetic), ["acc", "gyro"])
    assert have == ("acc",)
    assert aligned.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert aligned.units[3:] == ("absent",) * 3 and not aligned.X[:, 3:].any()


def test_standardise_uses_train_stats_and_keeps_absent_channels_zero(synthetic):
    aligned, _ = align_sensors(_acc_only(synthetic), ["acc", "gyro"])
    train, test = aligned.subset(np.arange(40)), aligned.subset(np.arange(40, len(aligned)))
    tr, te = standardise(train, test)
    assert np.allclose(tr.X[:, :3].mean(axis=(0, 2)), 0, atol=1e-4)
    assert np.allclose(tr.X[:, :3].std(axis=(0, 2)), 1, atol=1e-3)
    assert not tr.X[:, 3:].any() and not te.X[:, 3:].any()


def test_prepare_brings_rate_window_labels_and_mask(synthetic):
    other = synthetic.replace(classes=("walk", "stairsup", "stairsdown", "sit", "stand", "bike"))
    space = label_space([synthetic.classes, other.classes])
    assert space == ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying", "biking"]
    p = prepare(other, "hhar_like", rate_hz=20, window=51, sensors=["acc", "gyro"], space=space, split="subject",
                test_fraction=0.25)
    assert p.train.rate_hz == 20 and p.train.window_length == 51
    assert p.classes == ["walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "biking"]
    assert p.train.extras[MASK_KEY][0].tolist() == [True] * 5 + [False, True]
    assert not set(np.unique(p.train.subject)) & set(np.unique(p.test.subject))
    with pytest.raises(DataError, match="shorter than the common window"):
        prepare(other, "short", rate_hz=20, window=80, sensors=["acc"], space=space)


def test_pool_round_trips_through_npz(tmp_path, synthetic):
    space = label_space([synthetic.classes])
    a = prepare(synthetic, "a", rate_hz=25, window=64, sensors=["acc", "gyro"], space=space, split="subject")
    b = prepare(_acc_only(synthetic), "b", rate_hz=25, window=64, sensors=["acc", "gyro"], space=space, split="subject")
    pooled = pool([a, b])
    save_npz(pooled, tmp_path / "pool.npz")
    back = load(str(tmp_path / "pool.npz"), "npz")
    assert back.channels == pooled.channels and back.classes == pooled.classes and len(back) == len(pooled)
    assert back.extras[MASK_KEY].shape == (len(pooled), len(space))
    assert sorted(set(back.extras["dataset"])) == ["a", "b"]
    assert back.extras["official_test"].sum() == len(a.test) + len(b.test)


def test_missing_gyroscope_bypasses_the_gyro_branch(synthetic):
    """An acc-only window's logits do not depend on anything the gyro branch computes (here: the
    gyro normalisation); a window with a gyroscope's do. The learned absent feature replaces it."""
    cfg = build_config({"model": {"backbone": {"name": "none"}, "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [2]}}})
    aligned, _ = align_sensors(_acc_only(synthetic), ["acc", "gyro"])
    model = build_model(cfg.model, aligned.channels, aligned.window_length, synthetic.classes, 0).eval()
    acc_only = torch.from_numpy(aligned.X[:4])
    full = torch.from_numpy(synthetic.X[:4])
    assert model.frontend.presence(acc_only)[:, 1].logical_not().all() and model.frontend.presence(full).all()
    with torch.no_grad():
        before_a, before_f = model(acc_only), model(full)
        model.normalizer.mean[3:] += 5.0
        after_a, after_f = model(acc_only), model(full)
        assert torch.allclose(before_a, after_a) and not torch.allclose(before_f, after_f)
        model.frontend.absent[1] += 1.0
        assert not torch.allclose(model(acc_only), after_a)
