"""Federated-run configuration: partitions, Flower strategy, client resources, fault injection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from fedhar.data.config import DataConfig
from fedhar.exceptions import ConfigError
from fedhar.models.config import Part

StrategyName = Literal["fedavg", "fedprox", "fedadam", "fedyogi", "fedavgm", "fedmedian", "fedtrimmedavg", "krum",
                       "multikrum", "bulyan"]
ROBUST_STRATEGIES = ("fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan")
PrivacyMode = Literal["none", "central_server", "central_client", "local"]
AttackKind = Literal["none", "label_flip", "sign_flip", "gaussian", "free_rider"]
Partition = Literal["subject", "device", "dataset", "dataset_subject", "iid", "dirichlet"]
LoraAggregation = Literal["auto", "zero_pad", "shared_a", "svd"]
TIERED_STRATEGIES = ("fedavg", "fedprox")
"""Strategies whose mean the tiered aggregation (``federated.lora_aggregation``) can stand in for."""


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
    trim_beta: float = field(default=0.2, metadata={"help": "FedTrimmedAvg: fraction cut from each end per coordinate, in [0, 0.5)."})
    num_malicious: int = field(default=0, metadata={"help": "Krum/MultiKrum/Bulyan: attackers f the rule must tolerate (Bulyan needs at least 4f+3 replies)."})
    num_to_select: int = field(default=0, metadata={"help": "MultiKrum: updates averaged after scoring (0: replies minus num_malicious)."})

    def __post_init__(self) -> None:
        if not 0 <= self.trim_beta < 0.5:
            raise ConfigError(f"`federated.strategy.trim_beta` must be in [0, 0.5); got {self.trim_beta}.")
        for key in ("num_malicious", "num_to_select"):
            if getattr(self, key) < 0:
                raise ConfigError(f"`federated.strategy.{key}` must be 0 or more; got {getattr(self, key)}.")


@dataclass
class PrivacyConfig:
    """Differential privacy with Flower's own wrappers and RDP accountant (``flwr[dp]``).

    ``central_server``: the server clips each update and adds Gaussian noise to the mean
    (``DifferentialPrivacyServerSideFixedClipping`` / ``...AdaptiveClipping``); ``central_client``:
    clients clip (``fixedclipping_mod`` / ``adaptiveclipping_mod``), the server adds the noise;
    ``local``: each client adds its own noise (``LocalDpMod``) and the server sees only noisy updates.
    """

    mode: PrivacyMode = field(default="none", metadata={"help": f"One of {', '.join(get_args(PrivacyMode))}."})
    noise_multiplier: float | None = field(default=None, metadata={"help": "Central DP: noise std over the clipping norm. Leave empty with `target_epsilon` to calibrate it for the run's rounds."})
    target_epsilon: float | None = field(default=None, metadata={"help": "Central DP with fixed clipping: the epsilon the whole run may spend; the noise multiplier is calibrated from it, the rounds and `delta`."})
    clipping: Literal["fixed", "adaptive"] = field(default="fixed", metadata={"help": "fixed (a set clipping norm; the accountant reports epsilon) or adaptive (the norm tracks a quantile of update norms; no accountant)."})
    clipping_norm: float = field(default=1.0, metadata={"help": "L2 norm every client update (difference to the global state) is clipped to; the initial norm when adaptive."})
    target_clipped_quantile: float = field(default=0.5, metadata={"help": "Adaptive clipping: share of updates meant to fall under the norm."})
    clip_norm_lr: float = field(default=0.2, metadata={"help": "Adaptive clipping: learning rate of the norm."})
    delta: float = field(default=1e-5, metadata={"help": "Delta of the (epsilon, delta) guarantee."})
    max_epsilon: float | None = field(default=None, metadata={"help": "Stop the run cleanly, results and checkpoint written, before a round would spend more than this epsilon."})
    local_epsilon: float = field(default=10.0, metadata={"help": "Local DP: epsilon of each client's release per round (LocalDpMod)."})
    local_sensitivity: float = field(default=1.0, metadata={"help": "Local DP: sensitivity of the clipped update (LocalDpMod)."})

    def __post_init__(self) -> None:
        if self.mode == "none":
            return
        for key in ("clipping_norm", "delta", "local_epsilon", "local_sensitivity", "clip_norm_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"`federated.privacy.{key}` must be positive; got {getattr(self, key)}.")
        if not 0 < self.delta < 1:
            raise ConfigError(f"`federated.privacy.delta` must be in (0, 1); got {self.delta}.")
        if self.mode != "local":
            if self.noise_multiplier is None and self.target_epsilon is None:
                raise ConfigError(f"`federated.privacy.mode: {self.mode}` needs `noise_multiplier` or `target_epsilon`.")
            if self.noise_multiplier is not None and self.target_epsilon is not None:
                raise ConfigError("`federated.privacy`: give `noise_multiplier` or `target_epsilon`, not both.")
            if self.noise_multiplier is not None and self.noise_multiplier < 0:
                raise ConfigError(f"`federated.privacy.noise_multiplier` must be 0 or more; got {self.noise_multiplier}.")
            if self.clipping == "adaptive" and (self.target_epsilon is not None or self.max_epsilon is not None):
                raise ConfigError("`federated.privacy.clipping: adaptive` has no accountant in Flower; `target_epsilon` "
                                  "and `max_epsilon` need `clipping: fixed`.")
        for key in ("target_epsilon", "max_epsilon"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError(f"`federated.privacy.{key}` must be positive; got {getattr(self, key)}.")


@dataclass
class AttackConfig:
    """Byzantine clients for robustness studies: a fraction of clients, drawn from the run seed,
    that attack in the given rounds. Each round's attackers are recorded in the results."""

    kind: AttackKind = field(default="none", metadata={"help": "label_flip (train on permuted labels), sign_flip (send global - scale x update), gaussian (send global + N(0, scale^2) noise), free_rider (send the global state back)."})
    fraction: float = field(default=0.0, metadata={"help": "Share of clients that attack, in [0, 1)."})
    scale: float = field(default=10.0, metadata={"help": "sign_flip: update multiplier; gaussian: noise std."})
    rounds: list[int] = field(default_factory=list, metadata={"help": "Rounds in which they attack (empty: all)."})
    resample: bool = field(default=False, metadata={"help": "Draw the attackers anew each round (default: the same clients throughout)."})

    def __post_init__(self) -> None:
        if not 0 <= self.fraction < 1:
            raise ConfigError(f"`federated.attack.fraction` must be in [0, 1); got {self.fraction}.")
        if self.kind != "none" and self.fraction == 0:
            raise ConfigError(f"`federated.attack.kind: {self.kind}` needs a positive `federated.attack.fraction`.")
        if self.scale <= 0:
            raise ConfigError(f"`federated.attack.scale` must be positive; got {self.scale}.")


