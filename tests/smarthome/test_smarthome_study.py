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
        # the zero-shot investigation: 2 prompts x 3 normalisations x 3 calibrations, each with its most-predicted class
        assert len(home["zero_shot"]) == 18 and {z["calibration"] for z in home["zero_shot"]} == {"none", "content-free", "domain"}
        assert all(0 < z["top_share"] <= 1 and 1 <= z["classes_predicted"] for z in home["zero_shot"])
        # the teacher check ran on the last training days before any distillation
        check = home["models"]["distilled student"]["check"]
        assert check["action"] in ("distil", "skip") and check["teacher_val_f1"] is not None
        assert home["models"]["teacher"]["epochs"] >= 1
        c = home["costs"]
        assert c["teacher"]["backbone_params"] > c["student"]["backbone_params"] > 0
        assert c["teacher"]["inference_ms_per_window"] > 0
    # the teacher's logits were computed once per home and cached on disk
    assert r["homes"][-1]["teacher_logit_computations"] == 2 and len(list((out / "cache").glob("*.npy"))) == 2
    for name in ("config.yaml", "results.json", "metrics.csv", "report.md", "macro_f1.png"):
        assert (out / name).exists(), name
    assert "distilled student" in res.stdout and "| ordonez_b |" in res.stdout
    report = (out / "report.md").read_text()
    assert "## Teacher check" in report and "## Zero-shot, every variant" in report
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


FED_ARGS = ["--set", "smarthome.mode=federated", "--set", "model.backbone.layers=1", "--set", "model.text.trim_vocab=false",
            "--set", "federated.rounds=2", "--set", "federated.local_test_fraction=0.0", "--set", "federated.min_train_clients=1",
            "--set", "federated.min_available_clients=1", "--set", "federated.min_evaluate_clients=1",
            "--set", "smarthome.personalize={epochs: 3, min_steps: 5, batch_size: 16, lr: 0.003}"]


def test_tiny_federated_study_personalises_after_federation(generated_homes, tmp_path):
    """Two generated homes as clients: own model, random forest, FedAvg's global model, the global model
    personalised on each home's training days, FedPer, and FedPer's model personalised; the personal states
    are saved and reproduce the scores."""
    import torch

    from fedhar.config import derive, load_config
    from fedhar.data.sources import load_splits
    from fedhar.distill.compare import score_model
    from fedhar.federated.checkpoint import load_checkpoint
    from fedhar.federated.personal import load_personal
    from fedhar.smarthome.federated import home_splits
    from fedhar.training.central import build_for_data

    out = tmp_path / "fed"
    res = _run(["--config", "configs/smarthome_tiny.yaml", "--out", str(out), "--set", f"data.source={generated_homes}",
                "--set", "smarthome.homes=[ordonez_a,ordonez_b]", "--set", "smarthome.federations=[federated,fedper]",
                "--set", "smarthome.personalize_from=[federated,fedper]", "--set", "federated.round_lr=cosine", *FED_ARGS])
    r = json.loads((out / "results.json").read_text())
    assert [h["home"] for h in r["homes"]] == ["ordonez_a", "ordonez_b"]
    for h in r["homes"]:
        assert set(h["models"]) == {"classical", "own model", "federated", "federated + personalised", "FedPer",
                                    "FedPer + personalised"}
        for m in h["models"].values():
            assert 0 <= m["macro_f1"] <= 1 and 0 <= m["accuracy"] <= 1
        assert h["models"]["FedPer"]["personal_state"] is True  # each home's own head, not the untrained global one
        assert h["models"]["federated + personalised"]["steps"] >= 5 and h["models"]["FedPer + personalised"]["steps"] >= 5
    fed = json.loads((out / "federated" / "results.json").read_text())
    assert fed["complete"] and fed["num_clients"] == 2
    assert fed["model"]["update_bytes"] < 4 * fed["model"]["backbone_params"]  # only LoRA + head crossed the network
    report = (out / "report.md").read_text()
    assert "Federated + personalised >= own model on" in report and "FedPer + personalised >= own model on" in report
    assert "| ordonez_b |" in res.stdout

    # the saved personal state (LoRA + head only) on top of the global model reproduces the recorded score
    cfg = derive(load_config(out / "config.yaml"), {"data.options.homes": ["ordonez_a", "ordonez_b"]}, source="test")
    train, test = load_splits(cfg.data, cfg.seed)
    model = build_for_data(cfg, train)
    for fed, row in (("federated", "federated + personalised"), ("fedper", "FedPer + personalised")):
        state = load_checkpoint(out / fed).global_state
        for idx, (_, te) in enumerate(home_splits(train, test, ["ordonez_a", "ordonez_b"])):
            mine = load_personal(out / fed / "clients" / f"client_{idx:04d}" / "personalised.safetensors")
            assert mine and all(("lora_" in k) or k.startswith("head.") for k in mine), sorted(mine)[:5]
            assert any(not torch.equal(mine[k], state[k]) for k in mine)  # fine-tuning changed them
            model.load_trainable_state({**state, **mine}, where="test")
            assert score_model(model, te, cfg.train)["macro_f1"] == pytest.approx(r["homes"][idx]["models"][row]["macro_f1"])


def test_tiny_feddf_federation_distils_on_another_homes_days(generated_homes, tmp_path):
    """FedDF's public set is the unlabelled training days of a home outside the federation; a public home
    that is also a client is refused, and a missing one stops the study before any training."""
    from fedhar.config import load_config
    from fedhar.exceptions import ConfigError

    out = tmp_path / "feddf"
    _run(["--config", "configs/smarthome_tiny.yaml", "--out", str(out), "--set", f"data.source={generated_homes}",
          "--set", "smarthome.homes=[ordonez_a]", "--set", "smarthome.federations=[feddf]",
          "--set", "smarthome.public_homes=[ordonez_b]", *FED_ARGS])
    r = json.loads((out / "results.json").read_text())
    assert set(r["homes"][0]["models"]) == {"classical", "own model", "FedDF"}
    saved = load_config(out / "feddf" / "config.yaml")
    assert saved.federated.distill.enabled and saved.federated.distill.public.options["homes"] == ["ordonez_b"]
    with pytest.raises(ConfigError, match="also clients"):
        load_config(REPO / "configs/smarthome_tiny.yaml", ["smarthome.mode=federated", "smarthome.homes=[ordonez_a,ordonez_b]",
                                                             "smarthome.public_homes=[ordonez_b]"])
    with pytest.raises(ConfigError, match=r"personalize_from.*\['fedper'\].*does not run"):
        load_config(REPO / "configs/smarthome_tiny.yaml", ["smarthome.mode=federated", "smarthome.federations=[feddf]",
                                                             "smarthome.personalize_from=[fedper]"])
    bad = tmp_path / "bad"
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "simulations/smarthome.py", "--config", "configs/smarthome_tiny.yaml", "--out", str(bad),
                          "--set", f"data.source={generated_homes}", "--set", "smarthome.homes=[ordonez_a,ordonez_b]",
                          *FED_ARGS], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0 and "kasteren2010" in res.stderr and "Traceback" not in res.stderr
    assert not (bad / "federated").exists()  # refused before the first federation


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
