"""The command line: run folders, studies, and bad input as one clear paragraph with no traceback."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedhar.cli import main
from fedhar.exceptions import DataError
from fedhar.studies import STUDIES, Study

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
    r = json.loads((tmp_path / "run" / "results.json").read_text())
    assert r["status"] == "failed" and src.name in r["error"]  # the failed run is marked in its folder


def test_unknown_config_key_exits_cleanly():
    res = run_cli("train", "configs/smoke.yaml", "--set", "train.epoch=3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "Unknown key `train.epoch`" in res.stderr and "epochs" in res.stderr


def test_data_info(real_data):
    res = run_cli("data", "info", "uci_har", "--root", str(real_data))
    assert res.returncode == 0, res.stderr
    assert "10299" in res.stdout.replace(",", "") and "WALKING" in res.stdout and "50" in res.stdout


def test_train_refuses_an_existing_run_folder_unless_forced(tmp_path):
    args = ("train", "configs/smoke.yaml", "--out", str(tmp_path), "--set", "model.backbone.name=classical")
    assert run_cli(*args).returncode == 0
    res = run_cli(*args, "--set", "seed=1")
    assert res.returncode == 2 and "already holds a run" in res.stderr and "--force" in res.stderr
    assert "seed: 0" in (tmp_path / "config.yaml").read_text()
    res = run_cli(*args, "--set", "seed=1", "--force")
    assert res.returncode == 0, res.stderr
    assert "seed: 1" in (tmp_path / "config.yaml").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "complete"


# ---------------------------------------------------------------- fedhar study, with a stand-in study
SMOKE = str(REPO / "configs" / "smoke.yaml")
CALLS: list[str] = []


def toy_study(cfg, folder) -> dict:
    """Two cells that record ``train.lr``; cell ``b`` raises while ``TOY_FAILS`` is set."""
    for cell in ("a", "b"):
        if not folder.done(cell):
            if cell == "b" and TOY_FAILS:
                raise DataError("cell b: the toy data is gone")
            CALLS.append(cell)
            folder.record(cell, value=cfg.train.lr)
    folder.write_report(f"# toy study\n\ncells {sorted(folder.results['cells'])}\n")
    return folder.complete()


TOY_FAILS = False


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(STUDIES._items, "toy", Study("a stand-in study", f"{__name__}:toy_study"))
    CALLS.clear()
    return "toy"


def study(*args):
    return main(["study", *args])


def test_study_runs_and_prints_report(tmp_path, toy, capsys):
    assert study(toy, "--config", SMOKE, "--out", str(tmp_path), "--set", "train.lr=0.01") == 0
    out = capsys.readouterr().out
    assert "# toy study" in out and f"run folder: {tmp_path}" in out
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["status"] == "complete" and r["kind"] == "toy" and r["cells"] == {"a": 0.01, "b": 0.01}
    assert "lr: 0.01" in (tmp_path / "config.yaml").read_text()


def test_study_lists_the_studies(capsys):
    with pytest.raises(SystemExit) as exit_:
        study("nope", "--config", SMOKE)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and all(name in err for name in STUDIES.names())
    with pytest.raises(SystemExit):
        study("--help")
    out = capsys.readouterr().out
    for name in ("cross_dataset", "personalization", "continual", "sweep", "smarthome", "distill", "train", "simulate"):
        assert f"  {name} " in out, name


def test_study_refuses_an_existing_folder_and_a_different_config_on_resume(tmp_path, toy, capsys):
    base = ("--config", SMOKE, "--out", str(tmp_path))
    assert study(toy, *base) == 0
    assert study(toy, *base) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedhar: error:") and "already holds a run" in err and "--resume" in err
    assert study(toy, *base, "--resume", "--set", "train.lr=0.5") == 2
    assert "`train.lr`" in capsys.readouterr().err
    assert study(toy, "--out", str(tmp_path), "--resume", "--set", "federated.rounds=9") == 2  # saved config + --set
    assert "`federated.rounds`" in capsys.readouterr().err
    assert study(toy, *base, "--force", "--set", "train.lr=0.5") == 0
    assert json.loads((tmp_path / "results.json").read_text())["cells"] == {"a": 0.5, "b": 0.5}


def test_failed_study_is_marked_and_resumes_from_its_finished_cells(tmp_path, toy, monkeypatch, capsys):
    monkeypatch.setattr(sys.modules[__name__], "TOY_FAILS", True)
    assert study(toy, "--config", SMOKE, "--out", str(tmp_path)) == 2
    assert "the toy data is gone" in capsys.readouterr().err
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["status"] == "failed" and "the toy data is gone" in r["error"] and r["cells"] == {"a": 0.003}
    monkeypatch.setattr(sys.modules[__name__], "TOY_FAILS", False)
    assert study(toy, "--out", str(tmp_path), "--resume") == 0  # no --config: the saved one
    assert CALLS == ["a", "b"]  # a ran once, before the failure
    r = json.loads((tmp_path / "results.json").read_text())
    assert r["status"] == "complete" and "error" not in r


def test_simulations_scripts_are_wrappers_over_fedhar_study(tmp_path, monkeypatch, capsys):
    import fedhar.studies

    monkeypatch.setattr(fedhar.studies, "run_checks", lambda cfg, name: None)  # the smoke config suits no real study
    for script in sorted((REPO / "simulations").glob("*.py")):
        name = script.stem
        assert name in STUDIES
        spec = importlib.util.spec_from_file_location(f"sim_{name}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert "python simulations/" in module.__doc__  # the documented commands stay
        monkeypatch.setitem(STUDIES._items, name, Study("stand-in", f"{__name__}:toy_study"))
        assert module.main(["--config", SMOKE, "--out", str(tmp_path / name)]) == 0
        assert json.loads((tmp_path / name / "results.json").read_text())["kind"] == name
    assert capsys.readouterr().out.count("# toy study") == len(list((REPO / "simulations").glob("*.py")))
