"""End to end: the continual study (central) and the federated continual run, on generated
streams with the tiny backbone; the client state that survives rounds; config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedhar.config import build_config
from fedhar.continual.experiment import run_continual
from fedhar.exceptions import ConfigError

SCENARIO = {
    "name": "tiny", "window_s": 2.56, "step_s": 1.28, "test_fraction": 0.3, "seed": 0,
    "classes": ["walking", "sitting", "standing", "lying"],
    "phases": [
        {"name": "waist", "subjects": [1, 2], "classes": ["walking", "sitting", "standing"]},
        {"name": "pocket", "placement": "trouser_pocket", "subjects": [3, 4], "classes": ["walking", "sitting", "standing"]},
        {"name": "budget_wrist", "device": "budget_phone", "placement": "wrist", "subjects": [5, 6]},
    ],
}


def _cfg(**continual):
    return build_config({
        "name": "tiny_continual", "seed": 0,
        "data": {"source": "synthetic", "options": {"subjects": [1, 2, 3, 4, 5, 6], "recordings": 2}},
        "model": {"backbone": {"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}},
                  "frontend": {"tokens": 8, "channels": [16], "kernels": [5], "strides": [2]}},
        "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "precision": "fp32", "progress": False},
        "federated": {"local_epochs": 1, "min_evaluate_clients": 2},
        "continual": {"scenario": SCENARIO, **continual},
    })


def test_central_study_writes_matrix_metrics_plots_and_resumes(tmp_path):
    cfg = _cfg(strategies=[{"name": "naive"}, {"name": "replay", "buffer_windows": 40},
                           {"name": "ewc", "fisher_samples": 32, "fisher_batch_size": 16}, {"name": "adapters"}],
               variants=[{"label": "no LLM", "backbone": {"name": "none", "d_model": 32}, "strategies": ["naive"]}])
    res = run_continual(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for f in ("config.yaml", "results.json", "metrics.csv", "report.md", "matrices.png", "accuracy_over_time.png"):
        assert (run / f).exists(), f
    saved = json.loads((run / "results.json").read_text())
    assert saved["complete"] and saved["phases"] == ["waist", "pocket", "budget_wrist"]
    keys = {(r["model"], r["strategy"]) for r in saved["runs"]}
    assert ("pretrained LLM", "adapters") in keys and ("no LLM", "naive") in keys and ("no LLM", "replay") not in keys
    assert ("classical (features + RF)", "cumulative") in keys
    for r in saved["runs"]:
        c = r["continual"]
        assert np.asarray(c["matrix"], dtype=float).shape == (3, 3)
        assert {"acc", "bwt", "forgetting", "fwt", "macro_f1"} <= set(c)
        last = np.asarray(c["matrix"], dtype=float)[-1]
        assert c["acc"] == pytest.approx(float(np.mean(last)))
    replay = next(r for r in saved["runs"] if r["strategy"] == "replay")
    assert 0 < replay["memory"]["buffer_windows"] <= 40
    adapters = next(r for r in saved["runs"] if r["strategy"] == "adapters")
    assert adapters["memory"]["adapter_bytes"] > 0
    assert "| pretrained LLM | naive |" in (run / "report.md").read_text()
    # a resumed study keeps finished runs instead of redoing them
    again = run_continual(cfg, run, resume=True)
    assert [r["continual"]["matrix"] for r in again["runs"]] == [r["continual"]["matrix"] for r in saved["runs"]]


def test_federated_continual_clients_keep_state_across_rounds(tmp_path):
    from fedhar.continual.federated import run_continual_federated
    from fedhar.continual.state import load_client_state
    from fedhar.continual.strategies import build_strategy

    cfg = _cfg(mode="federated", strategies=[{"name": "replay", "buffer_windows": 30, "detector": True}],
               federated={"clients": 2, "rounds_per_phase": 1, "stagger_rounds": 1})
    res = run_continual_federated(cfg, tmp_path / "fed")
    run = res["runs"][0]
    assert res["complete"] and run["federated"]["rounds"] == 4  # 3 phases x 1 round + 1 round of stagger
    assert set(run["clients"]) == {"0", "1"}
    for pid, c in run["clients"].items():
        assert np.asarray(c["continual"]["matrix"], dtype=float).shape == (3, 3)
        strategy = build_strategy("replay", {"buffer_windows": 30, "detector": True})
        extra = load_client_state(tmp_path / "fed" / "replay" / "clients" / f"client_{pid}.npz", strategy)
        # every round this client trained in is in its saved timeline, in order, with its phase
        assert [r["round"] for r in extra["rounds"]] == [1, 2, 3, 4]
        phases = [r["phase"] for r in extra["rounds"]]
        assert phases == ([0, 1, 2, 2] if pid == "0" else [0, 0, 1, 2])
        # the buffer filled at each phase end and survived later rounds
        assert 0 < len(strategy.buffer) <= 30 and strategy.buffer.seen > 30
        assert [e["index"] for e in strategy.experiences] == [0, 1, 2]
        # the drift detector's reference (fitted at the end of the last phase) survived too
        assert extra["calibrated"] and strategy.detector is not None and strategy.detector.state_dict()["mu"] is not None
    assert (tmp_path / "fed" / "report.md").read_text().count("| replay | ") >= 3


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="continual.mode"):
        _cfg(mode="sideways")
    with pytest.raises(ConfigError, match="not strategy labels"):
        _cfg(variants=[{"label": "x", "backbone": {}, "strategies": ["nope"]}])
    with pytest.raises(ConfigError, match="pocket"):
        _cfg(scenario={**SCENARIO, "phases": [SCENARIO["phases"][0], {**SCENARIO["phases"][1], "duration_s": -1}]})
    from fedhar.continual.federated import run_continual_federated

    with pytest.raises(ConfigError, match="not supported in federated mode"):
        run_continual_federated(_cfg(mode="federated", strategies=[{"name": "adapters"}]), "/tmp/never")
