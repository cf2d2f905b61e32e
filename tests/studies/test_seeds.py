"""Seeds: every study over a list of seeds, each a resumable sub-run, aggregated with intervals."""

from __future__ import annotations

import json

import pytest

import fedhar.training.central as central
from fedhar.cli import main
from fedhar.config import derive, load_config
from fedhar.exceptions import ConfigError
from fedhar.studies import run_study

SMOKE = "configs/smoke.yaml"
FAST = ["--set", "train.epochs=1"]


def results(path):
    return json.loads((path / "results.json").read_text())


def test_seeds_run_each_seed_in_its_own_folder_and_aggregate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", SMOKE, "--seeds", "0,1,2", "--out", str(out), *FAST]) == 0
    parent = results(out)
    assert parent["complete"] and parent["multi_seed"] and parent["seeds"] == [0, 1, 2]
    assert load_config(out / "config.yaml").seeds == [0, 1, 2]
    per_seed = {s: results(out / f"seed_{s}") for s in (0, 1, 2)}
    for s, r in per_seed.items():
        assert r["complete"] and r["seed"] == s
        saved = load_config(out / f"seed_{s}" / "config.yaml")
        assert saved.seed == s and saved.seeds is None
    f1 = [per_seed[s]["final"]["macro_f1"] for s in (0, 1, 2)]
    cell = parent["aggregate"]["cells"][0]["metrics"]["macro_f1"]
    assert cell["n"] == 3 and cell["values"] == {str(s): v for s, v in zip((0, 1, 2), f1)}
    assert cell["mean"] == pytest.approx(sum(f1) / 3)
    assert cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    report = (out / "report.md").read_text()
    assert "±" in report and "t-interval" in report
    assert (out / "metrics.csv").read_text().splitlines()[0].count("macro_f1_mean") == 1
    assert (out / "errorbars.png").stat().st_size > 0
    assert "3 seeds (0, 1, 2)" in capsys.readouterr().out


def test_a_seed_changes_everything_random_and_equals_a_single_run_with_that_seed(tmp_path, smoke_config):
    cfg = derive(smoke_config(), {"train.epochs": 1, "seeds": [0, 1]})
    run_study("train", cfg, str(tmp_path / "multi"))
    one = run_study("train", derive(cfg, {"seeds": None, "seed": 1}), str(tmp_path / "one"))
    s0, s1 = (results(tmp_path / "multi" / f"seed_{s}") for s in (0, 1))
    assert s0["history"][0]["train_loss"] != s1["history"][0]["train_loss"]  # init, split and order all moved
    assert s0["data"]["test"]["windows"] != s1["data"]["test"]["windows"] or s0["final"] != s1["final"]
    assert one["final"] == s1["final"] and one["history"][0]["train_loss"] == s1["history"][0]["train_loss"]


def test_resume_keeps_finished_seeds_and_reruns_the_failed_one(tmp_path, smoke_config, monkeypatch):
    cfg = derive(smoke_config(), {"train.epochs": 1, "seeds": [0, 1]})
    real, calls = central.run_central, []

    def flaky(c, folder):
        calls.append(c.seed)
        if c.seed == 1 and calls.count(1) == 1:
            raise RuntimeError("client lost")
        return real(c, folder)

    monkeypatch.setattr(central, "run_central", flaky)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_study("train", cfg, str(out))
    assert results(out)["status"] == "failed" and results(out / "seed_0")["complete"]
    assert results(out / "seed_1")["status"] == "failed"
    assert len(results(out)["aggregate"]["cells"][0]["metrics"]["macro_f1"]["values"]) == 1  # seed 0 already reported
    seed0 = (out / "seed_0" / "results.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        run_study("train", cfg, str(out))
    done = run_study("train", cfg, str(out), resume=True)
    assert calls == [0, 1, 1]  # seed 0 was not run again
    assert (out / "seed_0" / "results.json").read_text() == seed0
    assert done["complete"] and done["aggregate"]["cells"][0]["metrics"]["macro_f1"]["n"] == 2


def test_resume_with_another_config_names_the_key(tmp_path, smoke_config):
    cfg = derive(smoke_config(), {"train.epochs": 1, "seeds": [0]})
    run_study("train", cfg, str(tmp_path))
    with pytest.raises(ConfigError, match="train.lr"):
        run_study("train", derive(cfg, {"train.lr": 0.5}), str(tmp_path), resume=True)


def test_a_kept_seed_run_must_match_the_config(tmp_path, smoke_config):
    """A finished seed folder under a new parent is kept only if it ran the same config."""
    cfg = derive(smoke_config(), {"train.epochs": 1})
    run_study("train", derive(cfg, {"train.lr": 0.5}), str(tmp_path / "seed_0"))
    with pytest.raises(ConfigError, match="train.lr"):
        run_study("train", derive(cfg, {"seeds": [0]}), str(tmp_path))


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--seeds", "0,0"], "distinct"),
    (["--seeds", "1,2", "--set", "seed=5"], "not among `seeds`"),
])
def test_bad_seeds_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert main(["train", SMOKE, "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedhar: error:") and message in err and "Traceback" not in err


def test_simulate_seeds_prepare_each_seed_folder(tmp_path, smoke_config, monkeypatch):
    """``simulate`` fills its client-state folder (FedPer heads) per seed run (the Flower run itself is covered in
    tests/federated; here the runner is replaced to keep this fast)."""
    import fedhar.federated.run as fed_run

    seen = {}

    def fake(c, folder, engine="simulation"):
        seen[c.seed] = c.federated.state_dir
        return folder.complete(final={"macro_f1": 0.5 + c.seed / 10, "accuracy": 0.6})

    monkeypatch.setattr(fed_run, "run_in_folder", fake)
    out = tmp_path / "sim"
    done = run_study("simulate", derive(smoke_config(), {"seeds": [0, 1], "federated.personal_parts": ["head"]}), str(out))
    assert set(seen) == {0, 1} and all(str(out / f"seed_{s}") in seen[s] for s in (0, 1))
    assert done["aggregate"]["cells"][0]["metrics"]["macro_f1"]["mean"] == pytest.approx(0.55)
