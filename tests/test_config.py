import pytest

from fedhar.config import build_config, config_to_dict, flatten, from_run_config, load_config
from fedhar.exceptions import ConfigError


def test_load_smoke_and_override(tmp_path):
    cfg = load_config("configs/smoke.yaml", ["train.lr=0.5", "model.backbone.name=none", "federated.rounds=7"])
    assert cfg.train.lr == 0.5 and cfg.model.backbone.name == "none" and cfg.federated.rounds == 7
    assert cfg.model.frontend.tokens == 8  # from the file


@pytest.mark.parametrize("tree, match", [
    ({"trian": {}}, r"Unknown key `trian`.*Valid keys: continual, data, distill, federated, lodo, model, name, personalization, pretrain, seed, smarthome, sweep, train"),
    ({"train": {"epochs": "many"}}, r"`train.epochs` must be an integer; got 'many'"),
    ({"train": {"epochs": 0}}, r"`train.epochs` must be positive"),
    ({"model": {"backbone": {"lora": {"rank": 4}}}}, r"Unknown key `model.backbone.lora.rank`"),
    ({"model": {"head": {"pooling": "max"}}}, r"`model.head.pooling` must be `mean` or `last`"),
    ({"federated": {"strategy": {"name": "fedfoo"}}}, r"federated.strategy.name.*fedavg"),
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


def test_flower_run_config_round_trip():
    cfg = load_config("configs/smoke.yaml")
    flat = flatten(config_to_dict(cfg))
    assert "model.backbone.lora.target-modules" in flat and "train.eval-batch-size" in flat
    assert config_to_dict(from_run_config(flat)) == config_to_dict(cfg)
