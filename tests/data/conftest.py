"""Shared helpers for the data-layer tests: the real-data folder and small tidy datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fedhar.data import WindowDataset

REPO = Path(__file__).resolve().parents[2]


def real_data_dir() -> Path:
    """``$FEDHAR_DATA_DIR`` or ``<repo>/../shared/data``; fails (never skips) when it is absent."""
    env = os.environ.get("FEDHAR_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "uci_har.npz").is_file():
        pytest.fail(
            f"real HAR data not found at {path} (no uci_har.npz). Set FEDHAR_DATA_DIR to the folder "
            "holding uci_har.npz, hapt_raw.npz, wisdm.npz, hhar_sa_part.npz and limu_uci/ "
            "(CI always has it at ../shared/data).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return real_data_dir()


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
