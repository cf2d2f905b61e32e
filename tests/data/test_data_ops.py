"""WindowDataset ops, splits, budgets, channel statistics, vocabulary and unit harmonisation."""

from __future__ import annotations

import numpy as np
import pytest

from fedhar.data import (
    G,
    WindowDataset,
    apply_channel_stats,
    concat,
    convert_acc_units,
    fit_channel_stats,
    harmonize,
    label_budget,
    label_mask,
    official_split,
    stratified_split,
    subject_split,
    to_canonical,
)
from fedhar.data.vocab import CANONICAL, DATASET_LABELS
from fedhar.exceptions import DataError


# ------------------------------------------------------------------------- WindowDataset ops
def test_select_channels(toy):
    ds = toy(channels=("body_acc_x", "body_acc_y", "body_acc_z", "gyro_x", "gyro_y", "gyro_z"))
    sub = ds.select_channels(["gyro", "body_acc_x"])
    assert sub.channels == ("gyro_x", "gyro_y", "gyro_z", "body_acc_x")
    assert np.array_equal(sub.X[:, 3], ds.X[:, 0]) and len(sub.units) == 4
    with pytest.raises(DataError, match="no channel or sensor `mag`"):
        ds.select_channels(["mag"])


def _sine_dataset(freq=2.0, rate=50.0, T=128):
    t = np.arange(T) / rate
    X = np.sin(2 * np.pi * freq * t)[None, None, :].repeat(2, axis=0).astype(np.float32)
    return WindowDataset(X=X, y=[0, 0], subject=[0, 0], channels=("acc_x",), units=("g",), rate_hz=rate,
                         classes=("a",))


def _peak_hz(x, rate):
    spec = np.abs(np.fft.rfft(x - x.mean()))
    return np.fft.rfftfreq(len(x), 1 / rate)[spec.argmax()]


@pytest.mark.parametrize("rate", [25.0, 20.0, 100.0])
def test_resample_keeps_duration_and_frequency(rate):
    ds = _sine_dataset()
    out = ds.resample(rate)
    assert out.rate_hz == rate
    assert abs(out.window_length / rate - ds.window_length / ds.rate_hz) <= 1.0 / rate + 1e-9
    assert abs(_peak_hz(out.X[0, 0], rate) - 2.0) <= rate / out.window_length / 2 + 1e-9


def test_rewindow(toy):
    ds = toy(n=6, T=128)
    out = ds.rewindow(64, 32)
    assert out.X.shape == (18, 3, 64) and out.y.tolist() == np.repeat(ds.y, 3).tolist()
    assert np.array_equal(out.X[4], ds.X[1, :, 32:96])
    with pytest.raises(DataError, match="cannot cut windows of 256 samples"):
        ds.rewindow(256)


def test_concat_merges_class_sets(toy):
    a = toy(n=6, classes=("walk", "sit"))
    b = toy(n=6, classes=("sit", "bike", "walk"), seed=1)
    both = concat([a, b])
    assert both.classes == ("walk", "sit", "bike") and len(both) == 12
    names = [both.classes[i] for i in both.y]
    assert names == [a.classes[i] for i in a.y] + [b.classes[i] for i in b.y]
    with pytest.raises(DataError, match="harmonise them first"):
        concat([a, toy(n=3, channels=("acc_x",))])


# ------------------------------------------------------------------------- splits and budgets
def test_official_split(toy):
    ds = toy(n=10, extras={"official_test": np.arange(10) >= 7})
    tr, te = official_split(ds)
    assert (len(tr), len(te)) == (7, 3)
    with pytest.raises(DataError, match="no official train/test split.*data.split: subject"):
        official_split(toy())


def test_subject_split(toy):
    ds = toy(n=60, subjects=10)
    tr, te = subject_split(ds, test_fraction=0.3, seed=3)
    assert not set(tr.subject) & set(te.subject) and len(set(te.subject)) == 3
    assert len(tr) + len(te) == 60
    tr2, te2 = subject_split(ds, test_fraction=0.3, seed=3)
    assert np.array_equal(te.subject, te2.subject)
    tr, te = subject_split(ds, test_subjects=[1, 2])
    assert set(te.subject) == {1, 2} and not {1, 2} & set(tr.subject)
    with pytest.raises(DataError, match=r"test subjects \[42\] are not in the data"):
        subject_split(ds, test_subjects=[42])


