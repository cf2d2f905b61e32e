"""Sweeps: every (variant, value) point runs, the table and plot are written, resume skips."""

import json

import pytest

from fedhar.config import build_config, config_to_dict
from fedhar.exceptions import ConfigError
from fedhar.studies import run_study


def _cfg(smoke_config):
    base = config_to_dict(smoke_config(train={"epochs": 1}))
    base["sweep"] = {"key": "model.backbone.lora.r", "values": [1, 4], "log_x": True, "steps": 3,
                     "variants": [{"label": "LoRA"}, {"label": "no LLM", "set": {"model.backbone.name": "none"}}]}
    return build_config(base)


def test_rank_sweep_on_a_tiny_config(tmp_path, smoke_config):
    cfg = _cfg(smoke_config)
    out = tmp_path / "sweep"
    results = run_study("sweep", cfg, out)
    rows = results["rows"]
    assert [(r["variant"], r["value"]) for r in rows] == [("LoRA", 1), ("LoRA", 4), ("no LLM", 1), ("no LLM", 4)]
    lora = [r for r in rows if r["variant"] == "LoRA"]
    assert lora[0]["trainable_params"] < lora[1]["trainable_params"]  # a larger rank trains more
    assert rows[2]["trainable_params"] == rows[3]["trainable_params"]  # no LoRA to grow
    assert all(r["epochs"] >= 1 and 0 <= r["macro_f1"] <= 1 for r in rows)
    assert (out / "sweep.png").exists()
    assert "| 4 | LoRA |" in (out / "report.md").read_text()
    assert len((out / "metrics.csv").read_text().splitlines()) == 5
    # Resume reruns only the points that are not recorded as finished.
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] and saved["kind"] == "sweep" and saved["key"] == "model.backbone.lora.r"
    del saved["cells"]["no LLM/4"]
    saved["rows"] = saved["rows"][:3]
    (out / "results.json").write_text(json.dumps(saved))
    again = run_study("sweep", cfg, out, resume=True)
    assert [(r["variant"], r["value"]) for r in again["rows"]] == [(r["variant"], r["value"]) for r in rows]
    assert again["rows"][:3] == saved["rows"] and again["rows"][3]["macro_f1"] == pytest.approx(rows[3]["macro_f1"])


def test_sweep_errors_name_the_key(tmp_path, smoke_config):
    with pytest.raises(ConfigError, match="sweep.values"):
        build_config({"sweep": {"key": "model.backbone.lora.r"}})
    with pytest.raises(ConfigError, match="sweep.key"):
        run_study("sweep", build_config({}), tmp_path / "unset")
    assert not (tmp_path / "unset").exists()
    cfg = build_config({"sweep": {"key": "model.backbone.lora.rank", "values": [2]}})
    with pytest.raises(ConfigError, match="model.backbone.lora.rank"):
        run_study("sweep", cfg, tmp_path / "bad")
    assert json.loads((tmp_path / "bad" / "results.json").read_text())["status"] == "failed"
