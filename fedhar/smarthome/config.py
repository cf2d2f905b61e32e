"""The ``smarthome:`` section: which homes, which teacher and student, and the distillation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fedhar.distill.config import DistillConfig
from fedhar.exceptions import ConfigError


@dataclass
class SmartHomeConfig:
    """The smart-home comparison (``simulations/smarthome.py``): per home, or federated over homes."""

    mode: Literal["central", "federated"] = field(default="central", metadata={"help": "central (per home: zero-shot, classical, teacher, student, distilled student) or federated (the homes as Flower clients, against each home's own model)."})
    homes: list[str] = field(default_factory=lambda: ["ordonez_a", "ordonez_b"], metadata={"help": "Homes (see fedhar.data.smarthome.HOMES)."})
    teacher_layers: int | None = field(default=None, metadata={"help": "Decoder blocks of the LoRA teacher (null: all 30 of SmolLM2)."})
    student_layers: int = field(default=2, metadata={"help": "Decoder blocks of the small student."})
    teacher_epochs: int | None = field(default=None, metadata={"help": "Teacher epochs (null: train.epochs)."})
    student_epochs: int | None = field(default=None, metadata={"help": "Student epochs, direct and distilled alike (null: train.epochs)."})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "KD temperature and weight."})
    zero_shot: bool = field(default=True, metadata={"help": "Score activity names with the full LLM's language model (no training)."})
    zero_shot_layers: int | None = field(default=None, metadata={"help": "Blocks of the zero-shot LM (null: all)."})
    classical_trees: int = field(default=300, metadata={"help": "Trees of the random forest on sensor counts + hour."})

    def __post_init__(self) -> None:
        if not self.homes:
            raise ConfigError("`smarthome.homes` is empty; name some homes.")
        for key in ("teacher_layers", "student_layers", "teacher_epochs", "student_epochs", "zero_shot_layers"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                raise ConfigError(f"`smarthome.{key}` must be positive; got {v}.")
