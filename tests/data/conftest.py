"""Shared helpers for the data-layer tests: small tidy datasets (the real data: ``real_data`` in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fedhar.data import WindowDataset


def toy_dataset(n: int = 24, channels=("acc_x", "acc_y", "acc_z"), classes=("a", "b", "c"), T: int = 32,
                subjects: int = 4, units=None, rate_hz: float = 50.0, seed: int = 0, **kw) -> WindowDataset:
    """Small random dataset with balanced classes and subjects."""
    rng = np.random.default_rng(seed)
    return WindowDataset(
        X=rng.standard_normal((n, len(channels), T)).astype(np.float32),
        y=np.arange(n) % len(classes),
        subject=(np.arange(n) // len(classes)) % subjects,
        channels=channels,
        units=units or ("g",) * len(channels),
        rate_hz=rate_hz,
        classes=classes,
        name="toy",
        **kw,
    )


@pytest.fixture
def toy():
    return toy_dataset
