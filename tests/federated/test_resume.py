"""``fedhar simulate --resume``: the saved config is the truth, and a SIGKILLed run leaves no Ray
process behind once it is resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from fedhar.config import load_config
from fedhar.federated.deployment.processes import leftover_processes, tagged_processes
from fedhar.federated.run import with_state_dir
from fedhar.reporting import RunFolder

from paused_run import start_paused

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "fedhar.cli", "simulate"]


def test_resume_without_set_runs_the_saved_round_count_and_leaves_no_ray(tmp_path):
    run = tmp_path / "run"
    proc = start_paused(["simulate", "configs/smoke.yaml", "--out", str(run), "--set", "federated.rounds=3"], rnd=1,
                        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state_file, tag = run / "checkpoint" / "state.json", f"simulate:{run.resolve()}"
    ray = tagged_processes(tag)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: what Ray started is left to fend for itself
    proc.wait()
    assert json.loads(state_file.read_text())["round"] == 1  # paused there: nothing waits on a clock
    assert ray, "Ray's processes should carry the run folder's tag"
    assert json.loads((run / "results.json").read_text())["status"] == "running"

    # The bug: the YAML on the command line (2 rounds) silently replaced the saved config (3 rounds).
    res = subprocess.run([*CLI, "configs/smoke.yaml", "--resume", str(run)], cwd=REPO, capture_output=True, text=True,
                         timeout=400)
    assert res.returncode == 2 and "`federated.rounds`" in res.stderr and "Traceback" not in res.stderr

    stale = leftover_processes(ray, tag=tag)  # Ray's agents outlive a killed driver by a minute or so
    try:
        res = subprocess.run([*CLI, "--resume", str(run)], cwd=REPO, capture_output=True, text=True, timeout=400)
        assert res.returncode == 0, res.stderr[-3000:]
        r = json.loads((run / "results.json").read_text())
        assert [x["round"] for x in r["rounds"]] == [1, 2, 3]  # none lost, none run twice, none missing
        assert r["complete"] and r["status"] == "complete" and r["kind"] == "federated"
        assert "rounds: 3" in (run / "config.yaml").read_text()
        if stale:  # the resume ended them at its start, rather than running beside them
            assert "left by an earlier session of this run" in res.stderr
        assert leftover_processes(ray, tag=tag) == [] and tagged_processes(tag) == []
    finally:
        for pid in tagged_processes(tag):  # never leave this test's processes to the next one
            os.kill(pid, signal.SIGKILL)


def test_personal_state_dir_is_saved_so_a_resume_compares_equal(tmp_path, smoke_config):
    cfg = smoke_config(federated={"personal_parts": ["head"]})
    RunFolder.open(with_state_dir(cfg, tmp_path), tmp_path)
    saved = load_config(tmp_path / "config.yaml")
    assert saved.federated.state_dir == str((tmp_path / "clients").resolve())
    assert RunFolder.open(with_state_dir(cfg, tmp_path), tmp_path, resume=True).resumed  # the YAML, completed alike
    assert with_state_dir(saved, tmp_path / "elsewhere") is saved  # a named folder is kept
    assert with_state_dir(smoke_config(), tmp_path).federated.state_dir is None  # no personal parts, no folder
