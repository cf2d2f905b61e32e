"""Tiny end-to-end leave-one-dataset-out (real data) and personalisation (generated) runs."""

import json
from pathlib import Path

import pytest
import torch

from fedhar.config import build_config, load_config
from fedhar.exceptions import ConfigError
from fedhar.federated.personal import load_personal
from fedhar.federated.task import FederatedTask
from fedhar.studies import run_study

REPO = Path(__file__).resolve().parents[2]


def test_tiny_lodo_writes_every_variant_budget_and_mode(tmp_path, real_data, monkeypatch):
    monkeypatch.setenv("FEDHAR_DATA_DIR", str(real_data))
    cfg = load_config(REPO / "configs" / "lodo_tiny.yaml")
    results = run_study("cross_dataset", cfg, tmp_path / "lodo")
    rows = results["rows"]
    variants = {r["variant"] for r in rows}
    assert variants == {"random-init LLM (tiny-llama, first 2 blocks)", "no LLM", "classical RF"}
    for v in ("random-init LLM (tiny-llama, first 2 blocks)", "no LLM"):
        mine = [r for r in rows if r["variant"] == v]
        # WISDM's jogging is in neither source: the all-classes zero-shot row scores it too.
        assert {(r["mode"], r["budget"]) for r in mine} == {("none", "zero-shot"), ("none", "zero-shot, all classes")} | {
            (m, b) for m in ("head", "full") for b in ("k=1", "10%")}
    unseen = [r for r in rows if r["budget"] == "zero-shot, all classes"]
    assert {tuple(r["unseen_classes"]) for r in unseen} == {("jogging",)} and all(0 <= r["unseen_recall"] <= 1 for r in unseen)
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in rows)
    assert results["kind"] == "lodo" and results["status"] == "complete"
    assert set(results["cells"]) == {"wisdm/random-init LLM (tiny-llama, first 2 blocks)", "wisdm/no LLM", "wisdm/classical RF"}
    fold = results["folds"]["wisdm"]
    assert fold["sources"] == ["uci_har", "hhar"] and "jogging" not in fold["shared_classes"]
    assert fold["budget_windows"]["k=1"] == 6  # one window of each WISDM class
    saved = json.loads((tmp_path / "lodo" / "results.json").read_text())
    assert saved["table"]["wisdm"]["k=1"]["no LLM (full)"]["macro_f1"] == pytest.approx(
        next(r["macro_f1"] for r in rows if r["variant"] == "no LLM" and r["mode"] == "full" and r["budget"] == "k=1"))
    report = (tmp_path / "lodo" / "report.md").read_text()
    assert "## Held out: wisdm" in report and "| classical RF | source+target |" in report
    assert (tmp_path / "lodo" / "f1_vs_budget.png").stat().st_size > 0
    # Only the datasets' small parts crossed the network: the update is far below the model size.
    llm = next(r for r in rows if r["variant"] == "random-init LLM (tiny-llama, first 2 blocks)" and r["budget"] == "zero-shot")
    assert llm["update_bytes"] < 1e6
    # Resuming a finished study redoes nothing.
    fed = tmp_path / "lodo" / "folds" / "wisdm" / "no-llm" / "results.json"
    stamp = fed.stat().st_mtime_ns
    again = run_study("cross_dataset", cfg, tmp_path / "lodo", resume=True)
    assert again["rows"] == rows and fed.stat().st_mtime_ns == stamp


def test_tiny_personalization_saves_and_reloads_personal_state(tmp_path):
    from fedhar.federated.checkpoint import load_checkpoint
    from fedhar.federated.task import get_task
    from fedhar.training.loop import evaluate
    from fedhar.transfer.personalize import fedper_config, load_personalised, personal_path

    cfg = load_config(REPO / "configs" / "personalization_tiny.yaml")
    run = tmp_path / "pers"
    results = run_study("personalization", cfg, run)
    rows = results["rows"]
    assert {r["strategy"] for r in rows} == {"head", "lora_head", "full", "fedper"}
    assert len({r["client"] for r in rows}) == 4 and len(results["cells"]) == len(rows) == 16
    summary = results["summary"]
    assert summary["head"]["params_changed"] < summary["lora_head"]["params_changed"] < summary["full"]["params_changed"]
    for r in rows:
        assert r["gain"] == pytest.approx(r["personal_f1"] - r["global_f1"])
    assert (run / "gains.png").exists() and "| fedper |" in (run / "report.md").read_text()
    # A client's saved personal state, put back on the global model, gives its personalised score.
    state = load_checkpoint(run / "global").global_state
    task = get_task(cfg)
    row = next(r for r in rows if r["client"] == 2 and r["strategy"] == "lora_head")
    mine = load_personal(personal_path(run, 2, "lora_head"))
    assert all(k.startswith("head.") or "lora_" in k for k in mine)
    model = load_personalised(task.model, state, personal_path(run, 2, "lora_head"))
    assert evaluate(model, task.client_data(2)[1], cfg.train)["macro_f1"] == pytest.approx(row["personal_f1"])
    # FedPer: heads stay on the clients, so the global head never moved from its initial value.
    fcfg = fedper_config(cfg, run)
    fed_state = load_checkpoint(run / "fedper").global_state
    initial = FederatedTask(fcfg).initial_state()
    assert torch.equal(fed_state["head.classifier.weight"], initial["head.classifier.weight"])
    heads = [load_personal(Path(fcfg.federated.state_dir) / f"client_{p:04d}" / "personal.safetensors") for p in range(4)]
    assert not torch.equal(heads[0]["head.classifier.weight"], heads[1]["head.classifier.weight"])


