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
    from fedhar.config import ExperimentConfig, Variant
    from fedhar.models.config import BackboneConfig

MODES = {"head": ["head"], "full": ["frontend", "lora", "head", "backbone", "norms"]}
"""Adaptation modes: what trains on the target. ``full`` is head + LoRA + frontend (+ the
weights of a from-scratch backbone, which has no frozen part, and an LLM's norms where
``model.backbone.train_norms`` made them trainable)."""

FOLD_MAE = "fold-mae"
"""Backbone name of the MAE protocol's model: each fold's MAE, pretrained on the other datasets."""

DEFAULT_VARIANTS = [
    {"label": "random-init LLM", "backbone": {"pretrained": False}},
    {"label": "no LLM", "backbone": {"name": "none"}},
    {"label": "from-scratch Transformer", "backbone": {"name": "transformer", "layers": 2, "d_model": 128, "heads": 4}},
]


@dataclass
class AdaptConfig:
    """Local fine-tuning on a small labelled set (few-shot target data, a client's own windows).

    The budget scales with the labelled data (see :func:`fedhar.transfer.adapt.adapt`): when
    ``validation`` is on and every
    class of the labelled set has at least ``val_min_per_class`` windows, a stratified
    ``val_fraction`` of them is held out and training stops early on its macro-F1 (the best
    epoch's state is restored); otherwise there is no validation and the step rule alone applies.
    Either way the run lasts ``epochs`` passes over the training part, at least ``min_steps``
    optimizer steps and at most ``max_steps``.
    """

    epochs: int = field(default=20, metadata={"help": "Passes over the labelled training windows, so the steps (epochs x ceil(windows / batch)) scale with the data; with validation, the most epochs early stopping may run."})
    min_steps: int = field(default=50, metadata={"help": "At least this many optimizer steps (more epochs for tiny sets: the fixed budget of k=1 and k=5); early stopping never stops before them."})
    max_steps: int | None = field(default=None, metadata={"help": "At most this many steps (fewer epochs for large sets, at least one epoch); null: no cap."})
    batch_size: int = field(default=32, metadata={"help": "Batch size."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    validation: bool = field(default=True, metadata={"help": "Hold out validation windows for early stopping when the set is large enough (see val_min_per_class); false: always the fixed budget on every labelled window."})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of each class's labelled windows held out for early stopping (when validation applies)."})
    val_min_per_class: int = field(default=10, metadata={"help": "Validation is held out only when every class in the labelled set has at least this many windows; otherwise fixed steps, no validation."})
    patience: int = field(default=3, metadata={"help": "Stop after this many epochs without a better validation macro-F1 (once min_steps are done)."})

    def __post_init__(self) -> None:
        for key in ("epochs", "min_steps", "batch_size", "patience"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`adapt.{key}` must be at least 1; got {getattr(self, key)}.")
        if self.max_steps is not None and self.max_steps < self.min_steps:
            raise ConfigError(f"`adapt.max_steps` ({self.max_steps}) must be at least `adapt.min_steps` ({self.min_steps}).")
        if self.lr <= 0:
            raise ConfigError(f"`adapt.lr` must be positive; got {self.lr}.")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"`adapt.val_fraction` must be in (0, 1); got {self.val_fraction}.")
        if self.val_min_per_class < 2:
            raise ConfigError(f"`adapt.val_min_per_class` must be at least 2 (one window to train on and one to "
                              f"validate per class); got {self.val_min_per_class}.")


@dataclass
class DatasetSpec:
    """One dataset of the cross-dataset federation, loaded through fedhar's loaders."""

    name: str = field(default="", metadata={"help": "Short name used in reports and as the client id."})
    source: str | None = field(default=None, metadata={"help": "Known source (uci_har, wisdm, hhar, ...) or a path; default: `name`."})
    format: Format = field(default="auto", metadata={"help": "Loader format (auto-detected by default)."})
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "Loader options."})
    split: Literal["auto", "official", "subject"] = field(default="auto", metadata={"help": "official, subject or auto (official where the dataset has one)."})
    test_fraction: float = field(default=0.3, metadata={"help": "Share of subjects held for testing when split by subject."})
    labels: dict[str, str] = field(default_factory=dict, metadata={"help": "Map the dataset's class names to canonical names, e.g. {Laying: lying, jog: jogging} (keys case-insensitive, each a class of the dataset). Unmapped classes with no canonical name stay classes of their own in the union label space, masked for the datasets that lack them."})
    channels: dict[str, str | None] = field(default_factory=dict, metadata={"help": "Rename the dataset's channels to `<sensor>_<axis>` names, e.g. {ax: acc_x, ay: acc_y, az: acc_z, gx: gyro_x, gy: gyro_y, gz: gyro_z}; null drops a channel. The pool uses the acc_* and gyro_* channels."})

    def __post_init__(self) -> None:
        from fedhar.data.harmonize import check_channel_map
        from fedhar.data.vocab import check_label_map

        if not self.name:
            raise ConfigError("`lodo.datasets[*].name` must not be empty.")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"`lodo.datasets[{self.name}].test_fraction` must be in (0, 1); got {self.test_fraction}.")
        self.labels = check_label_map(self.labels, f"lodo.datasets[{self.name}].labels")
        self.channels = check_channel_map(self.channels, f"lodo.datasets[{self.name}].channels")


