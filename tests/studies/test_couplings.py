"""The LLM-couplings study end to end on generated data (tiny Llama, the federation replaced by
one central epoch): screening, the kept couplings with their twins and baselines, zero-shot on
classes no training dataset has, readings as text, and the verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fedhar.config import build_config, load_config
from fedhar.exceptions import ConfigError
from fedhar.studies import run_study
from fedhar.studies.couplings import TWIN, confirm_config, screen_config
from fedhar.transfer.lodo import TEXT_ZERO_SHOT, ZERO_SHOT_ALL

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = {"a": ("walking", "sitting", "standing"), "b": ("walking", "sitting", "jogging"),
           "c": ("walking", "standing", "biking")}


def write_npz(path: Path, classes, subjects: int = 4, per: int = 3, T: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    freq = {"walking": 2.0, "sitting": 0.0, "standing": 0.1, "jogging": 3.0, "biking": 1.2}
    y = np.tile(np.repeat(np.arange(len(classes)), per), subjects)
    f = np.array([freq[c] for c in classes])[y]
    X = 0.3 * rng.standard_normal((len(y), 6, T)) + np.sin(2 * np.pi * f[:, None, None] * np.arange(T) / 20.0)
    np.savez(path, X=X.astype(np.float32), y=y, subject=np.repeat(np.arange(subjects), len(classes) * per), rate_hz=20.0,
             classes=np.array(classes), channels=np.array(CHANNELS), units=np.array(["g"] * 3 + ["rad/s"] * 3))
    return path


def central_stand_in(fcfg, fed_dir):
    from fedhar.federated.task import get_task
    from fedhar.training.loop import fit

    task = get_task(fcfg)
    fit(task.model, task.splits[0], fcfg.train, seed=0)
    return task.model.trainable_state()


def tiny_config(tmp_path: Path, **couplings) -> dict:
    base = yaml.safe_load((REPO / "configs" / "lodo_tiny.yaml").read_text())
    base["name"] = "couplings_tiny"
    base["train"]["epochs"] = 1
    base["federated"].update(min_train_clients=1, min_evaluate_clients=1, min_available_clients=1)
    datasets = [{"name": n, "source": str(write_npz(tmp_path / f"{n}.npz", c, seed=i)), "split": "subject",
                 "test_fraction": 0.25} for i, (n, c) in enumerate(CLASSES.items())]
    base["lodo"].update(datasets=datasets, held_out=["b", "c"], max_windows=None, rate_hz=20, window_seconds=3.2,
                        budgets=["k2"], modes=["full"], variants=[], trees=5,
                        adapt={"epochs": 1, "min_steps": 2, "batch_size": 16, "lr": 3.0e-3},
                        text_zero_shot={"enabled": True, "backbone": "tiny-llama", "max_windows": 6})
    base["couplings"] = {"screen_held_out": "b", "keep": 1, "select_budgets": ["k2"],
                         "couplings": [{"label": "label-name head", "set": {"model.head.kind": "text"}},
                                       {"label": "rotation", "set": {"train.augment.rotation": True}}],
                         "baselines": [{"label": "no LLM", "backbone": {"name": "none"}}], **couplings}
    return base


def test_tiny_couplings_study_screens_confirms_and_answers(tmp_path, monkeypatch):
    monkeypatch.setattr("fedhar.transfer.lodo.train_federated", central_stand_in)
    cfg = build_config(tiny_config(tmp_path))
    results = run_study("llm_couplings", cfg, tmp_path / "run")
    assert results["status"] == "complete"
    scores = results["screening"]["scores"]
    assert set(scores) == {"label-name head", "rotation"} and len(results["kept"]) == 1
    assert results["kept"][0] == max(scores, key=scores.get)
    confirm = yaml.safe_load((tmp_path / "run" / "confirm" / "config.yaml").read_text())
    assert confirm["lodo"]["main_label"] == results["kept"][0] and confirm["lodo"]["held_out"] == ["b", "c"]
    import json

    rows = json.loads((tmp_path / "run" / "confirm" / "results.json").read_text())["rows"]
    unseen = [r for r in rows if r["budget"] == ZERO_SHOT_ALL]
    assert {r["held_out"] for r in unseen} == {"b", "c"}
    assert {r["unseen_classes"][0] for r in unseen} == {"jogging", "biking"}
    assert all(0 <= r["unseen_recall"] <= 1 and r["chance"] == pytest.approx(1 / 3) for r in unseen)
    assert any(r["variant"] == TEXT_ZERO_SHOT for r in unseen)
    rf = [r for r in unseen if r["variant"] == "classical RF"]
    assert rf and all(r["unseen_recall"] == 0.0 for r in rf)  # a forest cannot name a class it never saw
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Does pretraining beat random-init with" in report and "Zero-shot on classes never trained" in report
    assert "## Cost" in report and (tmp_path / "run" / "metrics.csv").exists()
    # tiny-llama is random either way: the twin builds the same model and is left out, said so.
    left = json.loads((tmp_path / "run" / "confirm" / "results.json").read_text())["variants_left_out"]
    assert TWIN.format(label=results["kept"][0]) in left


def test_label_head_scores_unseen_classes_where_a_linear_head_cannot(tmp_path, monkeypatch):
    """The unseen class's windows: the label-name head can pick it (its name has a prototype);
    the forest never does. Recorded per variant in the zero-shot, all-classes rows."""
    monkeypatch.setattr("fedhar.transfer.lodo.train_federated", central_stand_in)
    base = tiny_config(tmp_path)
    base["model"]["head"] = {"kind": "text"}
    base["lodo"].update(held_out=["c"], unseen_classes=["jogging"], text_zero_shot={"enabled": False})
    results = run_study("cross_dataset", build_config(base), tmp_path / "lodo")
    assert results["folds"]["c"]["unseen_classes"] == ["biking"]
    pool = np.load(tmp_path / "lodo" / "folds" / "c" / "pool.npz")
    assert pool["classes"][np.unique(pool["y"])].tolist().count("jogging") == 0  # removed from the sources
    row = next(r for r in results["rows"] if r["budget"] == ZERO_SHOT_ALL and r["variant"] != "classical RF")
    assert row["unseen_recall"] is not None
    zero = next(r for r in results["rows"] if r["budget"] == "zero-shot" and r["variant"] == row["variant"])
    assert zero["trainable_params"] > 0 and zero["tokens_per_window"] > 0


def test_couplings_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="couplings.couplings"):
        build_config({"couplings": {"couplings": [{"label": "x", "sett": {}}]}})
    with pytest.raises(ConfigError, match="couplings.keep"):
        build_config({"couplings": {"keep": 0}})
    base = tiny_config(tmp_path, screen_held_out="nope")
    with pytest.raises(ConfigError, match="couplings.screen_held_out"):
        run_study("llm_couplings", build_config(base), tmp_path / "x")
    mae = build_config({"lodo": {"protocol": "mae", "unseen_classes": ["jogging"]}, "model": {"backbone": {"name": "fold-mae"}}})
    with pytest.raises(ConfigError, match="lodo.unseen_classes"):
        run_study("cross_dataset", mae, tmp_path / "mae")


def test_shipped_config_plans_the_issue_rows():
    cfg = load_config(REPO / "configs" / "llm_couplings.yaml")
    screen = screen_config(cfg)
    assert screen.seeds is None and screen.lodo.held_out == ["wisdm"] and len(screen.lodo.variants) == 7
    confirm = confirm_config(cfg, ["label-name head", "rotation augmentation"])
    plan = {v.label: v.apply(confirm) for v in confirm.lodo.variant_plan(confirm)[0]}
    assert plan["label-name head"].model.head.kind == "text"
    assert plan[TWIN.format(label="label-name head")].model.backbone.pretrained is False
    rot = plan["rotation augmentation"]
    assert rot.model.head.kind == "linear" and rot.train.augment.rotation  # each coupling alone
    assert plan["no LLM"].model.backbone.name == "none" and plan["no LLM"].model.head.kind == "linear"
    assert confirm.seeds == [0, 1, 2]
