"""The ``lodo:`` and ``personalization:`` sections: cross-dataset federated rounds with
few-shot adaptation, and on-device personalisation after federated training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from fedhar.data.config import Format
from fedhar.exceptions import ConfigError
from fedhar.models.config import check_variants
from fedhar.schema import from_mapping

if TYPE_CHECKING:
    from fedhar.config import Variant

MODES = {"head": ["head"], "full": ["frontend", "lora", "head", "backbone"]}
"""Adaptation modes: what trains on the target. ``full`` is head + LoRA + frontend (+ the
weights of a from-scratch backbone, which has no frozen part)."""

DEFAULT_VARIANTS = [
    {"label": "random-init LLM", "backbone": {"pretrained": False}},
    {"label": "no LLM", "backbone": {"name": "none"}},
    {"label": "from-scratch Transformer", "backbone": {"name": "transformer", "layers": 2, "d_model": 128, "heads": 4}},
]


@dataclass
class AdaptConfig:
    """Local fine-tuning on a small labelled set (few-shot target data, a client's own windows)."""

    epochs: int = field(default=10, metadata={"help": "Passes over the labelled windows."})
    min_steps: int = field(default=50, metadata={"help": "At least this many optimizer steps (more epochs for tiny sets such as k=1)."})
    max_steps: int | None = field(default=None, metadata={"help": "At most this many steps (fewer epochs for large sets); null: no cap."})
    batch_size: int = field(default=32, metadata={"help": "Batch size."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})

    def __post_init__(self) -> None:
        for key in ("epochs", "min_steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`adapt.{key}` must be at least 1; got {getattr(self, key)}.")
        if self.max_steps is not None and self.max_steps < self.min_steps:
            raise ConfigError(f"`adapt.max_steps` ({self.max_steps}) must be at least `adapt.min_steps` ({self.min_steps}).")
        if self.lr <= 0:
            raise ConfigError(f"`adapt.lr` must be positive; got {self.lr}.")


@dataclass
class DatasetSpec:
    """One dataset of the cross-dataset federation, loaded through fedhar's loaders."""

    name: str = field(default="", metadata={"help": "Short name used in reports and as the client id."})
    source: str | None = field(default=None, metadata={"help": "Known source (uci_har, wisdm, hhar, ...) or a path; default: `name`."})
    format: Format = field(default="auto", metadata={"help": "Loader format (auto-detected by default)."})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "Loader options."})
    split: Literal["auto", "official", "subject"] = field(default="auto", metadata={"help": "official, subject or auto (official where the dataset has one)."})
    test_fraction: float = field(default=0.3, metadata={"help": "Share of subjects held for testing when split by subject."})

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("`lodo.datasets[*].name` must not be empty.")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"`lodo.datasets[{self.name}].test_fraction` must be in (0, 1); got {self.test_fraction}.")


