"""Helpers of the continual tests: tiny two-domain streams, deep state equality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fedhar.config import build_config
from fedhar.data import WindowDataset, make_synthetic, stratified_split


@dataclass
class Exp:
    """Stand-in for fedhar.drift's Experience (the continual package codes against the protocol)."""

    index: int
    name: str
    train: WindowDataset
    test: WindowDataset
    info: dict = field(default_factory=dict)


def shifted(ds: WindowDataset) -> WindowDataset:
    """Domain B: accelerometer rescaled and offset, gyroscope missing (all zeros)."""
    X = ds.X.copy()
    X[:, :3] = 1.5 * X[:, :3] + 0.5
    X[:, 3:] = 0.0
    return ds.replace(X=X)


def make_stream(seed: int = 0, n_per_class: int = 8) -> list[Exp]:
    base = make_synthetic(n_per_class=n_per_class, subjects=3, window=64, seed=seed)
    tr, te = stratified_split(base, 0.34, seed)
    return [Exp(0, "A", tr, te, {"domain": "A"}), Exp(1, "B", shifted(tr), shifted(te), {"domain": "B"})]


def assert_state_equal(a, b, where="state"):
    """Deep equality of nested dicts/lists of JSON values, numpy arrays and tensors (NaN == NaN)."""
    if isinstance(a, torch.Tensor):
        a = a.numpy()
    if isinstance(b, torch.Tensor):
        b = b.numpy()
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_state_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


SCENARIO = {
    "name": "tiny", "window_s": 2.56, "step_s": 1.28, "test_fraction": 0.3, "seed": 0,
    "classes": ["walking", "sitting", "standing", "lying"],
    "phases": [
        {"name": "waist", "subjects": [1, 2], "classes": ["walking", "sitting", "standing"]},
        {"name": "pocket", "placement": "trouser_pocket", "subjects": [3, 4], "classes": ["walking", "sitting", "standing"]},
        {"name": "budget_wrist", "device": "budget_phone", "placement": "wrist", "subjects": [5, 6]},
    ],
}


def tiny_continual_config(**continual):
    """Six generated subjects, the 2-block tiny Llama, and ``continual`` over the 3-phase SCENARIO."""
    return build_config({
        "name": "tiny_continual", "seed": 0,
        "data": {"source": "synthetic", "options": {"subjects": [1, 2, 3, 4, 5, 6], "recordings": 2}},
        "model": {"backbone": {"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}},
                  "frontend": {"tokens": 8, "channels": [16], "kernels": [5], "strides": [2]}},
        "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "precision": "fp32", "progress": False},
        "federated": {"local_epochs": 1, "min_evaluate_clients": 2},
        "continual": {"scenario": SCENARIO, **continual},
    })
