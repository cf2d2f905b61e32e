"""Training configuration: the ``train:`` loop shared by central, client and continual training,
``pretrain:`` (the masked autoencoder) and ``sweep:``; light, so ``fedhar.config`` needs no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fedhar.exceptions import ConfigError
from fedhar.models.config import PARTS, MAEConfig, Part

Precision = Literal["bf16", "fp32"]


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied in the one training loop, so every neural variant gets it."""

    rotation: bool = field(default=False, metadata={"help": "Rotate each training window by a random 3-D rotation, the same one for its accelerometer and gyroscope triads (placement and orientation invariance, as in UniMTS)."})
    max_degrees: float = field(default=180.0, metadata={"help": "Largest rotation angle in degrees (180: uniform over all rotations)."})
    probability: float = field(default=1.0, metadata={"help": "Share of training windows rotated."})

    def __post_init__(self) -> None:
        if not 0 < self.max_degrees <= 180:
            raise ConfigError(f"`train.augment.max_degrees` must be in (0, 180]; got {self.max_degrees}.")
        if not 0 <= self.probability <= 1:
            raise ConfigError(f"`train.augment.probability` must be in [0, 1]; got {self.probability}.")


@dataclass
class TrainConfig:
    epochs: int = field(default=6, metadata={"help": "Passes over the training windows (per round, for a client)."})
    batch_size: int = field(default=64, metadata={"help": "Training batch size."})
    eval_batch_size: int = field(default=256, metadata={"help": "Inference batch size (no gradients, so larger)."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    schedule: Literal["cosine", "constant"] = field(default="cosine", metadata={"help": "cosine (with warmup) or constant."})
    warmup_fraction: float = field(default=0.05, metadata={"help": "Fraction of steps of linear warmup."})
    class_weights: bool = field(default=False, metadata={"help": "Weight the loss by inverse class frequency."})
    grad_clip: float | None = field(default=1.0, metadata={"help": "Clip the gradient norm (null: off)."})
    precision: Precision = field(default="bf16", metadata={"help": "bf16 (CPU autocast) or fp32."})
    threads: int | None = field(default=None, metadata={"help": "torch threads (null: leave torch's default)."})
    trainable: list[Part] = field(default_factory=lambda: list(PARTS), metadata={"help": "Parts that train: frontend, lora, head, backbone, norms."})
    feature_cache: bool = field(default=True, metadata={"help": "When only the head trains, compute the frozen network's pooled features once and train the head on them (same result, far faster)."})
    eval_every: int = field(default=1, metadata={"help": "Evaluate every N epochs (the last epoch always)."})
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars."})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"help": "Training-time augmentation."})

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"`train.{key}` must be positive; got {getattr(self, key)}.")
        if self.lr <= 0:
            raise ConfigError(f"`train.lr` must be positive; got {self.lr}.")
        if not self.trainable:
            raise ConfigError(f"`train.trainable` must name some of {', '.join(PARTS)}; got an empty list.")


@dataclass
class PretrainConfig:
    """The ``pretrain:`` section: the autoencoder's shape and how long to train it."""

    mae: MAEConfig = field(default_factory=MAEConfig)
    epochs: int = field(default=100, metadata={"help": "Passes over the unlabelled training windows."})
    batch_size: int = field(default=64, metadata={"help": "Batch size."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (cosine schedule with warmup)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    warmup_fraction: float = field(default=0.05, metadata={"help": "Share of steps of linear warmup."})
    precision: Precision = field(default="fp32", metadata={"help": "bf16 (CPU autocast) or fp32."})
    eval_every: int = field(default=10, metadata={"help": "Reconstruction loss on the test windows every N epochs."})

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`pretrain.{key}` must be at least 1; got {getattr(self, key)}.")
        if self.lr <= 0:
            raise ConfigError(f"`pretrain.lr` must be positive; got {self.lr}.")


@dataclass
class SweepConfig:
    """The ``sweep:`` section."""

    key: str = field(default="", metadata={"help": "Dotted config key to sweep, e.g. model.backbone.lora.r."})
    values: list[Any] = field(default_factory=list, metadata={"help": "Values of `key`, in plot order."})
    label: str = field(default="", metadata={"help": "Axis label (default: the key)."})
    log_x: bool = field(default=False, metadata={"help": "Logarithmic x axis (ranks, budgets)."})
    steps: int | None = field(default=None, metadata={"help": "Optimizer steps per run, whatever the training-set size (epochs derived); null: train.epochs."})
    variants: list[dict] = field(default_factory=lambda: [{"label": "configured model"}],
                                 metadata={"help": "Models compared at every value: {label, set: {dotted key: value}}."})

    def __post_init__(self) -> None:
        if self.key and not self.values:
            raise ConfigError(f"`sweep.values` must list the values of `{self.key}` to try.")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"`sweep.steps` must be at least 1; got {self.steps}.")
        for i, v in enumerate(self.variants):
            if not isinstance(v, dict) or not v.get("label") or not isinstance(v.get("set", {}), dict):
                raise ConfigError(f"`sweep.variants[{i}]` must be {{label: ..., set: {{key: value}}}}; got {v!r}.")
