"""The smart-home study end to end on generated homes: per home, and federated over two homes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedhar.smarthome.study import MODELS

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str]):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "simulations/smarthome.py", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_tiny_smarthome_study_compares_all_models_and_resumes(generated_homes, tmp_path):
    out = tmp_path / "run"
    args = ["--config", "configs/smarthome_tiny.yaml", "--out", str(out), "--set", f"data.source={generated_homes}",
            "--set", "smarthome.homes=[ordonez_a,ordonez_b]"]
    res = _run(args)
    r = json.loads((out / "results.json").read_text())
    assert [h["home"] for h in r["homes"]] == ["ordonez_a", "ordonez_b"]
    for home in r["homes"]:
        assert set(home["models"]) == set(MODELS)
        for m in home["models"].values():
            assert 0 <= m["macro_f1"] <= 1 and 0 <= m["accuracy"] <= 1
        c = home["costs"]
        assert c["teacher"]["backbone_params"] > c["student"]["backbone_params"] > 0
        assert c["teacher"]["inference_ms_per_window"] > 0
    # the teacher's logits were computed once per home and cached on disk
    assert r["homes"][-1]["teacher_logit_computations"] == 2 and len(list((out / "cache").glob("*.npy"))) == 2
    for name in ("config.yaml", "results.json", "metrics.csv", "report.md", "macro_f1.png"):
        assert (out / name).exists(), name
    assert "distilled student" in res.stdout and "| ordonez_b |" in res.stdout
    assert set(r["cells"]) == {"ordonez_a", "ordonez_b"} and r["status"] == "complete"
    # a study interrupted after its first home resumes with that home kept: only the second is recomputed
    first, second = r["homes"]
    del r["cells"]["ordonez_b"]
    r.update(homes=[first], status="failed", complete=False)
    (out / "results.json").write_text(json.dumps(r))
    _run(args + ["--resume"])
    again = json.loads((out / "results.json").read_text())
    assert again["complete"] and again["homes"][0] == first  # kept as it was, timings included
    assert again["homes"][1]["home"] == "ordonez_b" and again["homes"][1]["models"].keys() == second["models"].keys()
    assert again["homes"][1]["models"]["classical"]["macro_f1"] == second["models"]["classical"]["macro_f1"]


def test_tiny_federated_run_over_two_generated_homes(generated_homes, tmp_path):
    out = tmp_path / "fed"
    _run(["--config", "configs/smarthome_tiny.yaml", "--out", str(out), "--set", f"data.source={generated_homes}",
          "--set", "smarthome.mode=federated", "--set", "smarthome.homes=[ordonez_a,ordonez_b]",
          "--set", "model.backbone.layers=1", "--set", "model.text.trim_vocab=false",
          "--set", "federated.rounds=2", "--set", "federated.local_test_fraction=0.0",
          "--set", "federated.min_available_clients=2", "--set", "federated.min_train_clients=2"])
    r = json.loads((out / "results.json").read_text())
    assert [h["home"] for h in r["homes"]] == ["ordonez_a", "ordonez_b"]
    for h in r["homes"]:
        assert 0 <= h["federated_macro_f1"] <= 1 and 0 <= h["own_macro_f1"] <= 1 and h["test_windows"] > 0
    fed = json.loads((out / "federated" / "results.json").read_text())
    assert fed["complete"] and fed["num_clients"] == 2
    # only LoRA + head crossed the network, never the backbone
    assert fed["model"]["update_bytes"] < 4 * fed["model"]["backbone_params"]
    assert (out / "report.md").read_text().count("| ordonez_") == 2


def test_study_checks_refuse_settings_the_study_would_override(tmp_path):
    """`data.options.homes` and a federated partition other than one client per home would be silently replaced."""
    from fedhar.config import load_config
    from fedhar.exceptions import ConfigError
    from fedhar.studies import run_study

    with pytest.raises(ConfigError, match="`data.options.homes` is set by the smart-home study"):
        run_study("smarthome", load_config(REPO / "configs/smarthome_tiny.yaml", ["data.options.homes=[ordonez_b]"]), str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="needs `federated.partition: subject`"):
        run_study("smarthome", load_config(REPO / "configs/smarthome_tiny.yaml", ["smarthome.mode=federated", "federated.partition=iid",
                                                                                  "federated.num_clients=2"]), str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