@dataclass
class TextZeroShotConfig:
    """Windows rendered as text and each class name scored by a causal LLM's likelihood (HARGPT-style)."""

    enabled: bool = field(default=False, metadata={"help": "Add the readings-as-text zero-shot rows."})
    backbone: str = field(default="smollm2-135m", metadata={"help": "The language model that reads the text."})
    layers: int | None = field(default=None, metadata={"help": "Keep only its first N blocks (null: all; a truncated model has no trained LM head input, so all is the fair choice)."})
    style: Literal["stats", "readings"] = field(default="stats", metadata={"help": "stats (summary statistics in words and numbers) or readings (downsampled values)."})
    calibrate: bool = field(default=True, metadata={"help": "Subtract each class name's prior score (contextual calibration)."})
    downsample_hz: float = field(default=2.0, metadata={"help": "readings style: rate of the values written out."})
    max_windows: int | None = field(default=300, metadata={"help": "Score at most this many test windows per held-out dataset (stratified; LLM scoring is slow on CPU); null: all."})


@dataclass
class LodoConfig:
    """Leave-one-dataset-out: train federated on the others, adapt and test on the held-out one."""

    protocol: Literal["federated", "mae"] = field(default="federated", metadata={"help": "federated: federated rounds on the others, then zero-/few-shot on the held-out one; mae: pretrain an MAE on the others' unlabelled windows, then fine-tune on the held-out one's labelled budget."})
    datasets: list[Any] = field(default_factory=lambda: ["uci_har", "wisdm", "hhar"], metadata={"help": "Datasets: names of known sources, or {name, source, format, options, split, test_fraction, labels, channels}."})
    held_out: list[str] | None = field(default=None, metadata={"help": "Datasets to hold out in turn (default: each)."})
    rate_hz: float = field(default=20.0, metadata={"help": "Common sampling rate (Hz)."})
    window_seconds: float = field(default=2.56, metadata={"help": "Common window length in seconds."})
    sensors: list[Literal["acc", "gyro"]] = field(default_factory=lambda: ["acc", "gyro"], metadata={"help": "Common sensors; a dataset without one gets it zero-filled, which the frontend reads as absent."})
    max_windows: int | None = field(default=3000, metadata={"help": "Cap per dataset (stratified subsample) after windowing; null: all."})
    budgets: list[Any] = field(default_factory=lambda: ["k1", "k5", "k10", "1%", "10%", "100%"], metadata={"help": "Label budgets on the held-out dataset: kN windows per class, or N% of its training windows."})
    modes: list[Literal["head", "full"]] = field(default_factory=lambda: ["head", "full"], metadata={"help": "head (head only) and/or full (head + LoRA + frontend)."})
    budget_seed: int | None = field(default=None, metadata={"help": "Seed of the labelled-budget draws; null: the run's `seed`, so the draws change with the seed. Within one run every variant gets the same windows."})
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    main_label: str | None = field(default=None, metadata={"help": "Label of the configured model; null: derived from `model.backbone` (e.g. `pretrained LLM (smollm2-135m, first 8 blocks)`, `random-init LLM (tiny-llama, first 2 blocks)`)."})
    variants: list[dict] = field(default_factory=lambda: [dict(v) for v in DEFAULT_VARIANTS], metadata={"help": "Baselines: {label, backbone: {overrides}, set: {dotted key: value}} (set: any other change, e.g. {model.head.kind: text, train.augment.rotation: true})."})
    unseen_classes: list[str] = field(default_factory=list, metadata={"help": "Classes removed from the training datasets, so every model meets them first on the held-out dataset (zero-shot by name; e.g. [jogging, biking])."})
    text_zero_shot: "TextZeroShotConfig" = field(default_factory=lambda: TextZeroShotConfig(), metadata={"help": "Readings written as text, each class scored by the LLM's likelihood (no training)."})
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
        check_variants(self.variants, "lodo.variants", keys=("label", "backbone", "set"))
        for i, v in enumerate(self.variants):
            if not isinstance(v.get("set", {}), dict):
                raise ConfigError(f"`lodo.variants[{i}].set` must map dotted config keys to values, e.g. "
                                  f"{{model.head.kind: text}}; got {v['set']!r}.")

    @property
    def window(self) -> int:
        return int(round(self.rate_hz * self.window_seconds))

    def held_out_names(self) -> list[str]:
        return list(self.held_out) if self.held_out else [d.name for d in self.datasets]

    def model_label(self, backbone: "BackboneConfig") -> str:
        """``main_label``, or else what the configured backbone builds."""
        from fedhar.training.labels import model_label, weights_label

        if not self.main_label and backbone.name == FOLD_MAE:
            return weights_label(backbone, "MAE encoder", "per fold")
        return model_label(self.main_label, backbone)

    def variant_plan(self, cfg: "ExperimentConfig") -> tuple[list["Variant"], dict[str, str]]:
        """The configured model, then each baseline (its ``backbone`` overrides and ``set`` dotted
        changes as one config change), less the baselines that build the same model, with the same
        head, prompt and augmentation, as one before them: ``{left out: same as}``."""
        from fedhar.config import Variant
        from fedhar.schema import to_mapping
        from fedhar.training.labels import repeated_models

        variants = [Variant(self.model_label(cfg.model.backbone))] + [
            Variant(str(v["label"]), {**({"model.backbone": dict(v["backbone"])} if v.get("backbone") else {}),
                                      **dict(v.get("set", {}))})
            for v in self.variants]
        groups: dict[str, list] = {}
        for v in variants:
            vcfg = v.apply(cfg)
            rest = {k: val for k, val in to_mapping(vcfg.model).items() if k != "backbone"}
            groups.setdefault(repr((rest, to_mapping(vcfg.train.augment))), []).append((v.label, vcfg.model.backbone))
        repeated = {k: val for group in groups.values() for k, val in repeated_models(group).items()}
        return [v for v in variants if v.label not in repeated], repeated

    def variant_list(self, cfg: "ExperimentConfig") -> list["Variant"]:
        return self.variant_plan(cfg)[0]


