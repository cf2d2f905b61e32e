"""Study labels say what the model is: derived from the resolved backbone unless set, and a baseline
that builds the configured model again is not presented under another name."""

from __future__ import annotations

import json
import logging

import pytest

from fedhar.config import build_config
from fedhar.models.config import BackboneConfig, LoraSettings
from fedhar.training.labels import backbone_label, effective_backbone, model_label, repeated_models


@pytest.mark.parametrize("backbone, label", [
    ({}, "pretrained LLM (smollm2-135m, first 8 blocks)"),
    ({"layers": None}, "pretrained LLM (smollm2-135m)"),
    ({"pretrained": False}, "random-init LLM (smollm2-135m, first 8 blocks)"),
    ({"name": "tiny-llama", "layers": 2}, "random-init LLM (tiny-llama, first 2 blocks)"),
    ({"name": "tiny-llama", "layers": 2, "pretrained": True}, "random-init LLM (tiny-llama, first 2 blocks)"),
    ({"name": "none"}, "no LLM"),
    ({"name": "transformer", "layers": 2}, "from-scratch Transformer"),
    ({"name": "classical"}, "classical RF"),
    ({"name": "HuggingFaceTB/SmolLM2-360M", "layers": None}, "pretrained LLM (HuggingFaceTB/SmolLM2-360M)"),
    ({"layers": 4, "full_finetune": True}, "pretrained LLM (smollm2-135m, first 4 blocks, fully fine-tuned)"),
    ({"layers": None, "lora": {"enabled": False}}, "pretrained LLM (smollm2-135m, frozen, no LoRA)"),
])
def test_backbone_label_names_what_is_built(backbone, label):
    assert backbone_label(build_config({"model": {"backbone": backbone}}).model.backbone) == label


def test_mae_checkpoint_is_named_by_its_folder(tmp_path):
    folder = tmp_path / "mae_uci"
    folder.mkdir()
    (folder / "mae.json").write_text(json.dumps({"kind": "fedhar-mae"}))
    assert backbone_label(BackboneConfig(name=str(folder), layers=None)) == "pretrained MAE encoder (mae_uci)"
    assert backbone_label(BackboneConfig(name=str(folder), layers=2, pretrained=False)) == \
        "random-init MAE encoder (mae_uci, first 2 blocks)"


def test_set_label_wins_but_a_false_pretrained_claim_is_warned_about(caplog):
    tiny = BackboneConfig(name="tiny-llama", layers=2)
    with caplog.at_level(logging.WARNING, logger="fedhar.training.labels"):
        assert model_label("pretrained LLM", tiny) == "pretrained LLM"
    assert "random-init LLM (tiny-llama" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fedhar.training.labels"):
        assert model_label("my model", tiny) == "my model" and model_label(None, tiny).startswith("random-init")
    assert not caplog.text


def test_effective_backbone_ignores_what_a_backbone_ignores():
    assert effective_backbone(BackboneConfig(name="tiny-llama", layers=2)) == \
        effective_backbone(BackboneConfig(name="tiny-llama", layers=2, pretrained=False))
    assert effective_backbone(BackboneConfig(name="none", layers=8)) == effective_backbone(BackboneConfig(name="none", pretrained=False))
    # A different LoRA rank is a different model, though its label is the same.
    assert effective_backbone(BackboneConfig()) != effective_backbone(BackboneConfig(lora=LoraSettings(r=16)))


def test_repeated_models_are_named_with_what_they_repeat(caplog):
    tiny = BackboneConfig(name="tiny-llama", layers=2)
    models = [("main", tiny), ("random-init LLM", BackboneConfig(name="tiny-llama", layers=2, pretrained=False)),
              ("no LLM", BackboneConfig(name="none")), ("no LLM again", BackboneConfig(name="none", pretrained=False))]
    with caplog.at_level(logging.WARNING, logger="fedhar.training.labels"):
        assert repeated_models(models) == {"random-init LLM": "main", "no LLM again": "no LLM"}
    assert "random-init LLM" in caplog.text and "left out" in caplog.text


def test_lodo_main_label_is_derived_and_a_repeated_baseline_left_out():
    cfg = build_config({"model": {"backbone": {"name": "tiny-llama", "layers": 2}}})
    assert cfg.lodo.main_label is None
    variants, repeated = cfg.lodo.variant_plan(cfg)
    labels = [v.label for v in variants]
    assert labels == ["random-init LLM (tiny-llama, first 2 blocks)", "no LLM", "from-scratch Transformer"]
    assert repeated == {"random-init LLM": "random-init LLM (tiny-llama, first 2 blocks)"}
    default = build_config({})
    assert [v.label for v in default.lodo.variant_list(default)] == [
        "pretrained LLM (smollm2-135m, first 8 blocks)", "random-init LLM", "no LLM", "from-scratch Transformer"]


def test_lodo_set_label_and_mae_protocol_label():
    cfg = build_config({"lodo": {"main_label": "my LLM"}})
    assert cfg.lodo.variant_list(cfg)[0].label == "my LLM"
    mae = build_config({"model": {"backbone": {"name": "fold-mae", "layers": None}}, "lodo": {"protocol": "mae", "variants": []}})
    assert mae.lodo.model_label(mae.model.backbone) == "pretrained MAE encoder (per fold)"


def test_continual_main_label_is_derived_and_repeats_left_out():
    from fedhar.continual.experiment import variant_configs

    cfg = build_config({"model": {"backbone": {"name": "none"}},
                        "continual": {"variants": [{"label": "random-init LLM", "backbone": {"pretrained": False}},
                                                   {"label": "tiny", "backbone": {"name": "tiny-llama", "layers": 2}}]}})
    assert [label for label, _, _ in variant_configs(cfg)] == ["no LLM", "tiny"]
    assert build_config({"continual": {"main_label": "mine"}}).continual.model_label(BackboneConfig()) == "mine"


def test_lodo_report_says_which_baselines_were_left_out():
    from fedhar.transfer.report import lodo_markdown

    report = lodo_markdown({"name": "x", "rows": [], "variants_left_out": {"random-init LLM": "random-init LLM (tiny-llama)"}})
    assert "Baseline *random-init LLM* left out: it builds the same model as *random-init LLM (tiny-llama)*." in report
    assert "left out" not in lodo_markdown({"name": "x", "rows": []})