def test_stratified_split(toy):
    ds = toy(n=60)
    tr, te = stratified_split(ds, 0.5, seed=0)
    assert len(te) == 30 and np.array_equal(te.class_counts(), [10, 10, 10])
    with pytest.raises(DataError, match="cannot stratify"):
        stratified_split(toy(n=4), 0.5)


def test_label_budget_k_exact_and_reproducible(toy):
    ds = toy(n=60)
    ds = ds.replace(extras={"row": np.arange(60)})
    a = label_budget(ds, k_per_class=4, seed=7)
    assert np.array_equal(a.class_counts(), [4, 4, 4])
    assert np.array_equal(a.extras["row"], label_budget(ds, k_per_class=4, seed=7).extras["row"])
    assert not np.array_equal(a.extras["row"], label_budget(ds, k_per_class=4, seed=8).extras["row"])
    assert (np.diff(a.extras["row"]) > 0).all()  # original order kept
    with pytest.raises(DataError, match="class `a` has 20 windows, fewer than the 25"):
        label_budget(ds, k_per_class=25)
    with pytest.raises(DataError, match="exactly one of"):
        label_budget(ds, k_per_class=2, fraction=0.5)


def test_label_budget_fraction(toy):
    ds = toy(n=60).subset(np.r_[np.arange(57), 58])  # class counts 19, 20, 19
    out = label_budget(ds, fraction=0.1, seed=0)
    assert out.class_counts().tolist() == [2, 2, 2]
    rare = toy(n=30).subset(np.r_[np.arange(27), 29])  # class c has 9 windows
    assert label_budget(rare, fraction=0.01).class_counts().tolist() == [1, 1, 1]


def test_fit_channel_stats(toy):
    ds = toy(n=30)
    X = ds.X.copy()
    X[:, 0] = X[:, 0] * 3 + 5
    X[:, 2] = 1.0  # constant channel: std floored
    ds = ds.replace(X=X)
    mean, std = fit_channel_stats(ds)
    assert mean.shape == std.shape == (3,) and mean.dtype == np.float32
    assert np.isclose(mean[0], X[:, 0].mean(), atol=1e-5) and np.isclose(std[0], X[:, 0].std(), rtol=1e-5)
    assert std[2] == pytest.approx(1e-6)
    z = apply_channel_stats(ds, mean, std)
    assert np.allclose(z.X[:, :2].mean(axis=(0, 2)), 0, atol=1e-5) and np.allclose(z.X[:, 2], 0)


# ------------------------------------------------------------------------- vocabulary
def test_to_canonical_each_dataset(toy):
    uci = toy(n=12, classes=("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"))
    out = to_canonical(uci)
    assert out.classes == CANONICAL[:6] and np.array_equal(out.y, uci.y)
    wisdm = toy(n=12, classes=("Downstairs", "Jogging", "Sitting", "Standing", "Upstairs", "Walking"))
    out = to_canonical(wisdm)
    assert out.classes == ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "jogging")
    assert [out.classes[i] for i in out.y[:6]] == ["walking_downstairs", "jogging", "sitting", "standing",
                                                   "walking_upstairs", "walking"]
    hhar = to_canonical(toy(n=12, classes=("bike", "sit", "stairsdown", "stairsup", "stand", "walk")))
    assert set(hhar.classes) == {"biking", "sitting", "walking_downstairs", "walking_upstairs", "standing", "walking"}
    limu = to_canonical(toy(n=12, classes=("walking", "upstairs", "downstairs", "sitting", "standing", "lying")))
    assert limu.classes == CANONICAL[:6]
    space = to_canonical(wisdm, label_space=CANONICAL)
    assert space.classes == CANONICAL and space.y[1] == CANONICAL.index("jogging")