@dataclass
class CouplingsConfig:
    """The ``couplings:`` section of the LLM-couplings study (``fedhar study llm_couplings``): each
    coupling is a labelled config change on the configured (pretrained-LLM) model, screened with one
    seed on one held-out dataset; the best ``keep`` then run over every held-out dataset and
    ``seeds``, each beside its random-init twin and the baselines, in one leave-one-dataset-out
    study (``lodo.*``)."""

    couplings: list[dict] = field(default_factory=list, metadata={"help": "Couplings to screen: {label, set: {dotted key: value}}, applied to the configured model (e.g. {label: label-name head, set: {model.head.kind: text}})."})
    baselines: list[dict] = field(default_factory=lambda: [
        {"label": "no LLM", "backbone": {"name": "none"}},
        {"label": "from-scratch Transformer", "backbone": {"name": "transformer", "layers": 2, "d_model": 128, "heads": 4}}],
        metadata={"help": "Non-LLM rows: {label, backbone, set}. In the confirmation they take the augmentation (`train.augment`) of the best coupling, so the comparison stays fair; the random forest is `lodo.classical`."})
    screen_held_out: str | None = field(default=None, metadata={"help": "Held-out dataset of the screening (default: the first of `lodo.held_out` or `lodo.datasets`)."})
    screen_seed: int = field(default=0, metadata={"help": "Seed of the screening run."})
    screen_baselines: bool = field(default=False, metadata={"help": "Also run the baselines in the screening (they do not compete for a place)."})
    keep: int = field(default=2, metadata={"help": "Couplings kept for the confirmation."})
    select_budgets: list[Any] = field(default_factory=lambda: ["k1", "k5", "k10"], metadata={"help": "Budgets whose mean macro-F1 (mode `select_mode`) ranks the couplings."})
    select_mode: Literal["head", "full"] = field(default="full", metadata={"help": "Adaptation mode that ranks the couplings."})
    confirm_plain: bool = field(default=False, metadata={"help": "Keep the configured model without any coupling in the confirmation too (it is always in the screening)."})

    def __post_init__(self) -> None:
        from fedhar.transfer.budget import parse_budget

        check_variants(self.couplings, "couplings.couplings", keys=("label", "backbone", "set"))
        check_variants(self.baselines, "couplings.baselines", keys=("label", "backbone", "set"))
        labels = [c["label"] for c in self.couplings + self.baselines]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"`couplings.couplings` and `couplings.baselines` need distinct labels; got {labels}.")
        if self.keep < 1:
            raise ConfigError(f"`couplings.keep` must be at least 1; got {self.keep}.")
        for b in self.select_budgets:
            parse_budget(b, "couplings.select_budgets")


Personalization = Literal["head", "lora_head", "full", "fedper"]
STRATEGY_PARTS = {"head": ["head"], "lora_head": ["lora", "head"], "full": ["frontend", "lora", "head", "backbone", "norms"]}
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
