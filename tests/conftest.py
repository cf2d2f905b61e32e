"""Shared fixtures: the real data folder, small generated datasets.

Tests that need the real data take the ``real_data`` fixture (they get the ``real_data`` marker).
Without the folder they skip, naming it; with ``FEDHAR_REQUIRE_DATA=1`` (CI) the session fails
at start instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedhar.config import build_config
from fedhar.data import make_synthetic

REPO = Path(__file__).resolve().parents[1]
# What the real-data tests read, under $FEDHAR_DATA_DIR or <repo>/../shared/data.
REAL_DATA = ("uci_har.npz", "hapt_raw.npz", "wisdm.npz", "hhar_sa_part.npz", "limu_uci", "smarthome",
             "motionsense/A_DeviceMotion_data.zip", "usc_had/USC-HAD.zip")

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def data_dir() -> Path:
    return Path(os.environ.get("FEDHAR_DATA_DIR") or REPO.parent / "shared" / "data")


def missing_data() -> str:
    """Why the real data is unusable, or "" when every entry of ``REAL_DATA`` is there."""
    missing = [name for name in REAL_DATA if not (data_dir() / name).exists()]
    return f"real data not found: {data_dir()} lacks {', '.join(missing)} (set FEDHAR_DATA_DIR)" if missing else ""


def pytest_sessionstart(session):
    if os.environ.get("FEDHAR_REQUIRE_DATA") == "1" and missing_data():
        pytest.exit(f"FEDHAR_REQUIRE_DATA=1 but {missing_data()}", returncode=1)


def pytest_collection_modifyitems(items):
    for item in items:
        if "real_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data folder; skips (FEDHAR_REQUIRE_DATA=1: the session already failed) when absent."""
    if missing_data():
        pytest.skip(missing_data())
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


def _run_python(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter from the repository root; a non-zero exit fails the
    test with the tail of its stderr. Whole runs go in their own process, so the Simulation
    Engine's workers and logging do not leak into the test session."""
    res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="session")
def run_python():
    """:func:`_run_python`: ``run_python(script, *argv)`` runs a script in a fresh interpreter."""
    return _run_python
