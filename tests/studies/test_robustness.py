"""The robustness study's plan, rows, resume, report and plots, with each federated run replaced
by a stand-in whose F1 falls with the attackers under FedAvg only (the runs themselves are tested
in tests/federated)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedhar.config import build_config
from fedhar.exceptions import ConfigError
from fedhar.studies import run_study
from fedhar.studies.robustness import points

CALLS: list[str] = []


def fake_run(cfg, out=None, resume=None):
    where = Path(out or resume)
    where.mkdir(parents=True, exist_ok=True)
    (where / "config.yaml").write_text("x: 1\n")
    CALLS.append(where.name)
    f = cfg.federated
    hit = f.attack.fraction * (1.0 if f.strategy.name == "fedavg" else 0.05)
    eps = f.privacy.target_epsilon
    f1 = 0.9 - hit - (0.0 if eps is None else 0.4 / eps) + 0.01 * cfg.seed
    return {"final": {"macro_f1": f1, "accuracy": f1}, "seconds": 1.0, "communication": {"total_bytes": 10},
            "rounds": [{"round": 1, "attackers": [0] if f.attack.fraction else []}],
            "privacy": {"epsilon": eps, "noise_multiplier": 1.0} if eps else None}


def tiny(**robustness) -> dict:
    return {"name": "rob", "seeds": [0, 1], "data": {"source": "synthetic"},
            "federated": {"partition": "iid", "num_clients": 8, "min_train_clients": 2, "min_available_clients": 2},
            "robustness": {"aggregators": [{"label": "FedAvg", "set": {"federated.strategy.name": "fedavg"}},
                                           {"label": "median", "set": {"federated.strategy.name": "fedmedian"}}],
                           "attacks": ["sign_flip", "gaussian"], "fractions": [0.0, 0.25], "epsilons": [None, 8.0],
                           **robustness}}


def test_plan_runs_the_clean_point_once_per_rule_and_each_epsilon():
    plan = list(points(build_config(tiny())))
    assert [(p[1], p[2], p[3]) for p in plan] == [
        ("FedAvg", "none", "0"), ("FedAvg", "sign_flip", "0.25"), ("FedAvg", "gaussian", "0.25"),
        ("median", "none", "0"), ("median", "sign_flip", "0.25"), ("median", "gaussian", "0.25"),
        ("FedAvg + central DP", "none", "inf"), ("FedAvg + central DP", "none", "8")]
    assert plan[-1][4]["federated.privacy.target_epsilon"] == 8.0 and plan[-2][4]["federated.privacy.mode"] == "none"


def test_study_writes_rows_report_and_plots_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr("fedhar.federated.run.run_federated", fake_run)
    CALLS.clear()
    cfg = build_config(tiny())
    res = run_study("robustness", cfg, out=str(tmp_path / "r"))
    assert len(res["rows"]) == 16 and len(CALLS) == 16
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| FedAvg | 0.905 ± 0.007 | 0.655 ± 0.007 (72%) |" in report  # clean, then 25% sign-flip
    assert "| median | 0.905 ± 0.007 | 0.893 ± 0.007 (99%) |" in report
    assert "| 8 | 0.855 ± 0.007 (94%) | 8.00 |" in report
    for png in ("attack_sign_flip.png", "attack_gaussian.png", "privacy.png"):
        assert (tmp_path / "r" / png).exists()
    row = next(r for r in res["rows"] if r["aggregator"] == "FedAvg" and r["attack"] == "sign_flip")
    assert row["attackers_per_round"] == [[0]] and row["folder"].startswith("points/seed_")
    # a resume keeps every finished point
    CALLS.clear()
    again = run_study("robustness", cfg, out=str(tmp_path / "r"), resume=True)
    assert CALLS == [] and len(again["rows"]) == 16


def test_bad_sections_name_the_key():
    with pytest.raises(ConfigError, match="robustness.attacks"):
        build_config(tiny(attacks=["none"]))
    with pytest.raises(ConfigError, match=r"robustness.fractions.*\[0, 1\)"):
        build_config(tiny(fractions=[0.0, 1.5]))
    with pytest.raises(ConfigError, match=r"robustness.aggregators\[0\]"):
        build_config(tiny(aggregators=[{"label": "x", "with": {}}]))