def test_personal_parts_never_leave_the_client(tmp_path, smoke_config):
    cfg = smoke_config(federated={"personal_parts": ["head"], "state_dir": str(tmp_path / "clients")})
    task = FederatedTask(cfg)
    state = task.initial_state()
    sent, _, _ = task.train_client(state, pid=1, server_round=1)
    assert torch.equal(sent["head.classifier.weight"], state["head.classifier.weight"])
    assert not torch.equal(sent["frontend.proj.weight"], state["frontend.proj.weight"])
    kept = load_personal(tmp_path / "clients" / "client_0001" / "personal.safetensors")
    assert set(kept) == {"head.classifier.weight", "head.classifier.bias"}
    assert not torch.equal(kept["head.classifier.weight"], state["head.classifier.weight"])
    # Next round the client starts from its own head, not the global one.
    sent2, _, _ = task.train_client(state, pid=1, server_round=2)
    assert torch.equal(sent2["head.classifier.weight"], state["head.classifier.weight"])


def test_transfer_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="lodo.budgets"):
        build_config({"lodo": {"budgets": ["k0"]}})
    with pytest.raises(ConfigError, match="lodo.held_out"):
        build_config({"lodo": {"held_out": ["mhealth"]}})
    with pytest.raises(ConfigError, match="lodo.modes"):
        build_config({"lodo": {"modes": ["everything"]}})
    with pytest.raises(ConfigError, match="personalization.strategies"):
        build_config({"personalization": {"strategies": ["ditto"]}})
    with pytest.raises(ConfigError, match="federated.personal_parts"):
        build_config({"federated": {"personal_parts": ["classifier"]}})


def test_study_checks_refuse_before_opening_a_folder(tmp_path):
    cfg = load_config(REPO / "configs" / "lodo_tiny.yaml", ["federated.partition=subject"])
    with pytest.raises(ConfigError, match="federated.partition"):
        run_study("cross_dataset", cfg, tmp_path / "x")
    cfg = load_config(REPO / "configs" / "personalization_tiny.yaml", ["federated.personal_parts=[head]"])
    with pytest.raises(ConfigError, match="federated.personal_parts"):
        run_study("personalization", cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_lodo_variants_are_backbone_changes():
    cfg = load_config(REPO / "configs" / "lodo.yaml")
    variants = cfg.lodo.variant_list(cfg)
    assert [v.label for v in variants] == ["pretrained LLM", "random-init LLM", "no LLM", "from-scratch Transformer"]
    scratch = variants[3].apply(cfg).model.backbone
    assert (scratch.name, scratch.layers, scratch.d_model) == ("transformer", 2, 128)
    assert scratch.lora.r == cfg.model.backbone.lora.r  # untouched keys are kept


def test_tiny_mae_lodo_pretrains_per_fold_and_fine_tunes(tmp_path, real_data, monkeypatch):
    monkeypatch.setenv("FEDHAR_DATA_DIR", str(real_data))
    cfg = load_config(REPO / "configs" / "mae_lodo.yaml", [
        "lodo.held_out=[hhar]", "lodo.max_windows=150", "lodo.budgets=[30%]", "lodo.trees=10", "train.epochs=1",
        "pretrain.epochs=1", "pretrain.mae.depth=1", "pretrain.mae.width=32", "pretrain.mae.decoder_width=16",
        "lodo.variants=[{label: from-scratch Transformer, backbone: {name: transformer, layers: 1, d_model: 32}}]"])
    results = run_study("cross_dataset", cfg, tmp_path / "mae_lodo")
    fold = results["folds"]["hhar"]
    assert fold["sources"] == ["uci_har", "wisdm"] and fold["pretrain"]["windows"] > 0
    assert (tmp_path / "mae_lodo" / "folds" / "hhar" / "mae" / "mae.safetensors").exists()
    rows = {(r["variant"], r["mode"]): r for r in results["rows"]}
    assert set(rows) == {("pretrained MAE + LoRA", "lora"), ("from-scratch Transformer", "full"), ("classical RF", "target")}
    assert all(r["labelled_windows"] == fold["budget_windows"]["30%"] for r in rows.values())
    assert "MAE pretrained on uci_har, wisdm" in (tmp_path / "mae_lodo" / "report.md").read_text()