def test_to_canonical_errors(toy):
    with pytest.raises(DataError, match=r"class name\(s\) 'cooking', 'Dancing' have no canonical activity"):
        to_canonical(toy(classes=("cooking", "walk", "Dancing")))
    with pytest.raises(DataError, match="classes biking are not in the label space"):
        to_canonical(toy(classes=("bike", "walk", "sit")), label_space=CANONICAL[:6])
    assert to_canonical(toy(classes=("cooking", "walk", "sit")), extra={"Cooking": "cooking"}).classes[-1] == "cooking"


def test_vocab_tables_consistent():
    for table in DATASET_LABELS.values():
        assert set(table.values()) <= set(CANONICAL)


def test_label_mask():
    mask = label_mask(("Downstairs", "Jogging", "Walking"), CANONICAL[:8])
    assert mask.tolist() == [True, False, True, False, False, False, True, False]
    assert label_mask(("LAYING",), ("lying", "sitting")).tolist() == [True, False]


# ------------------------------------------------------------------------- units and harmonize
def test_convert_acc_units(toy):
    ds = toy(channels=("acc_x", "acc_y", "acc_z", "gyro_x"), units=("g", "g", "g", "rad/s"))
    ms = convert_acc_units(ds, "m/s^2")
    assert ms.units == ("m/s^2",) * 3 + ("rad/s",)
    assert np.allclose(ms.X[:, :3], ds.X[:, :3] * G) and np.array_equal(ms.X[:, 3], ds.X[:, 3])
    back = convert_acc_units(ms.replace(units=("m/s²",) * 3 + ("rad/s",)), "g")
    assert np.allclose(back.X, ds.X, atol=1e-6) and back.units[0] == "g"
    z = toy(units=("standardized",) * 3)
    with pytest.warns(UserWarning, match="physical units are unknown"):
        assert np.array_equal(convert_acc_units(z, "g").X, z.X)


def _uci_like(T=128, rate=50.0):
    t = np.arange(T) / rate
    body = 0.2 * np.sin(2 * np.pi * 2.0 * t)
    gravity = np.array([0.0, 0.3, 0.95])
    X = np.zeros((2, 9, T), np.float32)
    X[:, 0:3] = body
    X[:, 3:6] = 0.5
    X[:, 6:9] = body + gravity[:, None]
    ch = tuple(f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz")
    return WindowDataset(X=X, y=[0, 0], subject=[1, 1], channels=ch, units=("g",) * 3 + ("rad/s",) * 3 + ("g",) * 3,
                         rate_hz=rate, classes=("WALKING",), name="uci_like")


def test_harmonize_uci_style():
    ds = _uci_like()
    total = harmonize(ds, acc_units="m/s^2")
    assert total.channels == ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
    assert total.units == ("m/s^2",) * 3 + ("rad/s",) * 3
    assert np.allclose(total.X[:, :3], ds.X[:, 6:9] * G, atol=1e-5) and np.allclose(total.X[:, 3:], 0.5)
    body = harmonize(ds, acceleration="body", channels=("acc",))
    assert body.channels == ("acc_x", "acc_y", "acc_z") and np.array_equal(body.X, ds.X[:, :3])


def test_harmonize_body_from_total_lowpass():
    ds = _uci_like(T=256).select_channels(["total_acc"])
    body = harmonize(ds, acceleration="body", channels=("acc",))
    mid = slice(64, 192)  # away from the window edges
    assert np.abs(body.X[0, :, mid] - ds.X[0, :, mid] + np.array([0.0, 0.3, 0.95])[:, None]).max() < 0.05
    assert np.abs(body.X[0, 2, mid].mean()) < 0.02


def test_harmonize_missing_sensors(toy):
    acc_only = toy(channels=("acc_x", "acc_y", "acc_z"))
    with pytest.warns(UserWarning, match="has no gyro channels; the result has sensors acc only"):
        out = harmonize(acc_only)
    assert out.sensors == ("acc",) and out.num_channels == 3  # nothing invented
    only_body = _uci_like().select_channels(["body_acc", "body_gyro"])
    with pytest.raises(DataError, match="only body acceleration .* cannot be turned back"):
        harmonize(only_body)
    with pytest.raises(DataError, match="has none of the sensors"):
        harmonize(toy(channels=("mag_x", "mag_y", "mag_z")))
