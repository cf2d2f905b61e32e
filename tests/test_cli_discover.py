"""The discover surface: ``config keys``, ``config show``, ``--version``, ``data list``; and the
CLI wiring of ``--log``, ``simulate --supernodes`` and ``predict``."""

import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fedhar
import fedhar.cli
from fedhar.cli import build_parser, main
from fedhar.configdoc import describe_keys, format_type, key_docs, sections
from fedhar.data.sources import ENV_ROOT, KNOWN_SOURCES
from fedhar.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(autouse=True)
def restore_env(monkeypatch):
    """main() sets PYTHONWARNINGS and HF_HUB_OFFLINE; keep them out of the other tests."""
    for name in ("PYTHONWARNINGS", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- fedhar config keys
def test_config_keys_lists_every_key_with_type_default_and_help(capsys):
    assert main(["config", "keys"]) == 0
    out = capsys.readouterr().out
    assert "train.lr  float = 0.001\n    AdamW learning rate." in out
    assert "model.backbone.lora.r  int = 8\n    LoRA rank." in out
    assert "train.schedule  str = cosine  (one of: cosine, constant)" in out
    assert "model.backbone.quantize  int | None = null  (one of: 4, 8)" in out
    assert "continual.scenario  Any = null" in out  # a name-or-mapping field keeps the type it is written with
    assert "\nloggers  list[str] = []  (one of: tensorboard)" in out
    assert all(len(line) <= 100 for line in out.splitlines())
    assert len([ln for ln in out.splitlines() if not ln.startswith(" ")]) == len(key_docs())


def test_config_keys_section_restricts_the_listing(capsys):
    assert main(["config", "keys", "model.backbone"]) == 0
    heads = [ln.split()[0] for ln in capsys.readouterr().out.splitlines() if not ln.startswith(" ")]
    assert "model.backbone.name" in heads and "model.backbone.lora.r" in heads
    assert all(h.startswith("model.backbone.") for h in heads)
    assert main(["config", "keys", "train.lr"]) == 0  # one key
    assert capsys.readouterr().out.splitlines()[0] == "train.lr  float = 0.001"


def test_config_keys_unknown_section_names_it_and_the_valid_ones(capsys):
    assert main(["config", "keys", "trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedhar: error:") and "`trian`" in err and "Traceback" not in err
    assert "train" in err and "model.backbone.lora" in err


def test_every_key_is_documented_and_walks_match_the_schema():
    docs = key_docs()
    keys = [d.key for d in docs]
    assert len(keys) == len(set(keys)) and {"name", "seed", "train.lr", "federated.strategy.name"} <= set(keys)
    assert [d.key for d in docs if not d.help] == []
    assert "model.backbone.lora" in sections() and "model.backbone.lora.r" not in sections()
    with pytest.raises(ConfigError, match="valid sections: stats, data"):
        describe_keys("nope")


def test_format_type_writes_types_as_a_reader_would():
    from typing import Any, Literal

    assert format_type(int | None) == "int | None"
    assert format_type(list[Literal["a", "b"]]) == "list[str]"
    assert format_type(dict[str, Any]) == "dict[str, Any]"
    assert format_type(Literal[4, 8] | None) == "int | None"


# ---------------------------------------------------------------- fedhar config show, --version
def test_config_show_prints_the_resolved_config(capsys):
    assert main(["config", "show", SMOKE, "--set", "train.epochs=2", "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "\n  epochs: 2\n" in out and "seeds:\n- 0\n- 1\n" in out
    assert "  weight_decay: 0.01\n" in out and "  strategy:\n    name: fedavg\n" in out  # defaults appear
    import yaml

    assert yaml.safe_load(out)["model"]["backbone"]["lora"]["r"] == 4


def test_config_show_bad_override_is_a_clean_error(capsys):
    assert main(["config", "show", SMOKE, "--set", "train.epoch=2"]) == 2
    assert "Unknown key `train.epoch`" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"fedhar {fedhar.__version__}"


def test_main_defaults_the_hub_to_offline_but_respects_the_user(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert "ignore:`torch.jit.:DeprecationWarning:torch.jit._script" in os.environ["PYTHONWARNINGS"]


# ---------------------------------------------------------------- fedhar data list
def _statuses(lines: list[str]) -> dict[str, str]:
    """``{source: found|missing}`` from the rows of ``fedhar data list``."""
    names = [*KNOWN_SOURCES, "synthetic"]
    return {ln.split()[0]: ln.split()[1] for ln in lines if ln.startswith("  ") and ln.split()[0] in names}


def test_data_list_with_a_root(tmp_path, capsys):
    np.savez(tmp_path / "wisdm.npz", X=np.zeros((4, 3, 8), np.float32), y=np.arange(4) % 2)
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"data folder: {tmp_path}"
    assert _statuses(lines) == {**{n: "missing" for n in KNOWN_SOURCES}, "wisdm": "found", "synthetic": "found"}
    assert any(ln.strip() == str(tmp_path / "wisdm.npz") for ln in lines)
    assert any("WISDM v1.1 raw text" in ln for ln in lines)
    assert all(len(ln) <= 100 for ln in lines)


def test_data_list_without_a_folder_says_so(monkeypatch, capsys):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("data folder: not set") and ENV_ROOT in out.splitlines()[0]
    assert _statuses(out.splitlines()) == {**{n: "missing" for n in KNOWN_SOURCES}, "synthetic": "found"}


def test_data_list_real_data(real_data, monkeypatch, capsys):
    monkeypatch.setenv(ENV_ROOT, str(real_data))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert _statuses(out.splitlines())["uci_har"] == "found"
    assert f"{real_data}/uci_har" in out


# ---------------------------------------------------------------- wiring for other commands
def test_log_option_becomes_the_loggers_override(capsys):
    for argv in (["train", SMOKE], ["pretrain", SMOKE], ["simulate", SMOKE], ["study", "train", "--config", SMOKE]):
        args = build_parser().parse_args([*argv, "--log", "tensorboard", "--log", "tensorboard", "--set", "seed=3"])
        assert fedhar.cli._seed_overrides(args) == ["seed=3", "loggers=[tensorboard]"], argv
    assert fedhar.cli._seed_overrides(build_parser().parse_args(["train", SMOKE])) == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", SMOKE, "--log", "wandb"])
    assert "invalid choice: 'wandb'" in capsys.readouterr().err
    assert main(["config", "show", SMOKE, "--set", "loggers=[tensorboard]"]) == 0
    assert "loggers:\n- tensorboard\n" in capsys.readouterr().out


def test_simulate_passes_supernodes_to_the_study(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(fedhar.cli, "run_study", lambda name, cfg, out, **kw: calls.append((name, cfg, kw)) or {})
    assert main(["simulate", SMOKE, "--out", str(tmp_path), "--supernodes", "3", "--engine", "deployment"]) == 0
    name, cfg, kw = calls[-1]
    assert name == "simulate" and kw == {"resume": False, "force": False, "engine": "deployment", "supernodes": 3}
    assert cfg.federated.num_clients is None  # the study, not the CLI, re-partitions
    assert main(["simulate", SMOKE, "--out", str(tmp_path)]) == 0
    assert "supernodes" not in calls[-1][2]
    assert main(["simulate", SMOKE, "--supernodes", "0"]) == 2
    assert "--supernodes must be at least 1" in capsys.readouterr().err


def test_predict_prints_windows_file_and_metrics(monkeypatch, tmp_path, capsys):
    seen = {}

    def predict_run(run_dir, data, out=None, root=None, overrides=()):
        seen.update(run_dir=run_dir, data=data, out=out, root=root, overrides=overrides)
        return {"out": str(tmp_path / "p.csv"), "windows": 1234, "metrics": {"accuracy": 0.9, "macro_f1": 0.85},
                "metrics_file": str(tmp_path / "m.json")}

    monkeypatch.setitem(sys.modules, "fedhar.training.predict", types.SimpleNamespace(predict_run=predict_run))
    assert main(["predict", "runs/x", "uci_har", "--out", "p.csv", "--root", "/d", "--set", "data.max_windows=5"]) == 0
    assert seen == {"run_dir": "runs/x", "data": "uci_har", "out": "p.csv", "root": "/d",
                    "overrides": ["data.max_windows=5"]}
    out = capsys.readouterr().out
    assert "1,234 windows" in out and str(tmp_path / "p.csv") in out
    assert "accuracy 0.9000  macro-F1 0.8500" in out and "m.json" in out


@pytest.mark.parametrize("command", ["predict", "train", "config", "data"])
def test_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and f"usage: fedhar {command}" in capsys.readouterr().out
