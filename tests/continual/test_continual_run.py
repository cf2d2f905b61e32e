"""End to end: the continual study (central) and the federated continual run, on generated
streams with the tiny backbone; the client state that survives rounds; config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedhar.exceptions import ConfigError
from fedhar.studies import run_study

from continual_helpers import SCENARIO, tiny_continual_config as _cfg


def test_central_study_writes_matrix_metrics_plots_and_resumes(tmp_path):
    cfg = _cfg(strategies=[{"name": "naive"}, {"name": "replay", "buffer_windows": 40},
                           {"name": "ewc", "fisher_samples": 32, "fisher_batch_size": 16}, {"name": "adapters"}],
               variants=[{"label": "no LLM", "backbone": {"name": "none", "d_model": 32}, "strategies": ["naive"]}])
    run = tmp_path / "run"
    run_study("continual", cfg, str(run))
    for f in ("config.yaml", "results.json", "metrics.csv", "report.md", "matrices.png", "accuracy_over_time.png"):
        assert (run / f).exists(), f
    saved = json.loads((run / "results.json").read_text())
    assert saved["complete"] and saved["status"] == "complete" and saved["phases"] == ["waist", "pocket", "budget_wrist"]
    keys = {(r["model"], r["strategy"]) for r in saved["runs"]}
    # The 2-block tiny Llama is random: its label says so, derived from the backbone.
    main = "random-init LLM (tiny-llama, first 2 blocks)"
    assert (main, "adapters") in keys and ("no LLM", "naive") in keys and ("no LLM", "replay") not in keys
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
    assert f"| {main} | naive |" in (run / "report.md").read_text() and "pretrained" not in (run / "report.md").read_text()
    # an interrupted study resumes: finished runs are kept, the rest (here the last) is redone
    last = saved["runs"][-1]
    del saved["cells"][f"{last['model']}/{last['strategy']}"]
    saved.update(runs=saved["runs"][:-1], status="failed", complete=False)
    (run / "results.json").write_text(json.dumps(saved))
    kept = [r["seconds"] for r in saved["runs"]]
    again = run_study("continual", cfg, str(run), resume=True)
    assert again["complete"] and [r["seconds"] for r in again["runs"][:-1]] == kept
    assert [(r["model"], r["strategy"]) for r in again["runs"]][-1] == (last["model"], last["strategy"])
    assert again["runs"][-1]["continual"]["matrix"] == last["continual"]["matrix"]  # same seed, same result
    with pytest.raises(ConfigError, match="already holds a run"):
        run_study("continual", cfg, str(run))


def test_federated_continual_clients_keep_state_across_rounds(tmp_path):
    from fedhar.continual.state import load_client_state
    from fedhar.continual.strategies import build_strategy

    cfg = _cfg(mode="federated", strategies=[{"name": "replay", "buffer_windows": 30, "detector": True}],
               federated={"clients": 2, "rounds_per_phase": 1, "stagger_rounds": 1})
    res = run_study("continual", cfg, str(tmp_path / "fed"))  # Ray workers find `federated.task: continual`
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
    # a resume keeps the finished strategy instead of running its federation again
    again = run_study("continual", cfg, str(tmp_path / "fed"), resume=True)
    assert again["kind"] == "continual-federated" and again["runs"] == json.loads(json.dumps(res["runs"]))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="continual.mode"):
        _cfg(mode="sideways")
    with pytest.raises(ConfigError, match="not strategy labels"):
        _cfg(variants=[{"label": "x", "backbone": {}, "strategies": ["nope"]}])
    with pytest.raises(ConfigError, match="pocket"):
        _cfg(scenario={**SCENARIO, "phases": [SCENARIO["phases"][0], {**SCENARIO["phases"][1], "duration_s": -1}]})
    with pytest.raises(ConfigError, match="not supported with `continual.mode: federated`"):  # fedhar.checks
        _cfg(mode="federated", strategies=[{"name": "adapters"}])
    with pytest.raises(ConfigError, match="`continual.scenario` is required"):  # a study check, before any folder
        run_study("continual", _cfg(scenario=None), str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()
