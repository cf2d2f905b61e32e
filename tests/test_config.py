from typing import get_args

import pytest

from fedhar.config import build_config, config_to_dict, load_config
from fedhar.exceptions import ConfigError


def test_load_smoke_and_override(tmp_path):
    cfg = load_config("configs/smoke.yaml", ["train.lr=0.5", "model.backbone.name=none", "federated.rounds=7"])
    assert cfg.train.lr == 0.5 and cfg.model.backbone.name == "none" and cfg.federated.rounds == 7
    assert cfg.model.frontend.tokens == 8  # from the file


@pytest.mark.parametrize("tree, match", [
    ({"trian": {}}, r"Unknown key `trian`.*Valid keys: continual, couplings, data, devices, distill, federated, lodo, loggers, model, name, personalization, pretrain, robustness, seed, seeds, smarthome, stats, sweep, train"),
    ({"train": {"epochs": "many"}}, r"`train.epochs` must be an integer; got 'many'"),
    ({"train": {"epochs": 0}}, r"`train.epochs` must be positive"),
    ({"model": {"backbone": {"lora": {"rank": 4}}}}, r"Unknown key `model.backbone.lora.rank`"),
    ({"model": {"head": {"pooling": "max"}}}, r"x.yaml: `model.head.pooling` must be one of 'mean', 'last'; got 'max'"),
    ({"federated": {"strategy": {"name": "fedfoo"}}}, r"`federated.strategy.name` must be one of 'fedavg', .*'fedavgm', .*; got 'fedfoo'"),
    # choice fields are Literal types: the error names the key and lists the choices
    ({"train": {"schedule": "linear"}}, r"`train.schedule` must be one of 'cosine', 'constant'; got 'linear'"),
    ({"train": {"precision": "fp16"}}, r"`train.precision` must be one of 'bf16', 'fp32'; got 'fp16'"),
    ({"train": {"trainable": ["head", "decoder"]}}, r"`train.trainable\[1\]` must be one of 'frontend', 'lora', 'head', 'backbone'"),
    ({"train": {"trainable": []}}, r"`train.trainable` must name some of"),
    ({"pretrain": {"precision": "int8"}}, r"`pretrain.precision` must be one of 'bf16', 'fp32'"),
    ({"data": {"split": "by_day"}}, r"`data.split` must be one of 'official', .*'chronological'; got 'by_day'"),
    ({"data": {"format": "csv"}}, r"`data.format` must be one of 'auto', .*; got 'csv'"),
    ({"data": {"nan_policy": "fill"}}, r"`data.nan_policy` must be one of 'error', 'drop'"),
    ({"federated": {"partition": "home"}}, r"`federated.partition` must be one of 'subject', .*'dirichlet'; got 'home'"),
    ({"federated": {"faults": {"mode": "slow"}}}, r"`federated.faults.mode` must be one of 'raise', 'nan', 'shape'"),
    ({"federated": {"personal_parts": ["tail"]}}, r"`federated.personal_parts\[0\]` must be one of 'frontend'"),
    ({"federated": {"local_split": "by_day"}}, r"`federated.local_split` must be one of 'random', 'chronological'"),
    ({"model": {"backbone": {"quantize": 2}}}, r"`model.backbone.quantize` must be one of 4, 8; got 2"),
    ({"model": {"backbone": {"quantize": 4.0}}}, r"`model.backbone.quantize` must be one of 4, 8; got 4.0"),
    ({"continual": {"mode": "both"}}, r"`continual.mode` must be one of 'central', 'federated'; got 'both'"),
    ({"smarthome": {"mode": "both"}}, r"`smarthome.mode` must be one of 'central', 'federated'; got 'both'"),
    ({"lodo": {"protocol": "simclr"}}, r"`lodo.protocol` must be one of 'federated', 'mae'; got 'simclr'"),
    ({"lodo": {"modes": ["head", "lora"]}}, r"`lodo.modes\[1\]` must be one of 'head', 'full'; got 'lora'"),
    ({"lodo": {"sensors": []}}, r"`lodo.sensors` is empty"),
    ({"lodo": {"datasets": ["a", {"name": "b", "split": "random"}]}}, r"`lodo.datasets\[1\].split` must be one of 'auto', 'official', 'subject'"),
    ({"personalization": {"strategies": ["head", "fedbn"]}}, r"`personalization.strategies\[1\]` must be one of 'head', 'lora_head', 'full', 'fedper'"),
])
def test_bad_config_names_the_key(tree, match):
    with pytest.raises(ConfigError, match=match):
        build_config(tree, source="x.yaml")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        load_config("configs/smoke.yaml", ["train.lr"])


def test_overrides_in_one_string():
    """`flwr run`'s `overrides` key carries `--set` pairs in one string, split on spaces or `;`."""
    cfg = load_config("configs/smoke.yaml", "federated.rounds=1; train.lr=1e-3 federated.personal_parts=[head, frontend]")
    assert (cfg.federated.rounds, cfg.train.lr, cfg.federated.personal_parts) == (1, 1e-3, ["head", "frontend"])
    assert config_to_dict(load_config("configs/smoke.yaml", "")) == config_to_dict(load_config("configs/smoke.yaml"))


def test_data_format_choices_are_the_loader_registry():
    """``data.format`` is a Literal for a light config; it must list exactly the registered loaders."""
    from fedhar.data.config import Format
    from fedhar.data.loaders import FORMATS

    assert sorted(get_args(Format)) == sorted(["auto", *FORMATS.names()])


def test_choice_fields_keep_their_values():
    cfg = build_config({"train": {"schedule": "constant", "trainable": ["head"]}, "model": {"backbone": {"quantize": 4}},
                        "smarthome": {"mode": "federated"}, "lodo": {"modes": ["full"]}}, ["train.precision=fp32"])
    assert (cfg.train.schedule, cfg.train.precision, cfg.train.trainable) == ("constant", "fp32", ["head"])
    assert cfg.model.backbone.quantize == 4 and cfg.smarthome.mode == "federated" and cfg.lodo.modes == ["full"]


def test_a_partial_section_keeps_the_defaults_it_does_not_name():
    cfg = build_config({"smarthome": {"mode": "federated", "personalize": {"epochs": 3}}})
    default = build_config({}).smarthome.personalize
    assert cfg.smarthome.personalize.epochs == 3 and default.epochs != 3
    assert (cfg.smarthome.personalize.lr, cfg.smarthome.personalize.batch_size) == (default.lr, default.batch_size)
    with pytest.raises(ConfigError, match="smarthome.personalize.epoch"):
        build_config({"smarthome": {"mode": "federated", "personalize": {"epoch": 3}}})


def test_central_smart_homes_refuse_the_federated_keys():
    """``mode: central`` reads no federation setting, so one that differs from its default is refused, by name."""
    assert build_config({"smarthome": {"personalize_from": None, "public_homes": ["kasteren2010_a"]}}).smarthome.mode == "central"
    with pytest.raises(ConfigError, match=r"central.*`smarthome.personalize_from`, `smarthome.public_homes`"):
        build_config({"smarthome": {"personalize_from": ["fedper"], "public_homes": []}})
    with pytest.raises(ConfigError, match=r"central.*`smarthome.personalize`"):
        build_config({"smarthome": {"personalize": {"epochs": 3}}})
    assert build_config({"smarthome": {"mode": "federated", "personal_parts": ["head"]}}).smarthome.personal_parts == ["head"]