@dataclass
class SecAggConfig:
    """Flower's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``): the server sees only the sum."""

    num_shares: float = field(default=1.0, metadata={"help": "Shares each client's secret is split into: a count, or a fraction (<= 1) of the clients."})
    reconstruction_threshold: float = field(default=0.67, metadata={"help": "Shares needed to rebuild a dropped client's mask: a count, or a fraction (<= 1) of num_shares."})
    clipping_range: float = field(default=8.0, metadata={"help": "Update values are clipped to +-this before quantisation."})
    quantization_range: int = field(default=4194304, metadata={"help": "Quantisation levels over the clipping range (finer: smaller error)."})
    max_weight: float = field(default=10000.0, metadata={"help": "Largest client weight (num-examples) the sum can carry."})


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
    split_units: bool = field(default=False, metadata={"help": "Natural partitions with `num_clients` above the number of units: cut each unit's windows, in recording order, into consecutive shards (shares proportional to its size), so every client still holds one person's data."})
    dirichlet_alpha: float = field(default=0.5, metadata={"help": "Label-skew concentration for `dirichlet`."})
    local_epochs: int = field(default=1, metadata={"help": "Local epochs per round on each client."})
    round_lr: Literal["constant", "cosine"] = field(default="constant", metadata={"help": "Clients' learning rate over the rounds: constant (`train.lr` every round), or cosine from `train.lr` in round 1 down to `round_lr_floor` x `train.lr` in the last round, so later rounds move the global model less and the federation settles."})
    round_lr_floor: float = field(default=0.1, metadata={"help": "`round_lr: cosine`: the last round's share of `train.lr`."})
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
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig, metadata={"help": "Differential privacy (central with server- or client-side clipping, or local) and its accountant."})
    attack: AttackConfig = field(default_factory=AttackConfig, metadata={"help": "Byzantine clients, for robustness studies."})
    secure_aggregation: Literal["none", "secaggplus"] = field(default="none", metadata={"help": "secaggplus: Flower's SecAgg+ workflow, so the server sees only the sum of the updates (Flower's legacy workflow path)."})
    secagg: SecAggConfig = field(default_factory=SecAggConfig, metadata={"help": "SecAgg+ parameters."})
    tiers: list[str | dict] = field(default_factory=list, metadata={"help": "Device tiers (heterogeneous devices): built-in names (flagship, budget_phone, watch) or mappings of tier fields (name, share or clients, rank, blocks, speed, uplink_mbps, availability, hours_on, stagger, dropout; `base: <built-in>` plus overrides). A client of a tier trains LoRA at the tier's rank on the first `blocks` backbone blocks. Empty: every client trains the whole model (homogeneous)."})
    lora_aggregation: LoraAggregation = field(default="auto", metadata={"help": f"With `tiers`: how LoRA updates of mixed ranks are averaged, one of {', '.join(get_args(LoraAggregation))}. zero_pad (HetLoRA: pad A and B to the largest rank, average each), shared_a (FFA-LoRA: one seeded frozen A, only B trains and travels; the exact mean of the updates), svd (FlexLoRA: average the products B A, refactor by truncated SVD); auto: shared_a when the tiers' ranks differ, else zero_pad (plain FedAvg of A and B, each block over the clients that run it)."})
    tier_parts: Literal["shared", "per_depth"] = field(default="shared", metadata={"help": "With `tiers`: the frontend, head and other tensors outside the backbone blocks are one set shared by every depth (`shared`), or one set per tier depth (`per_depth`: each set averaged over the clients that run that many blocks; the deepest tiers' set is the global model's)."})
    round_deadline_s: float | None = field(default=None, metadata={"help": "With `tiers`: simulated seconds a round waits for replies; later clients are stragglers (see `stragglers`). null: no deadline, a round lasts as long as its slowest client."})
    stragglers: Literal["drop", "stale"] = field(default="drop", metadata={"help": "With `round_deadline_s`: drop a straggler's update, or keep it for the first round open when it arrives, weighted 1 / (1 + rounds late)."})
    max_staleness: int | None = field(default=None, metadata={"help": "`stragglers: stale`: a late update that many rounds old or older is discarded (null: never)."})
    hours_per_round: float = field(default=1.0, metadata={"help": "With `tiers`: simulated hours between round starts, for `availability: daily` tiers."})
    target_macro_f1: float = field(default=0.85, metadata={"help": "With `tiers`: results.json reports the simulated seconds until the global model's held-out macro-F1 first reaches this."})

    def __post_init__(self) -> None:
        if self.rounds <= 0:
            raise ConfigError(f"`federated.rounds` must be positive; got {self.rounds}.")
        if not 0.0 < self.round_lr_floor <= 1.0:
            raise ConfigError(f"`federated.round_lr_floor` must be in (0, 1]; got {self.round_lr_floor}.")
        for key in ("fraction_train", "fraction_evaluate"):
            if not 0 < getattr(self, key) <= 1:
                raise ConfigError(f"`federated.{key}` must be in (0, 1]; got {getattr(self, key)}.")
        if not 0 <= self.local_test_fraction < 1:
            raise ConfigError(f"`federated.local_test_fraction` must be in [0, 1); got {self.local_test_fraction}.")
        if self.partition in ("iid", "dirichlet") and not self.num_clients:
            raise ConfigError(f"`federated.num_clients` is required for the `{self.partition}` partition.")
        self._check_devices()
        # Combinations `federated.privacy` cannot give its guarantee with, refused with the reason
        # (privacy with SecAgg+ is refused by fedhar.federated.secagg.check_secagg before a run starts).
        p = self.privacy
        if p.mode == "local":
            for key in ("noise_multiplier", "target_epsilon", "max_epsilon"):
                if getattr(p, key) is not None:
                    raise ConfigError(f"`federated.privacy.{key}` applies to the central modes; `mode: local` noises on "
                                      "each client with `local_epsilon` / `local_sensitivity`, and no accountant composes "
                                      "local releases over rounds.")
            if p.clipping == "adaptive":
                raise ConfigError("`federated.privacy.clipping: adaptive` applies to the central modes; LocalDpMod "
                                  "clips every update to the fixed `clipping_norm`.")
        if p.mode in ("central_server", "central_client"):
            if self.strategy.name not in ("fedavg", "fedprox"):
                raise ConfigError(f"`federated.strategy.name: {self.strategy.name}` cannot run with `federated.privacy."
                                  f"mode: {p.mode}`: Flower's DP wrappers add the noise to what the inner strategy "
                                  "returns, which is the Gaussian mechanism (and what Flower's accountant requires: "
                                  "FedAvg's unmodified aggregate_train) only for the plain mean of the clipped updates; "
                                  "use fedavg or fedprox (server optimisers and robust rules transform the mean first).")
            accounted = p.clipping == "fixed" and (p.target_epsilon is not None or (p.noise_multiplier or 0) > 0)
            if p.max_epsilon is not None and not accounted:
                raise ConfigError("`federated.privacy.max_epsilon` needs a positive `noise_multiplier` (or "
                                  "`target_epsilon`): Flower's accountant counts only noised releases.")
            if self.distill.enabled and self.distill.source == "ensemble":
                raise ConfigError(f"`federated.distill.source: ensemble` cannot run with `federated.privacy.mode: "
                                  f"{p.mode}`: the server would distil from each client's un-noised model; "
                                  "`source: teacher` (post-processing of the private global model) can.")

    # ----------------------------------------------------------------- device tiers
    def tier_configs(self) -> list:
        """The parsed ``tiers`` (:class:`~fedhar.federated.tiers.TierConfig`); empty: homogeneous."""
        from fedhar.federated.tiers import parse_tiers  # numpy; only a config with tiers needs it

        return parse_tiers(self.tiers) if self.tiers else []

    def lora_rule(self) -> str | None:
        """The aggregation rule the tiers run (``auto`` resolved), None without tiers."""
        if not self.tiers:
            return None
        if self.lora_aggregation != "auto":
            return self.lora_aggregation
        return "shared_a" if len({t.rank for t in self.tier_configs()}) > 1 else "zero_pad"

    def _check_devices(self) -> None:
        """Tier keys are valid; those that apply only with tiers are not set without them (they
        would be ignored); and options the tiered aggregation is not wired into are refused."""
        if self.round_deadline_s is not None and not self.round_deadline_s > 0:
            raise ConfigError(f"`federated.round_deadline_s` must be positive or null; got {self.round_deadline_s}.")
        if self.max_staleness is not None and self.max_staleness < 1:
            raise ConfigError(f"`federated.max_staleness` must be at least 1 or null; got {self.max_staleness}.")
        if not self.hours_per_round > 0:
            raise ConfigError(f"`federated.hours_per_round` must be positive; got {self.hours_per_round}.")
        if not 0 < self.target_macro_f1 <= 1:
            raise ConfigError(f"`federated.target_macro_f1` must be in (0, 1]; got {self.target_macro_f1}.")
        if not self.tiers:
            default = FederatedConfig.__dataclass_fields__
            unused = [k for k in ("lora_aggregation", "tier_parts", "round_deadline_s", "stragglers", "max_staleness", "hours_per_round")
                      if getattr(self, k) != default[k].default]
            if unused:
                raise ConfigError(f"{', '.join(f'`federated.{k}`' for k in unused)} applies to heterogeneous devices; "
                                  "set `federated.tiers` too, or drop it.")
            return
        self.tier_configs()  # the parser's errors name `federated.tiers[i].<field>`
        if self.stragglers == "stale" and self.round_deadline_s is None:
            raise ConfigError("`federated.stragglers: stale` needs `federated.round_deadline_s`: without a deadline no "
                              "client is late.")
        why = {
            "secure_aggregation": (self.secure_aggregation != "none", "SecAgg+ sums fixed-shape updates in Flower's "
                                   "legacy workflow, and tiered clients send slices of different shapes"),
            "privacy.mode": (self.privacy.mode != "none", "Flower's DP wrappers clip and noise FedAvg's mean of "
                             "fixed-shape updates, not the tiered aggregation"),
            "strategy.name": (self.strategy.name not in TIERED_STRATEGIES, "the tiered aggregation stands in for "
                              f"FedAvg's mean; use {' or '.join(TIERED_STRATEGIES)}"),
            "attack.kind": (self.attack.kind != "none", "attacks are not wired into tiered clients"),
            "distill.enabled": (self.distill.enabled, "server distillation reads full-shape client states"),
            "personal_parts": (bool(self.personal_parts), "personal parts are not wired into tiered clients"),
            "task": (self.task != "default", "only the default task builds per-tier models"),
        }
        for key, (bad, reason) in why.items():
            if bad:
                raise ConfigError(f"`federated.{key}: {_get(self, key)}` "
                                  f"cannot run with `federated.tiers`: {reason}.")


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class RobustnessConfig:
    """The ``robustness:`` section of ``fedhar study robustness``: final macro-F1 of federated runs
    against the fraction of attackers, per aggregation rule and attack, and against the privacy
    budget epsilon, each point one run per seed of ``seeds``."""

    aggregators: list[dict] = field(default_factory=lambda: [{"label": "FedAvg", "set": {"federated.strategy.name": "fedavg"}}],
                                    metadata={"help": "Aggregation rules compared: {label, set: {dotted key: value}} (e.g. {label: Krum, set: {federated.strategy.name: krum, federated.strategy.num_malicious: 4}})."})
    attacks: list[AttackKind] = field(default_factory=lambda: ["sign_flip"], metadata={"help": "Attacks, each swept over `fractions` (with `federated.attack.scale`, `rounds`)."})
    fractions: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3], metadata={"help": "Shares of attacking clients; 0 is the clean run of each rule, run once and shared by every attack."})
    epsilons: list[float | None] = field(default_factory=list, metadata={"help": "Privacy panel: target epsilon of the whole run (null: no privacy); empty: no privacy panel."})
    privacy_set: dict = field(default_factory=lambda: {"federated.privacy.mode": "central_server"},
                              metadata={"help": "Config changes of the privacy panel (e.g. more clients: federated.num_clients, federated.split_units); each point adds `federated.privacy.target_epsilon`."})
    privacy_label: str = field(default="FedAvg + central DP", metadata={"help": "Name of the privacy panel's rows."})

    def __post_init__(self) -> None:
        check_labelled(self.aggregators, "robustness.aggregators")
        if "none" in self.attacks:
            raise ConfigError("`robustness.attacks` lists attacks; the clean run is the fraction 0.")
        for f in self.fractions:
            if not 0 <= f < 1:
                raise ConfigError(f"`robustness.fractions` must be in [0, 1); got {f}.")
        for e in self.epsilons:
            if e is not None and e <= 0:
                raise ConfigError(f"`robustness.epsilons` must be positive (or null for no privacy); got {e}.")


