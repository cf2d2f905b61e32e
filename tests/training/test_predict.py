"""``predict_run``: a finished run's saved model on new windows, its CSV, metrics and errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from fedhar.config import config_to_dict, derive, load_config
from fedhar.data import make_synthetic
from fedhar.exceptions import ConfigError, DataError, FedharError
from fedhar.models import build_model
from fedhar.models.checkpoint import load_model_state
from fedhar.models.har_model import part_of
from fedhar.reporting import write_config
from fedhar.studies import run_study
from fedhar.training.predict import predict_run

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
CLASSES = ("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "lying")
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished central run (tiny Llama, generated signals, one epoch)."""
    out = tmp_path_factory.mktemp("predict") / "run"
    run_study("train", load_config(SMOKE, ["train.epochs=1"]), str(out))
    return out


def _npz(path, *, channels=CHANNELS, classes=None, extra_class=0, rate_hz=50.0, labels=True, subject=True, seed=7):
    """A generic archive of generated windows; ``extra_class`` windows of a class the model lacks."""
    ds = make_synthetic(n_per_class=4, subjects=2, seed=seed)
    order = [ds.channels.index(c) for c in channels]
    X, y, names = ds.X[:, order], ds.y, list(classes or ds.classes)
    if extra_class:
        X = np.concatenate([X, ds.X[:extra_class][:, order]])
        y = np.concatenate([y, np.full(extra_class, len(names))])
        names.append("skydiving")
    arrays = {"X": X, "channels": np.array(channels), "classes": np.array(names), "rate_hz": np.array(rate_hz)}
    if labels:
        arrays["y"] = y
    if subject:
        arrays["subject"] = np.arange(len(X)) % 3
    np.savez(path, **arrays)
    return path


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _separate_model(run_dir):
    """The saved model, loaded independently of predict."""
    cfg = load_config(run_dir / "config.yaml")
    model = build_model(cfg.model, CHANNELS, 128, CLASSES, cfg.seed)
    load_model_state(model, run_dir / "model")
    return model.eval()


def test_labelled_npz_predictions_and_metrics(run, tmp_path):
    # channels in another order than the model's, and 5 windows of a class the model does not know
    data = _npz(tmp_path / "mine.npz", channels=tuple(reversed(CHANNELS)), extra_class=5)
    res = predict_run(run, str(data))
    out = run / "predictions" / "mine.csv"
    assert res["out"] == str(out) and out.is_file()
    rows = _rows(out)
    assert res["windows"] == len(rows) == 24 + 5
    assert list(rows[0]) == ["index", "subject", "true", "predicted", *(f"p_{c}" for c in CLASSES)]
    assert res["classes"] == list(CLASSES)

    z = np.load(data)
    X = z["X"][:, [list(z["channels"]).index(c) for c in CHANNELS]]  # back in the model's order
    with torch.no_grad():
        logits = _separate_model(run)(torch.from_numpy(X))
    probs = torch.softmax(logits, 1).numpy()
    assert [r["predicted"] for r in rows] == [CLASSES[i] for i in logits.argmax(1).tolist()]
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(got, probs, atol=1e-5)
    assert [int(r["subject"]) for r in rows] == (np.arange(29) % 3).tolist()

    m = res["metrics"]
    known = [r for r in rows if r["true"] in CLASSES]
    truth = [CLASSES.index(r["true"]) for r in known]
    pred = [CLASSES.index(r["predicted"]) for r in known]
    assert m["windows"] == len(known) == 24 and m["unknown_class_windows"] == 5
    assert m["unknown_classes"] == ["skydiving"]
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
    assert m["confusion"]["matrix"] == confusion_matrix(truth, pred, labels=range(6)).tolist()
    per_class = f1_score(truth, pred, labels=range(6), average=None, zero_division=0)
    for k, name in enumerate(CLASSES):
        if k in truth or k in pred:
            assert m["per_class_f1"][name] == pytest.approx(per_class[k])
        else:
            assert m["per_class_f1"][name] is None
    assert res["metrics_file"] == str(run / "predictions" / "mine_metrics.json")
    assert json.loads((run / "predictions" / "mine_metrics.json").read_text())["macro_f1"] == pytest.approx(m["macro_f1"])
    assert (run / "predictions" / "mine_confusion.png").stat().st_size > 0


def test_model_folder_and_explicit_out_give_the_same_predictions(run, tmp_path):
    data = _npz(tmp_path / "d.npz")
    a = predict_run(run, str(data), out=tmp_path / "a.csv")
    b = predict_run(run / "model", str(data), out=tmp_path / "b.csv")
    assert _rows(a["out"]) == _rows(b["out"])
    assert a["metrics"] == b["metrics"]


def test_windows_of_unknown_classes_are_predicted_without_metrics(run, tmp_path):
    data = _npz(tmp_path / "field.npz", classes=["unlabelled"] * 6, subject=False)
    res = predict_run(run, str(data), out=tmp_path / "field.csv")
    rows = _rows(tmp_path / "field.csv")
    assert res["metrics"] is None and res["metrics_file"] is None
    assert not (tmp_path / "field_metrics.json").exists()
    assert len(rows) == res["windows"] == 24
    assert "subject" not in rows[0]  # the archive has no subject ids
    assert {r["predicted"] for r in rows} <= set(CLASSES)


