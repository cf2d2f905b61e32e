"""The experiment configuration: composes each concern's config dataclass, loads YAML and applies
``--set key.sub=value`` overrides (also the form ``flwr run``'s ``overrides`` run-config key carries).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import yaml

from fedhar.checks import run_checks
from fedhar.continual.config import ContinualConfig
from fedhar.data.config import DataConfig
from fedhar.distill.config import DistillStudyConfig
from fedhar.exceptions import ConfigError
from fedhar.federated.config import DevicesConfig, FederatedConfig, RobustnessConfig
from fedhar.models.config import ModelConfig
from fedhar.reporting.stats import StatsConfig
from fedhar.schema import from_mapping, to_mapping
from fedhar.smarthome.config import SmartHomeConfig
from fedhar.training.config import PretrainConfig, SweepConfig, TrainConfig
from fedhar.transfer.config import CouplingsConfig, LodoConfig, PersonalizationConfig


@dataclass
class ExperimentConfig:
    name: str = field(default="experiment", metadata={"help": "Run name (used for the run folder)."})
    seed: int = field(default=0, metadata={"help": "Seed for data splits, init, LoRA init, client sampling, label-budget draws and batch order."})
    seeds: list[int] | None = field(default=None, metadata={"help": "Run once per seed, each a complete resumable run in <run>/seed_<s>/, and report mean ± std, 95% intervals and paired tests (also --seeds 0,1,2); null: one run with `seed`."})
    stats: StatsConfig = field(default_factory=StatsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    federated: FederatedConfig = field(default_factory=FederatedConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)
    lodo: LodoConfig = field(default_factory=LodoConfig)
    couplings: CouplingsConfig = field(default_factory=CouplingsConfig)
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    smarthome: SmartHomeConfig = field(default_factory=SmartHomeConfig)
    distill: DistillStudyConfig = field(default_factory=DistillStudyConfig)
    loggers: list[Literal["tensorboard"]] = field(default_factory=list, metadata={"help": "Extra metric loggers beside metrics.csv: `tensorboard` writes the same scalars under <run>/tensorboard/, per epoch or round (needs `pip install 'fedhar[tensorboard]'`; also --log tensorboard)."})


def parse_overrides(overrides: str | Iterable[str]) -> list[tuple[str, Any]]:
    """``["train.lr=3e-4", "model.backbone.name=none"]`` -> typed pairs (values parsed as YAML).

    One string holds pairs separated by spaces or ``;`` (``"federated.rounds=3; train.lr=1e-3"``);
    a separator counts only before ``key=``, so ``personal_parts=[head, frontend]`` stays one value.
    """
    if isinstance(overrides, str):
        overrides = [s.strip(" ;") for s in re.split(r"[;\s]+(?=[A-Za-z_][\w.]*=)", overrides.strip()) if s.strip(" ;")]
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override `{item}`: expected key.sub=value.")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw) if raw.strip() else ""))
    return out


def build_config(data: Mapping[str, Any] | None, overrides: str | Iterable[str] = (), source: str = "config") -> ExperimentConfig:
    """Validate a mapping (+ overrides) into an :class:`ExperimentConfig`; errors name ``source``."""
    tree = dict(data or {})
    for key, value in parse_overrides(overrides):
        _merge(tree, key, value, source)
    try:
        cfg = from_mapping(ExperimentConfig, tree)
        run_checks(cfg)
        return cfg
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.reason}") from None


def read_yaml(path: str | Path) -> dict:
    """A YAML file's top-level mapping, unvalidated; a missing file or bad YAML is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data, model, train, ...).")
    return data


def load_config(path: str | Path, overrides: str | Iterable[str] = ()) -> ExperimentConfig:
    """Read a YAML experiment file; missing files, bad YAML and unknown keys are ConfigErrors."""
    return build_config(read_yaml(path), overrides, str(path))


def config_to_dict(cfg: ExperimentConfig) -> dict:
    return to_mapping(cfg)


def _merge(tree: dict, dotted: str, value: Any, where: str) -> None:
    """Set ``dotted`` in ``tree``; a non-empty mapping updates an existing section key by key
    (``{}`` empties it)."""
    node = tree
    for k in dotted.split(".")[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: cannot set `{dotted}`: `{k}` is not a section.")
    last = dotted.split(".")[-1]
    if isinstance(value, Mapping) and value and isinstance(node.get(last), dict):
        for sub, v in value.items():
            _merge(node[last], str(sub), v, where)
    else:
        node[last] = value


def derive(cfg: ExperimentConfig, changes: Mapping[str, Any], source: str = "derived config") -> ExperimentConfig:
    """The one way to make a config variant: a validated copy of ``cfg`` with dotted keys changed.

    ``derive(cfg, {"model.backbone.name": "none", "federated": {"rounds": 2}})``; a mapping value
    updates the section it names key by key. Errors name ``source`` and the key.
    """
    tree = config_to_dict(cfg)
    for key, value in changes.items():
        _merge(tree, key, value, source)
    return build_config(tree, source=source)


@dataclass
class Variant:
    """A labelled config change that a study compares against its siblings."""

    label: str
    changes: dict[str, Any] = field(default_factory=dict)

    def apply(self, cfg: ExperimentConfig) -> ExperimentConfig:
        return derive(cfg, self.changes, source=f"variant `{self.label}`")
