"""Loaders against the real files in ../shared/data (FEDHAR_DATA_DIR); these skip if it is absent
(FEDHAR_REQUIRE_DATA=1: fail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedhar.data import (
    DataConfig,
    describe,
    detect_format,
    fit_channel_stats,
    harmonize,
    load,
    load_splits,
    official_split,
    read_hapt_streams,
    to_canonical,
)


@pytest.fixture(scope="module")
def uci(real_data):
    return load(real_data / "uci_har.npz")


@pytest.fixture(scope="module")
def hapt_streams(real_data):
    return read_hapt_streams(real_data / "hapt_raw.npz")


def test_uci_har_npz(uci):
    assert uci.X.shape == (10299, 9, 128) and uci.X.dtype == np.float32
    assert uci.channels[:3] == ("body_acc_x", "body_acc_y", "body_acc_z") and uci.units[3] == "rad/s"
    assert uci.rate_hz == 50.0 and uci.classes[-1] == "LAYING" and len(np.unique(uci.subject)) == 30
    train, test = official_split(uci)
    assert (len(train), len(test)) == (7352, 2947)
    assert not set(train.subject) & set(test.subject)


def test_uci_har_ops(uci):
    small = uci.subset(np.arange(0, len(uci), 50))
    canon = to_canonical(small)
    assert canon.classes == ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying")
    h = harmonize(small, acc_units="m/s^2")
    assert h.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    # total acceleration magnitude is about 1 g on average
    assert 8.5 < np.linalg.norm(h.X[:, :3], axis=1).mean() < 11.0
    mean, std = fit_channel_stats(official_split(small)[0])
    assert mean.shape == (9,) and (std > 0).all()
    assert small.resample(25.0).window_length == 64


def test_uci_har_load_splits(real_data):
    train, test = load_splits(DataConfig(source="uci_har", root=str(real_data), label_budget_k=5, channels=["body_acc"]))
    assert train.class_counts().tolist() == [5] * 6 and len(test) == 2947 and train.num_channels == 3


def test_hapt_raw_windows(hapt_streams):
    assert len(hapt_streams.streams) == 61 and hapt_streams.subjects == list(range(1, 31))
    ds = hapt_streams.windows(window=128, step=64)
    assert len(ds) > 9000 and ds.X.shape[1:] == (6, 128)
    assert ds.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert ds.units == ("g",) * 3 + ("rad/s",) * 3 and len(ds.classes) == 6
    assert np.all(ds.class_counts() > 1000) and len(np.unique(ds.subject)) == 30
    # time order within each experiment, experiments in increasing order
    exp, t0 = ds.extras["experiment"], ds.extras["t_start"]
    assert np.all(np.diff(exp) >= 0) and np.all(np.diff(t0)[np.diff(exp) == 0] > 0)
    acc_norm = np.linalg.norm(ds.X[:, :3], axis=1).mean()
    assert 0.8 < acc_norm < 1.3  # accelerometer in g


def test_hapt_raw_transitions_and_rate(hapt_streams):
    ds = hapt_streams.windows(window=64, step=32, rate_hz=20.0, keep_transitions=True, min_coverage=0.8)
    assert ds.rate_hz == 20.0 and len(ds.classes) == 12 and (ds.class_counts()[6:] > 0).all()


def test_hapt_via_config(real_data):
    train, test = load_splits(DataConfig(source="hapt", root=str(real_data), split="subject", test_fraction=0.2,
                                         window=100, step=100))
    assert train.window_length == 100 and not set(train.subject) & set(test.subject)


def test_wisdm_npz(real_data):
    ds = load(real_data / "wisdm.npz")
    assert ds.X.shape == (7292, 3, 128) and ds.rate_hz == 20.0 and ds.name == "wisdm"
    assert ds.classes == ("Downstairs", "Jogging", "Sitting", "Standing", "Upstairs", "Walking")
    assert len(np.unique(ds.subject)) == 36 and "official_test" not in ds.extras
    with pytest.warns(UserWarning, match="has no gyro"):
        assert harmonize(ds, acc_units=None).sensors == ("acc",)
    assert "jogging" in to_canonical(ds).classes


def test_hhar_npz(real_data):
    ds = load(real_data / "hhar_sa_part.npz")
    assert ds.X.shape == (4436, 3, 128) and ds.name == "hhar_sa_part" and len(np.unique(ds.subject)) == 9
    assert to_canonical(ds).classes == ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing",
                                        "biking")


def test_limu_uci(real_data):
    folder = real_data / "limu_uci"
    assert detect_format(folder) == "limu"
    ds = load(folder)
    assert ds.X.shape == (2088, 6, 120) and ds.rate_hz == 20.0 and len(np.unique(ds.subject)) == 30
    assert ds.classes == ("walking", "upstairs", "downstairs", "sitting", "standing", "lying")
    raw = np.load(folder / "data_20_120.npy")
    assert np.allclose(ds.X[7, :, 11], raw[7, 11].astype(np.float32))
    assert 8.5 < np.linalg.norm(ds.X[:, :3], axis=1).mean() < 11.0  # acc in m/s^2


def test_describe_real(real_data):
    text = describe("uci_har", root=str(real_data))
    assert "windows: 10299" in text and "official split: 7352 train / 2947 test" in text
    assert "body_gyro_x [rad/s]" in text and "LAYING" in text


def test_limu_protocol_split_sizes_are_exact(real_data):
    """LIMU-BERT's 80/10/10 on its 2,088 UCI windows: 1670 / 208 / 210, and the balanced 1%
    budget is int(1670 * 0.01 / 6) = 2 windows per class, the same for the same seed."""
    from fedhar.config import load_config
    from fedhar.data.sources import load_source
    from fedhar.data.splits import random_split

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "limu_uci.yaml")
    cfg.data.root = str(real_data)
    ds = load_source(cfg.data, cfg.seed)
    train, val, test = random_split(ds, 0.1, 0.1, seed=cfg.seed)
    assert (len(ds), len(train), len(val), len(test)) == (2088, 1670, 208, 210)
    assert not {w.tobytes() for w in train.X} & {w.tobytes() for w in test.X}
    labelled, test2 = load_splits(cfg.data, cfg.seed)
    assert np.bincount(labelled.y, minlength=6).tolist() == [2] * 6 and len(test2) == 210
    again, _ = load_splits(cfg.data, cfg.seed)
    assert np.array_equal(labelled.X, again.X)