def test_npz_without_labels_is_predicted_without_metrics(run, tmp_path):
    """Windows with no `y` at all: predictions and probabilities, equal to the model's, no metrics."""
    data = _npz(tmp_path / "nolabels.npz", labels=False)
    res = predict_run(run, str(data), out=tmp_path / "x.csv")
    rows = _rows(tmp_path / "x.csv")
    assert res["metrics"] is None and not (tmp_path / "x_metrics.json").exists()
    assert len(rows) == res["windows"] == 24 and {r["true"] for r in rows} == {""}
    with np.load(data) as z:
        X = torch.as_tensor(z["X"], dtype=torch.float32)
    with torch.no_grad():
        expected = _separate_model(run)(X).argmax(1).numpy()
    assert [r["predicted"] for r in rows] == [CLASSES[i] for i in expected]


def test_training_still_needs_labels(tmp_path):
    from fedhar.data.loaders.npz import load_npz

    data = _npz(tmp_path / "nolabels.npz", labels=False)
    with pytest.raises(DataError, match="missing required key `y`"):
        load_npz(data)


def test_personal_state_goes_on_top_of_the_global_model(run, tmp_path):
    """A client's personal head (a FedPer ``personal.safetensors``) replaces the global one."""
    from safetensors.torch import save_file

    model = _separate_model(run)
    head = {k: torch.zeros_like(v) for k, v in model.trainable_state().items() if part_of(k) == "head"}
    bias = next(k for k, v in head.items() if k.endswith("bias") and tuple(v.shape) == (len(CLASSES),))
    head[bias][3] = 5.0  # a zero head whose output bias favours class 3: logits are exactly the bias
    fed = tmp_path / "fed"
    shutil.copytree(run, fed, ignore=shutil.ignore_patterns("predictions"))
    client = fed / "clients" / "client_0001"
    client.mkdir(parents=True)
    save_file(head, str(client / "personal.safetensors"))
    data = _npz(tmp_path / "d.npz")
    res = predict_run(client, str(data))
    assert res["out"] == str(fed / "predictions" / "d_client_0001_personal.csv")
    expected = np.exp(5.0) / (np.exp(5.0) + len(CLASSES) - 1)
    rows = _rows(res["out"])
    assert {r["predicted"] for r in rows} == {CLASSES[3]}
    np.testing.assert_allclose([float(r["p_sitting"]) for r in rows], expected, rtol=1e-4)
    plain = _rows(predict_run(fed, str(data), out=tmp_path / "plain.csv")["out"])
    assert not np.allclose([float(r["p_sitting"]) for r in plain], expected, rtol=1e-3)  # the global head


def test_errors_name_the_problem(run, tmp_path):
    data = _npz(tmp_path / "d.npz")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "config.yaml", bare / "config.yaml")
    with pytest.raises(ConfigError, match=r"no saved model .*model/ folder"):
        predict_run(bare, str(data))

    classical = tmp_path / "classical"
    classical.mkdir()
    write_config(classical, config_to_dict(derive(load_config(run / "config.yaml"), {"model.backbone.name": "classical"})))
    with pytest.raises(ConfigError, match=r"classical run .* needs a neural run's model/ folder"):
        predict_run(classical, str(data))

    acc_only = _npz(tmp_path / "acc.npz", channels=CHANNELS[:3])
    with pytest.raises(DataError) as err:
        predict_run(run, str(acc_only), out=tmp_path / "x.csv")
    assert "[acc_x, acc_y, acc_z]" in err.value.reason and f"[{', '.join(CHANNELS)}]" in err.value.reason

    with pytest.raises(FedharError, match="neither a known dataset"):
        predict_run(run, "no_such_dataset", out=tmp_path / "x.csv")
    with pytest.raises(ConfigError, match="no such run folder"):
        predict_run(tmp_path / "missing", str(data))
    with pytest.raises(ConfigError, match=r"expected a \.csv"):
        predict_run(run, str(data), out=tmp_path / "x.npz")


def test_another_sampling_rate_is_refused_unless_resampled(run, tmp_path):
    slow = _npz(tmp_path / "slow.npz", rate_hz=25.0)
    with pytest.raises(DataError, match=r"25 Hz .* 50 Hz .*data.rate_hz=50"):
        predict_run(run, str(slow), out=tmp_path / "x.csv")
    res = predict_run(run, str(slow), out=tmp_path / "x.csv", overrides=["data.rate_hz=50"])
    assert res["windows"] == 24


def test_personalisation_study_layout_and_ambiguous_client_folder(run, tmp_path):
    """The study keeps the global model in <run>/global and one file per strategy per client."""
    from safetensors.torch import save_file

    study = tmp_path / "study"
    shutil.copytree(run, study / "global", ignore=shutil.ignore_patterns("predictions"))
    head = {k: v for k, v in _separate_model(run).trainable_state().items() if part_of(k) == "head"}
    client = study / "clients" / "client_0002"
    client.mkdir(parents=True)
    save_file(head, str(client / "finetune_head.safetensors"))
    data = _npz(tmp_path / "d.npz")
    res = predict_run(client / "finetune_head.safetensors", str(data))
    assert res["out"] == str(study / "predictions" / "d_client_0002_finetune_head.csv")
    glob = predict_run(study / "global", str(data), out=tmp_path / "g.csv")
    assert _rows(res["out"]) == _rows(glob["out"])  # the same head on the same global model
    save_file(head, str(client / "finetune_all.safetensors"))
    with pytest.raises(ConfigError, match="finetune_all.safetensors, finetune_head.safetensors; pass the file"):
        predict_run(client, str(data))


def test_a_source_name_predicts_all_its_windows(run):
    """`synthetic` (the run's own source) with the run's options: every window, not the test split."""
    res = predict_run(run, "synthetic")
    assert res["windows"] == 20 * 6  # n_per_class x classes of configs/smoke.yaml
    assert res["out"] == str(run / "predictions" / "synthetic.csv")
    assert res["metrics"]["windows"] == 120 and res["metrics"]["unknown_class_windows"] == 0
