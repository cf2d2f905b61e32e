"""End-to-end federated runs through the CLI: Simulation Engine (Ray), faults, kill and resume,
and the real Deployment Engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from paused_run import start_paused

REPO = Path(__file__).resolve().parents[2]


def simulate(out: Path, *sets: str, extra=(), timeout=400, check=True):
    args = [sys.executable, "-m", "fedhar.cli", "simulate", "configs/smoke.yaml", "--out", str(out), *extra]
    for s in sets:
        args += ["--set", s]
    res = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def global_state(run: Path) -> dict:
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    return load_file(str(run / "checkpoint" / state["folder"] / "global_state.safetensors"))


def test_simulation_with_a_failing_client(tmp_path):
    res = simulate(tmp_path, "federated.strategy.name=fedprox", "federated.faults.clients=[0]",
                   "federated.faults.rounds=[1]", "federated.faults.mode=raise")
    r = results(tmp_path)
    assert r["kind"] == "federated" and r["complete"] and r["strategy"] == "fedprox"
    assert [x["round"] for x in r["rounds"]] == [1, 2]
    assert (r["rounds"][0]["failures"], r["rounds"][0]["clients"]) == (1, 3)
    assert "injected fault" in r["rounds"][0]["failure_reasons"][0]
    assert (r["rounds"][1]["failures"], r["rounds"][1]["clients"]) == (0, 4)
    for row in r["rounds"]:
        assert row["bytes_up"] > 0 and row["bytes_down"] > row["bytes_up"] and row["seconds"] > 0
        assert 0 <= row["macro_f1"] <= 1
    c = r["communication"]
    assert c["total_bytes"] == sum(x["bytes_up"] + x["bytes_down"] for x in r["rounds"])
    assert c["full_model_bytes_equivalent"] == c["messages"] * 4 * r["model"]["total_params"]
    assert 0 <= r["final"]["macro_f1"] <= 1 and r["model"]["trainable_params"] < r["model"]["total_params"]
    for name in ("config.yaml", "metrics.csv", "rounds.png", "bytes.png", "confusion_matrix.png",
                 "model/trainable_state.safetensors"):
        assert (tmp_path / name).exists(), name
    assert "round" in res.stdout and "MB up" in res.stdout and "heldout F1" in res.stdout  # the per-round table


@pytest.mark.parametrize("mode, reason", [("nan", "non-finite"), ("shape", "wrong shape")])
def test_bad_update_never_reaches_global_model(tmp_path, mode, reason):
    simulate(tmp_path, "federated.faults.clients=[1]", "federated.faults.rounds=[2]", f"federated.faults.mode={mode}")
    r = results(tmp_path)
    assert r["complete"] and r["rounds"][1]["failures"] == 1 and r["rounds"][1]["clients"] == 3
    assert reason in r["rounds"][1]["failure_reasons"][0]
    state = global_state(tmp_path)
    assert all(np.isfinite(v).all() for v in state.values())


RESUME_SETS = ("federated.rounds=4", "federated.strategy.name=fedadam", "federated.local_epochs=2")


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    simulate(straight, *RESUME_SETS)

    sets = sum((["--set", s] for s in RESUME_SETS), [])
    proc = start_paused(["simulate", "configs/smoke.yaml", "--out", str(broken), *sets], rnd=1, cwd=REPO,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(proc.pid, signal.SIGKILL)  # paused right after round 1's checkpoint: killed at a known round
    proc.wait()
    assert json.loads((broken / "checkpoint" / "state.json").read_text())["round"] == 1

    simulate(broken, *RESUME_SETS, extra=("--resume", str(broken)))
    a, b = results(straight), results(broken)
    assert [x["round"] for x in b["rounds"]] == [1, 2, 3, 4]  # none lost, none run twice
    assert b["final"]["macro_f1"] == pytest.approx(a["final"]["macro_f1"], abs=1e-6)
    assert b["final"]["accuracy"] == pytest.approx(a["final"]["accuracy"], abs=1e-6)
    sa, sb = global_state(straight), global_state(broken)
    assert all(np.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_resume_rejects_a_different_config(tmp_path):
    simulate(tmp_path)
    res = simulate(tmp_path, "train.lr=0.5", extra=("--resume", str(tmp_path)), check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "`train.lr`" in res.stderr


@pytest.mark.deployment
def test_deployment_engine_smoke(tmp_path):
    res = simulate(tmp_path, extra=("--engine", "deployment", "--supernodes", "2"))
    r = results(tmp_path)
    assert r["complete"] and r["num_clients"] == 2 and all(x["clients"] == 2 for x in r["rounds"])
    manifest = json.loads((tmp_path / "deployment" / "deployment.json").read_text())
    from fedhar.federated.deployment import leftover_processes

    started = manifest["seen_pids"]
    assert len(started) >= 3  # at least the SuperLink and two SuperNodes
    assert leftover_processes(started) == []
    assert "MB up" in res.stdout
