"""Federated-run configuration: partitions, Flower strategy, client resources, fault injection."""

from __future__ import annotations

from dataclasses import dataclass, field

from fedhar.exceptions import ConfigError

STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi", "fedavgm")
PARTITIONS = ("subject", "device", "dataset", "dataset_subject", "iid", "dirichlet")


@dataclass
class StrategyConfig:
    """A Flower strategy from ``flwr.serverapp.strategy`` and its hyperparameters."""

    name: str = field(default="fedavg", metadata={"help": f"One of {', '.join(STRATEGIES)}."})
    proximal_mu: float = field(default=0.01, metadata={"help": "FedProx proximal weight (applied client-side)."})
    server_lr: float = field(default=0.01, metadata={"help": "FedAdam/FedYogi server learning rate (eta); FedAvgM server lr."})
    server_momentum: float = field(default=0.9, metadata={"help": "FedAvgM server momentum."})
    beta_1: float = field(default=0.9, metadata={"help": "FedAdam/FedYogi first-moment decay."})
    beta_2: float = field(default=0.99, metadata={"help": "FedAdam/FedYogi second-moment decay."})
    tau: float = field(default=1e-3, metadata={"help": "FedAdam/FedYogi adaptivity (epsilon)."})

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ConfigError(f"`federated.strategy.name` must be one of {', '.join(STRATEGIES)}; got {self.name!r}.")


@dataclass
class FaultConfig:
    """Test-only fault injection, to prove bad updates never reach the global model."""

    clients: list[int] = field(default_factory=list, metadata={"help": "Partition ids that misbehave."})
    rounds: list[int] = field(default_factory=list, metadata={"help": "Rounds in which they misbehave (empty: all)."})
    mode: str = field(default="raise", metadata={"help": "raise, nan (non-finite update) or shape (wrong-shape update)."})

    def __post_init__(self) -> None:
        if self.mode not in ("raise", "nan", "shape"):
            raise ConfigError(f"`federated.faults.mode` must be raise, nan or shape; got {self.mode!r}.")


@dataclass
class FederatedConfig:
    rounds: int = field(default=5, metadata={"help": "Server rounds."})
    partition: str = field(default="subject", metadata={"help": f"Client = one natural unit or a synthetic split: {', '.join(PARTITIONS)}."})
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
    personal_parts: list[str] = field(default_factory=list, metadata={"help": "Parts each client keeps and never sends, e.g. [head] for FedPer: it trains them locally and evaluates with them."})
    state_dir: str | None = field(default=None, metadata={"help": "Where clients keep their personal parts (default: <run>/clients)."})

    def __post_init__(self) -> None:
        if self.rounds <= 0:
            raise ConfigError(f"`federated.rounds` must be positive; got {self.rounds}.")
        if self.partition not in PARTITIONS:
            raise ConfigError(f"`federated.partition` must be one of {', '.join(PARTITIONS)}; got {self.partition!r}.")
        for key in ("fraction_train", "fraction_evaluate"):
            if not 0 < getattr(self, key) <= 1:
                raise ConfigError(f"`federated.{key}` must be in (0, 1]; got {getattr(self, key)}.")
        if not 0 <= self.local_test_fraction < 1:
            raise ConfigError(f"`federated.local_test_fraction` must be in [0, 1); got {self.local_test_fraction}.")
        from fedhar.models.config import PARTS

        bad = [p for p in self.personal_parts if p not in PARTS]
        if bad:
            raise ConfigError(f"`federated.personal_parts` must name some of {', '.join(PARTS)}; got {bad}.")
        if self.partition in ("iid", "dirichlet") and not self.num_clients:
            raise ConfigError(f"`federated.num_clients` is required for the `{self.partition}` partition.")