def check_labelled(items: list, where: str) -> list[str]:
    """Each item ``{label: ..., set: {dotted key: value}}`` with a distinct label; the labels."""
    for i, v in enumerate(items):
        extra = sorted(set(v) - {"label", "set"}) if isinstance(v, dict) else []
        if not isinstance(v, dict) or not v.get("label") or not isinstance(v.get("set", {}), dict) or extra:
            why = f" (unknown key {', '.join(f'`{k}`' for k in extra)})" if extra else ""
            raise ConfigError(f"`{where}[{i}]` must be {{label: ..., set: {{key: value}}}}{why}; got {v!r}.")
    labels = [v["label"] for v in items]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"`{where}` need distinct labels; got {labels}.")
    return labels


@dataclass
class DevicesConfig:
    """The ``devices:`` section of ``fedhar study devices``: federated runs of fleets of devices
    (each setup a set of config changes, usually ``federated.tiers`` and ``federated.lora_aggregation``),
    each one run per seed of ``seeds``, compared on global and per-tier macro-F1, bytes and simulated time."""

    setups: list[dict] = field(default_factory=list, metadata={"help": "Fleets compared: {label, set: {dotted key: value}} (e.g. {label: mixed svd, set: {federated.tiers: [flagship, budget_phone, watch], federated.lora_aggregation: svd}})."})
    homogeneous: str | None = field(default=None, metadata={"help": "Label of the homogeneous setup the mixed fleets are held against (>= `keep` x its global macro-F1)."})
    mixed: list[str] = field(default_factory=list, metadata={"help": "Labels of the mixed-fleet setups (one per aggregation rule); the best by mean global macro-F1 is compared."})
    capable: str | None = field(default=None, metadata={"help": "Label of the setup where only the capable clients train; the best mixed setup is compared with it on the `weak_tiers`' data, paired over seeds."})
    weak_tiers: list[str] = field(default_factory=lambda: ["budget_phone", "watch"], metadata={"help": "Tiers whose clients' data the capable-only comparison reads."})
    keep: float = field(default=0.97, metadata={"help": "Share of the homogeneous fleet's global macro-F1 the best mixed fleet should reach."})

    def __post_init__(self) -> None:
        labels = check_labelled(self.setups, "devices.setups")
        for key in ("homogeneous", "capable"):
            if getattr(self, key) is not None and getattr(self, key) not in labels:
                raise ConfigError(f"`devices.{key}` is `{getattr(self, key)}`, which is no label of `devices.setups` ({labels}).")
        for m in self.mixed:
            if m not in labels:
                raise ConfigError(f"`devices.mixed` lists `{m}`, which is no label of `devices.setups` ({labels}).")
        if not 0 < self.keep <= 1:
            raise ConfigError(f"`devices.keep` must be in (0, 1]; got {self.keep}.")
