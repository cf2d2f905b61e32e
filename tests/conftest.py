"""Shared fixtures: the real data folder (never skipped: CI has it), small generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedhar.config import build_config
from fedhar.data import make_synthetic

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def data_dir() -> Path:
    path = Path(os.environ.get("FEDHAR_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (path / "uci_har.npz").exists():
        pytest.fail(f"Real HAR data not found at {path}: set FEDHAR_DATA_DIR to the shared data folder.")
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    return data_dir()


@pytest.fixture
def synthetic():
    return make_synthetic(n_per_class=12, subjects=4, seed=0)


@pytest.fixture
def smoke_config():
    """Factory for the tests' tiny config"""
    return _smoke_config


def _smoke_config(**sections):
    """The tests' tiny config (tiny random Llama, generated signals), with section overrides."""
    import yaml

    base = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    for key, value in sections.items():
        base.setdefault(key, {})
        base[key].update(value) if isinstance(value, dict) else base.__setitem__(key, value)
    return build_config(base)
