"""DataConfig validation, source resolution, load_source / load_splits and describe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedhar.data import DataConfig, describe, load_source, load_splits, resolve_source
from fedhar.exceptions import ConfigError, DataError
from fedhar.schema import from_mapping


def test_every_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(DataConfig))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"split": "shuffled"}, r"`data.split` must be one of 'official', 'subject', 'stratified', 'random', 'chronological'; got 'shuffled'"),
        ({"split": "random", "val_fraction": 0.5, "test_fraction": 0.5}, r"`data.val_fraction` must be in \[0, 1\)"),
        ({"val_fraction": 0.1}, r"`data.val_fraction` is used by `data.split: random` only"),
        ({"label_budget_balanced": True}, r"`data.label_budget_balanced` needs `data.label_budget_fraction`"),
        ({"format": "csv"}, r"`data.format` must be one of 'auto', .*'npz'.*; got 'csv'"),
        ({"test_fraction": 1.5}, r"`data.test_fraction` must be in \(0, 1\)"),
        ({"window": 0}, r"`data.window` must be positive"),
        ({"step": 32}, r"`data.step` needs `data.window`"),
        ({"label_budget_k": 5, "label_budget_fraction": 0.1}, "Set only one of `data.label_budget_k`"),
        ({"label_budget_fraction": 2.0}, r"`data.label_budget_fraction` must be in \(0, 1\]"),
        ({"nan_policy": "ignore"}, r"`data.nan_policy` must be one of 'error', 'drop'; got 'ignore'"),
        ({"channels": []}, r"`data.channels` is empty"),
        ({"test_subjects": []}, r"`data.test_subjects` is empty"),
        ({"source": ""}, r"`data.source` must be a dataset name or path"),
    ],
)
def test_invalid_values(changes, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(DataConfig, changes, "data")


def test_from_mapping():
    cfg = from_mapping(DataConfig, {"source": "synthetic", "window": "64", "options": {"n_per_class": 5}}, "data")
    assert cfg.window == 64 and cfg.options == {"n_per_class": 5}
    with pytest.raises(ConfigError, match="Unknown key `data.windows`"):
        from_mapping(DataConfig, {"windows": 3}, "data")


def test_root_required_for_known_names(monkeypatch):
    monkeypatch.delenv("FEDHAR_DATA_DIR", raising=False)
    with pytest.raises(ConfigError, match=r"neither `data.root` nor the environment variable FEDHAR_DATA_DIR"):
        resolve_source("uci_har")


def test_resolve_known_and_relative(tmp_path, monkeypatch):
    (tmp_path / "UCI HAR Dataset").mkdir()
    (tmp_path / "mine.npz").write_bytes(b"")
    assert resolve_source("uci_har", str(tmp_path)).endswith("UCI HAR Dataset")
    monkeypatch.setenv("FEDHAR_DATA_DIR", str(tmp_path))
    assert resolve_source("mine.npz") == str(tmp_path / "mine.npz")
    with pytest.raises(DataError, match=r"data source `hhar` not found in .*hhar_sa_part\.npz"):
        resolve_source("hhar")
    with pytest.raises(DataError, match=r"`data.source: other.npz` is neither a known dataset .*tried:"):
        resolve_source("other.npz")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEDHAR_DATA_DIR")
    assert resolve_source("mine.npz") == str(tmp_path / "mine.npz")


def test_load_source_transforms():
    cfg = DataConfig(source="synthetic", channels=["acc"], rate_hz=25.0, window=32, step=16, canonical_labels=True,
                     options={"n_per_class": 6, "classes": ["WALKING", "SITTING", "LAYING"]})
    ds = load_source(cfg)
    # synthetic generates at 25 Hz, 32 samples; channel selection keeps acc only
    assert ds.channels == ("acc_x", "acc_y", "acc_z") and ds.rate_hz == 25.0 and ds.window_length == 32
    assert ds.classes == ("walking", "sitting", "lying") and len(ds) == 18
    capped = load_source(DataConfig(source="synthetic", max_windows=12, options={"n_per_class": 10}))
    assert len(capped) == 12 and capped.class_counts().tolist() == [2] * 6


def test_load_source_rewindows_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", X=rng.standard_normal((6, 3, 128)).astype(np.float32), y=np.arange(6) % 2,
             rate_hz=50.0, classes=np.array(["walk", "sit"]))
    ds = load_source(DataConfig(source=str(tmp_path / "w.npz"), window=64, step=64, rate_hz=25.0))
    assert ds.rate_hz == 25.0 and ds.X.shape == (6, 3, 64)
    ds = load_source(DataConfig(source="w.npz", root=str(tmp_path), window=64, step=32))
    assert ds.X.shape == (18, 3, 64)


def test_load_splits():
    base = {"source": "synthetic", "options": {"n_per_class": 12, "subjects": 6}}
    train, test = load_splits(DataConfig(split="subject", label_budget_k=3, **base), seed=1)
    assert not set(train.subject) & set(test.subject)
    assert train.class_counts().tolist() == [3] * 6
    train, test = load_splits(DataConfig(split="subject", test_subjects=[2, 5], **base))
    assert set(test.subject) == {2, 5}
    train, test = load_splits(DataConfig(split="stratified", test_fraction=0.25, label_budget_fraction=0.5, **base))
    assert len(test) == 18 and len(train) == 6 * 5
    with pytest.raises(DataError, match="no official train/test split"):
        load_splits(DataConfig(**base))


def test_describe_synthetic():
    text = describe("synthetic")
    assert "windows: 240" in text and "acc_x [g]" in text and "rate: 50 Hz" in text
    assert "walking_upstairs    40" in text
