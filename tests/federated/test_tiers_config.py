"""`federated.tiers` and its keys: the config refuses what the tiered federation cannot run,
naming the key and what it expects; a config without tiers is unchanged."""

import pytest

from fedhar.exceptions import ConfigError
from fedhar.federated.config import FederatedConfig
from fedhar.schema import from_mapping

FLEET = [{"base": "flagship", "rank": 4, "blocks": 2, "share": 0.5}, {"base": "watch", "blocks": 1, "share": 0.5}]


def test_without_tiers_nothing_changes(smoke_config):
    fed = smoke_config().federated
    assert fed.tiers == [] and fed.tier_configs() == [] and fed.lora_rule() is None


def test_auto_rule_is_shared_a_for_mixed_ranks_and_zero_pad_otherwise(smoke_config):
    assert smoke_config(federated={"tiers": FLEET}).federated.lora_rule() == "shared_a"
    same = [{**FLEET[0]}, {**FLEET[1], "rank": 4}]
    assert smoke_config(federated={"tiers": same}).federated.lora_rule() == "zero_pad"
    chosen = smoke_config(federated={"tiers": FLEET, "lora_aggregation": "svd"}).federated
    assert chosen.lora_rule() == "svd" and [t.rank for t in chosen.tier_configs()] == [4, 2]


@pytest.mark.parametrize("tiers, match", [
    ([{**FLEET[0], "blocks": 3}, FLEET[1]], r"`federated.tiers\[0\].blocks` is 3 .*`model.backbone.layers: 2`"),
    ([FLEET[0], {**FLEET[1], "rank": 8}], r"`federated.tiers\[1\].rank` is 8 .*`model.backbone.lora.r: 4`"),
    ([FLEET[0], {**FLEET[1], "rank": 0}], r"`federated.tiers\[1\].rank` .*positive integer"),
    ([FLEET[0], {**FLEET[1], "share": 0.2}], r"`federated.tiers\[\*\].share` must add up to 1"),
    (["phone"], r"Unknown device tier `phone`"),
])
def test_tiers_that_do_not_fit_the_model_are_refused(smoke_config, tiers, match):
    with pytest.raises(ConfigError, match=match):
        smoke_config(federated={"tiers": tiers})


@pytest.mark.parametrize("model, match", [
    ({"backbone": {"name": "transformer", "layers": 2}}, r"`federated.tiers` .*needs an LLM backbone with LoRA"),
    ({"backbone": {"name": "tiny-llama", "layers": 2, "lora": {"enabled": False}}}, r"LoRA off"),
    ({"backbone": {"name": "tiny-llama", "layers": None, "lora": {"r": 4}}}, r"needs `model.backbone.layers`"),
])
def test_tiers_need_a_lora_backbone_of_known_depth(smoke_config, model, match):
    with pytest.raises(ConfigError, match=match):
        smoke_config(federated={"tiers": FLEET}, model=model)


@pytest.mark.parametrize("changes, match", [
    ({"secure_aggregation": "secaggplus"}, r"`federated.secure_aggregation: secaggplus` cannot run with `federated.tiers`"),
    ({"privacy": {"mode": "local"}}, r"`federated.privacy.mode: local` cannot run with `federated.tiers`"),
    ({"strategy": {"name": "krum"}}, r"`federated.strategy.name: krum` cannot run .*fedavg or fedprox"),
    ({"strategy": {"name": "fedadam"}}, r"`federated.strategy.name: fedadam`"),
    ({"attack": {"kind": "sign_flip", "fraction": 0.2}}, r"`federated.attack.kind: sign_flip`"),
    ({"personal_parts": ["head"]}, r"`federated.personal_parts: \['head'\]`"),
    ({"stragglers": "stale"}, r"`federated.stragglers: stale` needs `federated.round_deadline_s`"),
])
def test_combinations_not_wired_into_tiers_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(FederatedConfig, {"tiers": FLEET, **changes})


@pytest.mark.parametrize("changes, match", [
    ({"lora_aggregation": "svd"}, r"`federated.lora_aggregation` applies to heterogeneous devices; set `federated.tiers`"),
    ({"tier_parts": "per_depth"}, r"`federated.tier_parts` applies to heterogeneous devices"),
    ({"round_deadline_s": 5.0, "stragglers": "stale"}, r"`federated.round_deadline_s`, `federated.stragglers` applies"),
])
def test_tier_keys_without_tiers_are_refused_not_ignored(changes, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(FederatedConfig, changes)


@pytest.mark.parametrize("changes, match", [
    ({"round_deadline_s": 0.0}, r"`federated.round_deadline_s` must be positive or null"),
    ({"max_staleness": 0}, r"`federated.max_staleness` must be at least 1"),
    ({"hours_per_round": -1.0}, r"`federated.hours_per_round` must be positive"),
    ({"target_macro_f1": 1.5}, r"`federated.target_macro_f1` must be in \(0, 1\]"),
])
def test_tier_key_values_are_checked(changes, match):
    with pytest.raises(ConfigError, match=match):
        from_mapping(FederatedConfig, {"tiers": FLEET, **changes})
