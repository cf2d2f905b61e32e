"""Each study's saved results as rows for seeds and compare, and its table's columns."""

from __future__ import annotations

import pytest

from fedhar.reporting.seeds import aggregate
from fedhar.studies import STUDIES
from fedhar.studies import rows as R


def test_every_study_names_columns_its_rows_have():
    samples = {
        "train": {"final": {"macro_f1": 0.9, "accuracy": 0.91, "loss": 0.3}, "seconds": 10.0},
        "cross_dataset": {"rows": [{"held_out": "a", "variant": "v", "mode": "full", "budget": "k=1", "macro_f1": 0.5}]},
        "personalization": {"rows": [{"client": 0, "strategy": "head", "global_f1": 0.5, "personal_f1": 0.7, "gain": 0.2}]},
        "continual": {"runs": [{"model": "m", "strategy": "replay", "continual": {"acc": 0.8, "bwt": -0.1, "matrix": [[1]]}}]},
        "sweep": {"rows": [{"variant": "v", "value": 4, "macro_f1": 0.7}]},
        "smarthome": {"homes": [{"home": "A", "models": {"llm": {"macro_f1": 0.8, "accuracy": 0.9}}}]},
        "distill": {"models": {"student": {"macro_f1": 0.6, "accuracy": 0.7}}},
    }
    for name, results in samples.items():
        study = STUDIES.get(name)
        rows = study.seed_rows(results)
        assert rows, name
        for col in (*study.table.keys, study.table.metric):
            assert col in rows[0], (name, col)


def test_personalization_rows_add_the_global_model_as_a_strategy():
    rows = R.personalization_rows({"rows": [
        {"client": 0, "strategy": "head", "global_f1": 0.5, "personal_f1": 0.7, "gain": 0.2},
        {"client": 0, "strategy": "full", "global_f1": 0.5, "personal_f1": 0.8, "gain": 0.3},
        {"client": 1, "strategy": "head", "global_f1": 0.6, "personal_f1": 0.6, "gain": 0.0}]})
    glob = [r for r in rows if r["strategy"] == "global (none)"]
    assert [(r["client"], r["personal_f1"]) for r in glob] == [(0, 0.5), (1, 0.6)]


def test_federated_smarthome_rows_and_the_per_home_paired_summary():
    """Every model of every home becomes a row; the multi-seed report pairs each federated row with the
    home's own model over seeds and counts the homes where it is at least as good."""
    from fedhar.config import ExperimentConfig

    def results(noise):
        return {"homes": [{"home": h, "models": {"own model": {"macro_f1": own + noise, "accuracy": 0.8},
                                                   "federated + personalised": {"macro_f1": own + gain + noise, "accuracy": 0.8}}}
                          for h, own, gain in (("A", 0.5, 0.10), ("B", 0.7, -0.05))]}

    rows = R.smarthome_rows(results(0.0))
    assert {(r["home"], r["model"], round(r["macro_f1"], 6)) for r in rows} == {
        ("A", "own model", 0.5), ("A", "federated + personalised", 0.6), ("B", "own model", 0.7),
        ("B", "federated + personalised", 0.65)}
    per_seed = {s: R.smarthome_rows(results(n)) for s, n in enumerate((0.0, 0.01, -0.02))}
    md = STUDIES.get("smarthome").summarize(per_seed, ExperimentConfig())
    assert "| A | +0.100 (p=0) |" in md and "| B | -0.050 (p=0) |" in md
    assert "| homes where row >= own model | 1 of 2 |" in md
    assert STUDIES.get("smarthome").summarize({0: [{"home": "A", "model": "teacher", "macro_f1": 0.5}]}, ExperimentConfig()) == ""


def test_personalization_verdict_pairs_clients_and_seeds():
    """Three seeds x two clients: full beats head by 0.10 +- noise on every pair -> best."""
    per_seed = {}
    for s, noise in enumerate((0.00, 0.01, -0.01)):
        per_seed[s] = R.personalization_rows({"rows": [
            {"client": c, "strategy": st, "global_f1": 0.5, "personal_f1": 0.6 + (0.1 if st == "full" else 0) + noise + c / 100,
             "gain": 0.1} for c in (0, 1) for st in ("head", "full")]})
    agg = aggregate(per_seed, STUDIES.get("personalization").table)
    v = agg["verdicts"][0]
    assert v["leader"] == "full" and v["verdict"] == "best" and v["comparisons"]["head"]["n"] == 6
    pooled = {c["strategy"]: c["metrics"]["personal_f1"] for c in agg["pooled"]}
    assert pooled["full"]["n"] == 3 and pooled["full"]["mean"] == pytest.approx(0.705)