@dataclass
class LodoConfig:
    """Leave-one-dataset-out: train federated on the others, adapt and test on the held-out one."""

    protocol: Literal["federated", "mae"] = field(default="federated", metadata={"help": "federated: federated rounds on the others, then zero-/few-shot on the held-out one; mae: pretrain an MAE on the others' unlabelled windows, then fine-tune on the held-out one's labelled budget."})
    datasets: list[Any] = field(default_factory=lambda: ["uci_har", "wisdm", "hhar"], metadata={"help": "Datasets: names of known sources, or {name, source, format, options, split, test_fraction}."})
    held_out: list[str] | None = field(default=None, metadata={"help": "Datasets to hold out in turn (default: each)."})
    rate_hz: float = field(default=20.0, metadata={"help": "Common sampling rate (Hz)."})
    window_seconds: float = field(default=2.56, metadata={"help": "Common window length in seconds."})
    sensors: list[Literal["acc", "gyro"]] = field(default_factory=lambda: ["acc", "gyro"], metadata={"help": "Common sensors; a dataset without one gets it zero-filled, which the frontend reads as absent."})
    max_windows: int | None = field(default=3000, metadata={"help": "Cap per dataset (stratified subsample) after windowing; null: all."})
    budgets: list[Any] = field(default_factory=lambda: ["k1", "k5", "k10", "1%", "10%", "100%"], metadata={"help": "Label budgets on the held-out dataset: kN windows per class, or N% of its training windows."})
    modes: list[Literal["head", "full"]] = field(default_factory=lambda: ["head", "full"], metadata={"help": "head (head only) and/or full (head + LoRA + frontend)."})
    budget_seed: int = field(default=0, metadata={"help": "Seed of the labelled-budget draws (the same windows for every variant)."})
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    main_label: str = field(default="pretrained LLM", metadata={"help": "Label of the configured model."})
    variants: list[dict] = field(default_factory=lambda: [dict(v) for v in DEFAULT_VARIANTS], metadata={"help": "Baselines: {label, backbone: {overrides}}."})
    classical: bool = field(default=True, metadata={"help": "Add the features + random-forest baseline."})
    trees: int = field(default=200, metadata={"help": "Trees of the random forest."})

    def __post_init__(self) -> None:
        from fedhar.transfer.budget import parse_budget

        specs = []
        for i, d in enumerate(self.datasets):
            if isinstance(d, str):
                d = {"name": d}
            if not isinstance(d, dict):
                raise ConfigError(f"`lodo.datasets[{i}]` must be a name or a mapping; got {d!r}.")
            specs.append(from_mapping(DatasetSpec, d, f"lodo.datasets[{i}]"))
        self.datasets = specs
        names = [d.name for d in specs]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ConfigError(f"`lodo.datasets` needs at least two datasets with distinct names; got {names}.")
        for h in self.held_out or []:
            if h not in names:
                raise ConfigError(f"`lodo.held_out` names `{h}`, which is not among `lodo.datasets` ({', '.join(names)}).")
        for b in self.budgets:
            parse_budget(b, "lodo.budgets")
        for key in ("modes", "sensors"):
            if not getattr(self, key):
                raise ConfigError(f"`lodo.{key}` is empty; list at least one.")
        if self.rate_hz <= 0 or self.window_seconds <= 0:
            raise ConfigError(f"`lodo.rate_hz` and `lodo.window_seconds` must be positive; got {self.rate_hz}, {self.window_seconds}.")
        check_variants(self.variants, "lodo.variants")

    @property
    def window(self) -> int:
        return int(round(self.rate_hz * self.window_seconds))

    def held_out_names(self) -> list[str]:
        return list(self.held_out) if self.held_out else [d.name for d in self.datasets]

    def variant_list(self) -> list["Variant"]:
        """The configured model, then each baseline: its ``backbone`` overrides as a config change."""
        from fedhar.config import Variant

        return [Variant(self.main_label)] + [Variant(str(v["label"]), {"model.backbone": dict(v.get("backbone", {}))})
                                             for v in self.variants]


Personalization = Literal["head", "lora_head", "full", "fedper"]
STRATEGY_PARTS = {"head": ["head"], "lora_head": ["lora", "head"], "full": ["frontend", "lora", "head", "backbone"]}
"""Personalisation strategies that fine-tune the global model on the device, and what they train;
``fedper`` instead keeps the head local during federated training (FedPer)."""


@dataclass
class PersonalizationConfig:
    """Each client fine-tunes the federated global model on its own training split
    (``1 - federated.local_test_fraction`` of its windows) and is tested on the rest."""

    strategies: list[Personalization] = field(default_factory=lambda: list(get_args(Personalization)), metadata={"help": f"Some of {', '.join(get_args(Personalization))}."})
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    clients: list[int] | None = field(default=None, metadata={"help": "Clients to personalise (default: all)."})

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("`personalization.strategies` is empty; list at least one.")
