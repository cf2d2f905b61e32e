"""Knowledge-distillation settings, beside the loss and cache that use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fedhar.exceptions import ConfigError


@dataclass
class DistillConfig:
    """Teacher -> student: ``(1 - weight) * CE(labels) + weight * T^2 * KL(teacher_T || student_T)``."""

    temperature: float = field(default=2.0, metadata={"help": "Softening temperature T of both teacher and student logits."})
    weight: float = field(default=0.7, metadata={"help": "Weight of the KL term; 1 - weight goes to cross-entropy on the labels (1.0: no labels needed)."})
    val_fraction: float = field(default=0.2, metadata={"help": "Share of the training data held out as validation (the last days where windows carry a day, else a seeded random share): teacher and students stop early on it, and the teacher check compares them on it. 0: no validation, no check, fixed epochs."})
    patience: int = field(default=2, metadata={"help": "Stop a teacher or student after this many epochs without a better validation macro-F1 (the best epoch's state is kept)."})
    check: Literal["skip", "lower", "off"] = field(default="skip", metadata={"help": "When the teacher's validation macro-F1 is not above the directly trained student's by more than `margin`: skip distillation (the student is kept as trained directly), lower the KL weight to `lowered_weight`, or distil anyway (off)."})
    margin: float = field(default=0.0, metadata={"help": "How much better (validation macro-F1) the teacher must be for full-weight distillation."})
    lowered_weight: float = field(default=0.2, metadata={"help": "`check: lower`: the KL weight used when the teacher is not better."})

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"`distill.temperature` must be positive; got {self.temperature}.")
        for key in ("weight", "lowered_weight"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"`distill.{key}` must be in [0, 1]; got {getattr(self, key)}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"`distill.val_fraction` must be in [0, 1); got {self.val_fraction}.")
        if self.patience < 1:
            raise ConfigError(f"`distill.patience` must be at least 1; got {self.patience}.")


@dataclass
class DistillStudyConfig:
    """The ``distill:`` section of ``simulations/distill.py``: which teacher, which student.

    ``teacher`` and ``student`` replace fields of ``model.backbone`` (``{layers: null}`` for all 30
    SmolLM2 blocks; ``{layers: 2}`` or ``{name: none}`` for a few blocks or no LLM).
    """

    teacher: dict = field(default_factory=lambda: {"layers": None}, metadata={"help": "model.backbone fields of the teacher."})
    student: dict = field(default_factory=lambda: {"layers": 2}, metadata={"help": "model.backbone fields of the student."})
    teacher_epochs: int | None = field(default=None, metadata={"help": "Teacher epochs (null: train.epochs)."})
    student_epochs: int | None = field(default=None, metadata={"help": "Student epochs (null: train.epochs)."})
    kd: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "Temperature and KL weight."})

    def __post_init__(self) -> None:
        from fedhar.models.config import BackboneConfig

        valid = set(BackboneConfig.__dataclass_fields__)
        for role in ("teacher", "student"):
            bad = sorted(set(getattr(self, role)) - valid)
            if bad:
                raise ConfigError(f"`distill.{role}` has unknown backbone field(s) {bad}; valid: {', '.join(sorted(valid))}.")
