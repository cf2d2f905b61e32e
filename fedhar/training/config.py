"""Training-loop configuration shared by central, client and continual training."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedhar.exceptions import ConfigError
from fedhar.models.config import PARTS


@dataclass
class TrainConfig:
    epochs: int = field(default=6, metadata={"help": "Passes over the training windows (per round, for a client)."})
    batch_size: int = field(default=64, metadata={"help": "Training batch size."})
    eval_batch_size: int = field(default=256, metadata={"help": "Inference batch size (no gradients, so larger)."})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    schedule: str = field(default="cosine", metadata={"help": "cosine (with warmup) or constant."})
    warmup_fraction: float = field(default=0.05, metadata={"help": "Fraction of steps of linear warmup."})
    class_weights: bool = field(default=False, metadata={"help": "Weight the loss by inverse class frequency."})
    grad_clip: float | None = field(default=1.0, metadata={"help": "Clip the gradient norm (null: off)."})
    precision: str = field(default="bf16", metadata={"help": "bf16 (CPU autocast) or fp32."})
    threads: int | None = field(default=None, metadata={"help": "torch threads (null: leave torch's default)."})
    trainable: list[str] = field(default_factory=lambda: list(PARTS), metadata={"help": "Parts that train: frontend, lora, head, backbone."})
    feature_cache: bool = field(default=True, metadata={"help": "When only the head trains, compute the frozen network's pooled features once and train the head on them (same result, far faster)."})
    eval_every: int = field(default=1, metadata={"help": "Evaluate every N epochs (the last epoch always)."})
    progress: bool = field(default=True, metadata={"help": "Show tqdm progress bars."})

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"`train.{key}` must be positive; got {getattr(self, key)}.")
        if self.lr <= 0:
            raise ConfigError(f"`train.lr` must be positive; got {self.lr}.")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"`train.schedule` must be `cosine` or `constant`; got {self.schedule!r}.")
        if self.precision not in ("bf16", "fp32"):
            raise ConfigError(f"`train.precision` must be `bf16` or `fp32`; got {self.precision!r}.")
        bad = [p for p in self.trainable if p not in PARTS]
        if bad or not self.trainable:
            raise ConfigError(f"`train.trainable` must name some of {', '.join(PARTS)}; got {self.trainable}.")
