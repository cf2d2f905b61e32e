"""What one tiny federated run leaves behind: a quiet log, its warnings, a loadable model, the
confusion matrix and per-class F1, explained metrics and plots (one Simulation Engine run, shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

RUN = """
import sys
from fedhar.config import derive, load_config
from fedhar.studies import run_study

cfg = derive(load_config("configs/smoke.yaml"), {"federated.min_available_clients": 9})
run_study("simulate", cfg, sys.argv[1], supernodes=3)
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, run_python) -> tuple[Path, str]:
    """(run folder, everything the run printed) of a 2-round run re-partitioned into 3 clients."""
    out = tmp_path_factory.mktemp("sim") / "run"
    res = run_python(RUN, str(out))
    return out, res.stdout + res.stderr


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def test_flower_output_holds_no_config(run):
    folder, output = run
    assert "Starting" in output and "ConfigRecord (train)" in output  # Flower's banner is there ...
    for key in ("n_per_class", "local_epochs", "tiny-llama", "test_fraction"):
        assert key not in output, key  # ... without the config's YAML
    assert "n_per_class" in (folder / "config.yaml").read_text()
    assert results(folder)["complete"] and [r["round"] for r in results(folder)["rounds"]] == [1, 2]


def test_adjustments_are_warnings_in_results(run):
    folder, output = run
    r = results(folder)
    assert r["num_clients"] == 3 and all(x["clients"] == 3 for x in r["rounds"])
    assert r["warnings"] == ["--supernodes 3 re-partitions the config's 4 clients into 3",
                             "`federated.min_available_clients` is 9 but the run has only 3 clients; 3 is used."]
    assert "re-partitions the config's 4 clients into 3" in output


def test_saved_model_predicts_as_the_final_global_state(run):
    from fedhar.config import load_config
    from fedhar.federated.task import FederatedTask
    from fedhar.models.checkpoint import load_model_state
    from fedhar.training.loop import predict_logits

    folder, _ = run
    task = FederatedTask(load_config(folder / "config.yaml"))
    test = task.splits[1]
    model = task.model
    initial = {k: v.clone() for k, v in model.trainable_state().items()}
    load_model_state(model, folder / "model")
    saved = predict_logits(model, test.X)
    state = json.loads((folder / "checkpoint" / "state.json").read_text())
    final = load_file(str(folder / "checkpoint" / state["folder"] / "global_state.safetensors"))
    model.load_trainable_state(final)
    expected = predict_logits(model, test.X)
    assert np.array_equal(saved.argmax(1), expected.argmax(1)) and np.array_equal(saved, expected)
    assert not all(torch.equal(v, initial[k]) for k, v in final.items())  # trained, not the initial model
    with safe_open(str(folder / "model" / "trainable_state.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["backbone"] == "tiny-llama" and meta["classes"].split("\n") == list(test.classes)
    assert (folder / "model" / "adapter").is_dir()


def test_the_global_model_exports_with_parity(run, tmp_path):
    """`fedhar export` of a federated run: its global model, checked on the held-out test split."""
    from fedhar.export.run import export_run

    folder, _ = run
    report = export_run(folder, tmp_path / "global.onnx")
    assert report["parity"]["passed"] and report["parity"]["agreement"] >= 0.995
    assert report["source"] == str(folder / "model")


def test_results_hold_the_confusion_matrix_per_class_f1_and_explanations(run):
    folder, _ = run
    r = results(folder)
    cm = r["confusion_matrix"]
    assert len(cm["matrix"]) == len(cm["classes"]) and sum(map(sum, cm["matrix"])) > 0
    assert list(r["per_class_f1"]) == cm["classes"] and all(0 <= v <= 1 for v in r["per_class_f1"].values())
    assert np.mean(list(r["per_class_f1"].values())) == pytest.approx(r["final"]["macro_f1"], abs=1e-9) or \
        min(map(sum, cm["matrix"])) == 0  # macro-F1 averages the classes present
    assert "held-out" in r["metrics_explained"]["macro_f1"] and "local" in r["metrics_explained"]["fed_macro_f1"]
    for name in ("rounds.png", "bytes.png", "confusion_matrix.png"):
        assert (folder / name).stat().st_size > 1000, name
    assert not (folder / "bytes_per_round.png").exists()
