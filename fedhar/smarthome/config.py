"""The ``smarthome:`` section: which homes, which teacher and student, and the distillation."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Literal, get_args

from fedhar.distill.config import DistillConfig
from fedhar.exceptions import ConfigError
from fedhar.transfer.config import AdaptConfig

Federation = Literal["federated", "fedper", "feddf"]
FEDERATED_ONLY = ("federations", "own_epochs", "personal_parts", "personalize", "personalize_from", "public_homes")
"""Keys only ``mode: federated`` reads; ``mode: central`` refuses them when they differ from their defaults."""


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
    zero_shot_prompts: list[str] = field(default_factory=lambda: ["\nThe resident is", "\nWhat the resident is doing now:"], metadata={"help": "Prompts after the window text that the zero-shot investigation compares; the first gives the main rows."})
    zero_shot_domain_windows: int = field(default=64, metadata={"help": "Unlabelled training windows whose mean phrase scores are the domain prior (domain calibration)."})
    zero_shot_layers: int | None = field(default=None, metadata={"help": "Blocks of the zero-shot LM (null: all)."})
    classical_trees: int = field(default=300, metadata={"help": "Trees of the random forest on sensor counts + hour."})
    federations: list[Federation] = field(default_factory=lambda: list(get_args(Federation)), metadata={"help": f"mode federated: which federations run beside each home's own model and the random forest, some of {', '.join(get_args(Federation))}. federated: FedAvg's global model, then each home fine-tunes `personal_parts` of it on its own training days (`personalize`); fedper: the heads stay home during training (FedPer); feddf: FedAvg + server distillation on the unlabelled windows of `public_homes` (FedDF)."})
    own_epochs: int | None = field(default=None, metadata={"help": "mode federated: epochs of each home's own model (null: federated.rounds x federated.local_epochs, as many passes as a client makes)."})
    personal_parts: list[str] = field(default_factory=lambda: ["lora", "head"], metadata={"help": "mode federated: the parts a home fine-tunes after federation."})
    personalize: AdaptConfig = field(default_factory=lambda: AdaptConfig(epochs=4, min_steps=20, batch_size=16, lr=5e-4), metadata={"help": "mode federated: the fine-tuning after federation (epochs, steps, lr; early stopping where every class has enough windows)."})
    personalize_from: list[Literal["federated", "fedper"]] | None = field(default=None, metadata={"help": "mode federated: which federations' models each home personalises after training (`personal_parts`, `personalize`). federated: FedAvg's global model (row `federated + personalised`); fedper: FedPer's global LoRA with the home's own head (row `FedPer + personalised`). Each must be in `federations`; null: federated, when it runs."})
    public_homes: list[str] = field(default_factory=lambda: ["kasteren2010_a"], metadata={"help": "mode federated, feddf: homes outside the federation whose training days, unlabelled, are the server's public set."})

    @property
    def personalized(self) -> list[str]:
        """The federations whose models the homes personalise: ``personalize_from``, or FedAvg's when it runs."""
        if self.personalize_from is None:
            return [f for f in ("federated",) if f in self.federations]
        return list(self.personalize_from)

    def __post_init__(self) -> None:
        if not self.homes:
            raise ConfigError("`smarthome.homes` is empty; name some homes.")
        if self.mode == "central":
            ignored = [k for k in FEDERATED_ONLY if getattr(self, k) != _default(k)]
            if ignored:
                raise ConfigError(f"`smarthome.mode` is central, which does not read {', '.join(f'`smarthome.{k}`' for k in ignored)}; "
                                  "set `smarthome.mode: federated` or drop them.")
        shared = sorted(set(self.homes) & set(self.public_homes))
        if shared and self.mode == "federated" and "feddf" in self.federations:
            raise ConfigError(f"`smarthome.public_homes` {shared} are also clients in `smarthome.homes`; FedDF's public set must be "
                              "other homes' windows.")
        if "feddf" in self.federations and not self.public_homes:
            raise ConfigError("`smarthome.federations` has feddf but `smarthome.public_homes` is empty; name the homes whose "
                              "unlabelled windows are the public set.")
        missing = [f for f in self.personalized if f not in self.federations]
        if missing and self.mode == "federated":
            raise ConfigError(f"`smarthome.personalize_from` has {missing}, which `smarthome.federations` "
                              f"({', '.join(self.federations)}) does not run; add them there or drop them here.")
        if not self.zero_shot_prompts:
            raise ConfigError("`smarthome.zero_shot_prompts` is empty; give at least one prompt.")
        from fedhar.models.config import PARTS

        bad = sorted(set(self.personal_parts) - set(PARTS))
        if bad or not self.personal_parts:
            raise ConfigError(f"`smarthome.personal_parts` must be some of {', '.join(PARTS)}; got {self.personal_parts}.")

        for key in ("teacher_layers", "student_layers", "teacher_epochs", "student_epochs", "zero_shot_layers", "own_epochs", "zero_shot_domain_windows"):
            v = getattr(self, key)
            if v is not None and v <= 0:
                raise ConfigError(f"`smarthome.{key}` must be positive; got {v}.")


def _default(key: str) -> object:
    """The default of a :class:`SmartHomeConfig` field, built fresh."""
    f = SmartHomeConfig.__dataclass_fields__[key]
    return f.default_factory() if f.default_factory is not MISSING else f.default
