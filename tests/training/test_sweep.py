"""Sweeps: every (variant, value) point runs, the table and plot are written, resume skips."""

import json

import pytest

from fedhar.config import build_config
from fedhar.exceptions import ConfigError


def _cfg(tmp_path, smoke_config):
    cfg = smoke_config(train={"epochs": 1})
    tree = {"sweep": {"key": "model.backbone.lora.r", "values": [1, 4], "log_x": True, "steps": 3,
                      "variants": [{"label": "LoRA"}, {"label": "no LLM", "set": {"model.backbone.name": "none"}}]}}
    from fedhar.config import config_to_dict

    base = config_to_dict(cfg)
    base.update(tree)
    return build_config(base)


def test_rank_sweep_on_a_tiny_config(tmp_path, smoke_config):
    from fedhar.training.sweep import run_sweep

    cfg = _cfg(tmp_path, smoke_config)
    results = run_sweep(cfg, tmp_path / "sweep")
    rows = results["rows"]
    assert [(r["variant"], r["value"]) for r in rows] == [("LoRA", 1), ("LoRA", 4), ("no LLM", 1), ("no LLM", 4)]
    lora = [r for r in rows if r["variant"] == "LoRA"]
    assert lora[0]["trainable_params"] < lora[1]["trainable_params"]  # a larger rank trains more
    assert rows[2]["trainable_params"] == rows[3]["trainable_params"]  # no LoRA to grow
    assert all(r["epochs"] >= 1 and 0 <= r["macro_f1"] <= 1 for r in rows)
    assert (tmp_path / "sweep" / "sweep.png").exists()
    assert "| 4 | LoRA |" in (tmp_path / "sweep" / "report.md").read_text()
    again = run_sweep(cfg, tmp_path / "sweep", resume=True)
    assert len(again["rows"]) == 4
    assert json.loads((tmp_path / "sweep" / "results.json").read_text())["complete"]


def test_sweep_errors_name_the_key(tmp_path, smoke_config):
    from fedhar.training.sweep import run_sweep

    with pytest.raises(ConfigError, match="sweep.values"):
        build_config({"sweep": {"key": "model.backbone.lora.r"}})
    cfg = build_config({"sweep": {"key": "model.backbone.lora.rank", "values": [2]}})
    with pytest.raises(ConfigError, match="model.backbone.lora.rank"):
        run_sweep(cfg, tmp_path / "bad")
