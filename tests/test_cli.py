"""The command line: run folders, and bad input as one clear paragraph with no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fedhar.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env=env)


def test_train_smoke_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    res = run_cli("train", "configs/smoke.yaml", "--out", str(out), "--set", "train.epochs=3")
    assert res.returncode == 0, res.stderr
    for name in ("config.yaml", "results.json", "metrics.csv", "confusion_matrix.png", "learning_curve.png",
                 "model/trainable_state.safetensors", "model/adapter/adapter_config.json"):
        assert (out / name).exists(), name
    r = json.loads((out / "results.json").read_text())
    assert r["model"]["backbone"] == "tiny-llama"
    assert 0 < r["model"]["trainable_params"] < r["model"]["total_params"]
    assert r["model"]["update_bytes"] > 0 and r["seconds"] > 0
    assert 0 <= r["final"]["macro_f1"] <= 1 and len(r["history"]) == 3
    assert "epochs: 3" in (out / "config.yaml").read_text()
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 4


def test_train_classical_baseline(tmp_path):
    res = run_cli("train", "configs/smoke.yaml", "--out", str(tmp_path), "--set", "model.backbone.name=classical")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "results.json").read_text())["final"]["macro_f1"] > 0.5


def _npz(path, X, y):
    np.savez(path, X=X, y=y, subject=np.arange(len(y)) % 3, rate_hz=50.0)
    return path


@pytest.mark.parametrize("case, match", [
    ("nan", "NaN"),
    ("shape", "rank 3"),
    ("missing", "nor an existing path"),
])
def test_bad_input_exits_cleanly(tmp_path, case, match):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3, 32)).astype(np.float32)
    y = np.arange(30) % 3
    if case == "nan":
        X[4, 1, 7] = np.nan
        src = _npz(tmp_path / "bad.npz", X, y)
    elif case == "shape":
        src = _npz(tmp_path / "bad.npz", X[:, 0, :], y)
    else:
        src = tmp_path / "nowhere.npz"
    res = run_cli("train", "configs/smoke.yaml", "--out", str(tmp_path / "run"), "--set", f"data.source={src}",
                  "--set", "data.split=stratified", "--set", "data.options={}")
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("fedhar: error:")
    assert str(src.name) in res.stderr
    import re
    assert re.search(match, res.stderr), res.stderr


def test_unknown_config_key_exits_cleanly():
    res = run_cli("train", "configs/smoke.yaml", "--set", "train.epoch=3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "Unknown key `train.epoch`" in res.stderr and "epochs" in res.stderr


def test_data_info(real_data):
    res = run_cli("data", "info", "uci_har", "--root", str(real_data))
    assert res.returncode == 0, res.stderr
    assert "10299" in res.stdout.replace(",", "") and "WALKING" in res.stdout and "50" in res.stdout
