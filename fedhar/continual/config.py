"""The ``continual:`` section of an experiment: the drift scenario, the strategies compared, the
baselines beside them, and how a federated run spreads the phases over clients and rounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fedhar.exceptions import ConfigError
from fedhar.models.config import check_variants

if TYPE_CHECKING:
    from fedhar.models.config import BackboneConfig

DEFAULT_STRATEGIES = [{"name": "naive"}, {"name": "replay", "buffer_windows": 500},
                      {"name": "ewc", "lambda_": 1000.0, "fisher_batch_size": 16}, {"name": "adapters"}]


@dataclass
class ContinualFederatedConfig:
    """Each client walks the same phases; client ``c`` enters phase ``k`` in round
    ``1 + k * rounds_per_phase + c * stagger_rounds``, so drift reaches clients one at a time."""

    clients: int = field(default=4, metadata={"help": "Clients; each phase's subjects are dealt to them round-robin."})
    rounds_per_phase: int = field(default=2, metadata={"help": "Rounds a client spends in each phase."})
    stagger_rounds: int = field(default=1, metadata={"help": "Rounds between one client's switch and the next one's."})
    state_dir: str | None = field(default=None, metadata={"help": "Where clients keep their state between rounds (default: <run>/clients)."})
    observe_windows: int = field(default=64, metadata={"help": "Incoming windows per round fed to the client's drift detector."})

    def __post_init__(self) -> None:
        for key in ("clients", "rounds_per_phase", "observe_windows"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`continual.federated.{key}` must be at least 1; got {getattr(self, key)}.")
        if self.stagger_rounds < 0:
            raise ConfigError(f"`continual.federated.stagger_rounds` must be >= 0; got {self.stagger_rounds}.")

    def total_rounds(self, phases: int) -> int:
        return phases * self.rounds_per_phase + (self.clients - 1) * self.stagger_rounds

    def phase_of(self, client: int, server_round: int, phases: int) -> int:
        """The phase client ``client`` is in during ``server_round`` (1-based rounds)."""
        k = (server_round - 1 - client * self.stagger_rounds) // self.rounds_per_phase
        return int(min(max(k, 0), phases - 1))

    def last_round_of_phase(self, client: int, phase: int, phases: int, total_rounds: int) -> int:
        if phase == phases - 1:
            return total_rounds
        return (phase + 1) * self.rounds_per_phase + client * self.stagger_rounds


@dataclass
class ContinualConfig:
    mode: Literal["central", "federated"] = field(default="central", metadata={"help": "central (one device's stream) or federated (clients on Flower, phases spread over rounds)."})
    scenario: Any = field(default=None, metadata={"help": "Drift scenario: a mapping (see fedhar.drift.scenario) or a YAML file path."})
    strategies: list[dict] = field(default_factory=lambda: [dict(s) for s in DEFAULT_STRATEGIES],
                                   metadata={"help": "Strategies to compare: {name, label?, ...options}; see fedhar.continual.strategies."})
    variants: list[dict] = field(default_factory=list, metadata={"help": "Baseline backbones: {label, backbone: {overrides}, strategies: [labels] (default: all)}."})
    main_label: str | None = field(default=None, metadata={"help": "Label of the configured model in the report; null: derived from `model.backbone` (e.g. `pretrained LLM (smollm2-135m, first 8 blocks)`)."})
    classical: bool = field(default=True, metadata={"help": "Add the features + random-forest baseline (retrained per phase, and on all data so far)."})
    detector: Any = field(default=True, metadata={"help": "Drift detector for the detection-delay simulation: true, false or its parameters."})
    max_post_windows: int = field(default=512, metadata={"help": "Post-change windows the detection simulation may consume per boundary."})
    federated: ContinualFederatedConfig = field(default_factory=ContinualFederatedConfig)

    def __post_init__(self) -> None:
        from fedhar.continual.strategies import build_detector, build_strategy

        if not self.strategies:
            raise ConfigError("`continual.strategies` must list at least one strategy.")
        labels = []
        for i, spec in enumerate(self.strategies):
            if not isinstance(spec, dict) or "name" not in spec:
                raise ConfigError(f"`continual.strategies[{i}]` must be a mapping with a `name`; got {spec!r}.")
            build_strategy(spec["name"], strategy_options(spec))
            labels.append(strategy_label(spec))
        if len(set(labels)) != len(labels):
            raise ConfigError(f"`continual.strategies`: labels must be unique; got {labels}. Add `label:` to tell them apart.")
        check_variants(self.variants, "continual.variants", ("label", "backbone", "strategies"))
        for i, v in enumerate(self.variants):
            bad = [s for s in v.get("strategies") or [] if s not in labels]
            if bad:
                raise ConfigError(f"`continual.variants[{i}].strategies`: {bad} are not strategy labels; choose from {labels}.")
        build_detector(self.detector, "continual.detector")
        if isinstance(self.scenario, dict):
            from fedhar.drift import load_scenario

            load_scenario(self.scenario, where="continual.scenario")

    def model_label(self, backbone: "BackboneConfig") -> str:
        """``main_label``, or else what the configured backbone builds."""
        from fedhar.training.labels import model_label

        return model_label(self.main_label, backbone)


def strategy_label(spec: dict) -> str:
    return str(spec.get("label") or spec["name"])


def strategy_options(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("name", "label")}
