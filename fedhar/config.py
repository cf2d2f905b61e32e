"""The experiment configuration: composes each concern's config dataclass, loads YAML, applies
``--set key.sub=value`` overrides, and converts Flower's flat ``run_config`` back in one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import json

import yaml

from fedhar.continual.config import ContinualConfig
from fedhar.data.config import DataConfig
from fedhar.distill.config import DistillStudyConfig
from fedhar.exceptions import ConfigError
from fedhar.federated.config import FederatedConfig
from fedhar.models.config import ModelConfig
from fedhar.schema import from_mapping, to_mapping
from fedhar.text.config import SmartHomeConfig
from fedhar.training.config import TrainConfig
from fedhar.training.pretrain import PretrainConfig
from fedhar.training.sweep import SweepConfig
from fedhar.transfer.config import LodoConfig, PersonalizationConfig


@dataclass
class ExperimentConfig:
    name: str = field(default="experiment", metadata={"help": "Run name (used for the run folder)."})
    seed: int = field(default=0, metadata={"help": "Seed for data splits, init and batch order."})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    lodo: LodoConfig = field(default_factory=LodoConfig)
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    smarthome: SmartHomeConfig = field(default_factory=SmartHomeConfig)
    distill: DistillStudyConfig = field(default_factory=DistillStudyConfig)


def _set_dotted(tree: dict, dotted: str, value: Any, where: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        child = node.setdefault(k, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: cannot set `{dotted}`: `{k}` is not a section.")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: Iterable[str]) -> list[tuple[str, Any]]:
    """``["train.lr=3e-4", "model.backbone.name=none"]`` -> typed pairs (values parsed as YAML)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"`--set {item}`: expected key.sub=value.")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw) if raw.strip() else ""))
    return out


def build_config(data: Mapping[str, Any] | None, overrides: Iterable[str] = (), source: str = "config") -> ExperimentConfig:
    """Validate a mapping (+ overrides) into an :class:`ExperimentConfig`; errors name ``source``."""
    tree = dict(data or {})
    for key, value in parse_overrides(overrides):
        _set_dotted(tree, key, value, source)
    try:
        return from_mapping(ExperimentConfig, tree)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.reason}") from None


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read a YAML experiment file; missing files, bad YAML and unknown keys are ConfigErrors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, train, ...).")
    return build_config(data, overrides, str(path))


def config_to_dict(cfg: ExperimentConfig) -> dict:
    return to_mapping(cfg)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> Flower ``run_config`` keys (dotted, kebab-case). Lists and nulls become JSON strings."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k.replace('_', '-')}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)) or v is None:
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def from_run_config(run_config: Mapping[str, Any]) -> ExperimentConfig:
    """Flower's flat kebab-case ``context.run_config`` -> the same typed dataclasses."""
    tree: dict = {}
    for key, value in run_config.items():
        if isinstance(value, str) and (value[:1] in ("[", "{") or value == "null"):
            value = json.loads(value)
        _set_dotted(tree, key.replace("-", "_"), value, "run_config")
    return build_config(tree, source="run_config")
