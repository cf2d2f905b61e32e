"""Federated-run configuration: partitions, Flower strategy, client resources, fault injection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from fedhar.data.config import DataConfig
from fedhar.exceptions import ConfigError
from fedhar.models.config import Part

StrategyName = Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedavgm"]
Partition = Literal["subject", "device", "dataset", "dataset_subject", "iid", "dirichlet"]


@dataclass
class StrategyConfig:
    """A Flower strategy from ``flwr.serverapp.strategy`` and its hyperparameters."""

    name: StrategyName = field(default="fedavg", metadata={"help": f"One of {', '.join(get_args(StrategyName))}."})
    proximal_mu: float = field(default=0.01, metadata={"help": "FedProx proximal weight (applied client-side)."})
    server_lr: float = field(default=0.01, metadata={"help": "FedAdam/FedYogi server learning rate (eta); FedAvgM server lr."})
    server_momentum: float = field(default=0.9, metadata={"help": "FedAvgM server momentum."})
    beta_1: float = field(default=0.9, metadata={"help": "FedAdam/FedYogi first-moment decay."})
    beta_2: float = field(default=0.99, metadata={"help": "FedAdam/FedYogi second-moment decay."})
    tau: float = field(default=1e-3, metadata={"help": "FedAdam/FedYogi adaptivity (epsilon)."})


@dataclass
class FaultConfig:
    """Test-only fault injection, to prove bad updates never reach the global model."""

    clients: list[int] = field(default_factory=list, metadata={"help": "Partition ids that misbehave."})
    rounds: list[int] = field(default_factory=list, metadata={"help": "Rounds in which they misbehave (empty: all)."})
    mode: Literal["raise", "nan", "shape"] = field(default="raise", metadata={"help": "raise, nan (non-finite update) or shape (wrong-shape update)."})


@dataclass
class ServerDistillConfig:
    """FedDF-style server-side distillation (Lin et al., NeurIPS 2020), run after each round's aggregation.

    The server holds an unlabelled public set of windows. After the strategy aggregates the
    clients' updates, the global model is trained on the public set to match soft targets: the
    logits of a teacher the server holds (``source: teacher``), or the average logits of the
    round's client models (``source: ensemble``). No client data leaves the clients; the public
    windows never go to them.
    """

    enabled: bool = field(default=False, metadata={"help": "Distil into the global model after every round."})
    source: Literal["ensemble", "teacher"] = field(default="ensemble", metadata={"help": "ensemble (mean logits of this round's client models) or teacher (a trained model the server holds)."})
    teacher: str | None = field(default=None, metadata={"help": "source teacher: a `fedhar train` run folder (config.yaml + model/) or a folder with both."})
    public: DataConfig | None = field(default=None, metadata={"help": "The public set: a `data:` section (source, format, options...); its training split is used and its labels never are."})
    max_public: int | None = field(default=2000, metadata={"help": "Cap on public windows (seeded subsample)."})
    temperature: float = field(default=2.0, metadata={"help": "Softening temperature."})
    epochs: int = field(default=2, metadata={"help": "Server epochs over the public set per round."})
    lr: float = field(default=5e-4, metadata={"help": "Server learning rate for distillation."})
    batch_size: int = field(default=32, metadata={"help": "Server distillation batch size."})

    def __post_init__(self) -> None:
        if self.enabled and not self.public:
            raise ConfigError("`federated.distill.enabled` needs `federated.distill.public`: a data section of unlabelled public windows.")
        if self.enabled and self.source == "teacher" and not self.teacher:
            raise ConfigError("`federated.distill.source: teacher` needs `federated.distill.teacher` (a trained run folder).")
        for key in ("temperature", "epochs", "lr", "batch_size"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"`federated.distill.{key}` must be positive; got {getattr(self, key)}.")


@dataclass
class FederatedConfig:
    rounds: int = field(default=5, metadata={"help": "Server rounds."})
    task: str = field(default="default", metadata={"help": "What clients compute: default, or a task another package registers in the `fedhar.tasks` entry points (continual)."})
    partition: Partition = field(default="subject", metadata={"help": f"Client = one natural unit or a synthetic split: {', '.join(get_args(Partition))}."})
    num_clients: int | None = field(default=None, metadata={"help": "Clients for iid/dirichlet partitions (natural partitions: one per unit)."})
    dirichlet_alpha: float = field(default=0.5, metadata={"help": "Label-skew concentration for `dirichlet`."})
    local_epochs: int = field(default=1, metadata={"help": "Local epochs per round on each client."})
    local_test_fraction: float = field(default=0.2, metadata={"help": "Share of each client's windows kept for federated evaluation."})
    fraction_train: float = field(default=1.0, metadata={"help": "Fraction of clients sampled for training each round."})
    fraction_evaluate: float = field(default=1.0, metadata={"help": "Fraction of clients sampled for federated evaluation."})
    min_train_clients: int = field(default=2, metadata={"help": "Fewest clients a training round needs."})
    min_evaluate_clients: int = field(default=2, metadata={"help": "Fewest clients a federated evaluation needs."})
    min_available_clients: int = field(default=2, metadata={"help": "Fewest connected clients before a round starts."})
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    client_cpus: float = field(default=1.0, metadata={"help": "CPUs per simulated client (Ray actor)."})
    backend_cpus: int = field(default=2, metadata={"help": "CPUs Ray may use in total."})
    faults: FaultConfig = field(default_factory=FaultConfig)
    personal_parts: list[Part] = field(default_factory=list, metadata={"help": "Parts each client keeps and never sends, e.g. [head] for FedPer: it trains them locally and evaluates with them."})
    state_dir: str | None = field(default=None, metadata={"help": "Where clients keep their personal parts (default: <run>/clients)."})
    local_split: Literal["random", "chronological"] = field(default="random", metadata={"help": "How a client holds out its local test windows: random, or chronological (its last days, by the `day` column of event data)."})
    distill: ServerDistillConfig = field(default_factory=ServerDistillConfig, metadata={"help": "FedDF server-side distillation."})

    def __post_init__(self) -> None:
        if self.rounds <= 0:
            raise ConfigError(f"`federated.rounds` must be positive; got {self.rounds}.")
        for key in ("fraction_train", "fraction_evaluate"):
            if not 0 < getattr(self, key) <= 1:
                raise ConfigError(f"`federated.{key}` must be in (0, 1]; got {getattr(self, key)}.")
        if not 0 <= self.local_test_fraction < 1:
            raise ConfigError(f"`federated.local_test_fraction` must be in [0, 1); got {self.local_test_fraction}.")
        if self.partition in ("iid", "dirichlet") and not self.num_clients:
            raise ConfigError(f"`federated.num_clients` is required for the `{self.partition}` partition.")
