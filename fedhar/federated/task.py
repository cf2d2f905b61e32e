"""The pure federated task: what a client and the server compute, with no Flower types.

One :class:`FederatedTask` per process and configuration (see :func:`get_task`): the frozen
backbone is loaded once and every virtual client served by that process reuses it, loading only
the small trainable state it receives. ``federated.task`` picks the class (:func:`task_class`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import replace
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from fedhar.config import ExperimentConfig, config_to_dict
from fedhar.data.sources import load_splits
from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.partition import chronological_local_split, local_split, partition_indices
from fedhar.federated.personal import load_personal, personal_keys, save_personal
from fedhar.federated.seeds import derive_seed
from fedhar.federated.tiered import Fleet, state_bytes
from fedhar.federated.tiers import Stopwatch
from fedhar.models import build_model
from fedhar.models.checkpoint import save_model
from fedhar.models.har_model import HARModel
from fedhar.training.config import TrainConfig
from fedhar.training.loop import Penalty, evaluate, fit

State = "OrderedDict[str, torch.Tensor]"
TASK_GROUP = "fedhar.tasks"


class InjectedFault(RuntimeError):
    """Raised by a client told to fail through ``federated.faults`` (tests only)."""


class FederatedTask:
    _flip_seed: int | None = None
    """Set by :meth:`train_client` while a label-flipping attacker trains (read by :meth:`fit_local`)."""

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._client_data: dict[int, tuple[WindowDataset, WindowDataset]] = {}
        self._tier_models: dict[tuple[int, int], HARModel] = {}

    # ------------------------------------------------------------------ data
    @cached_property
    def splits(self) -> tuple[WindowDataset, WindowDataset]:
        """(federated training pool, central held-out test set)."""
        return load_splits(self.cfg.data, self.cfg.seed)

    @cached_property
    def partitions(self) -> list[np.ndarray]:
        return partition_indices(self.splits[0], self.cfg.federated, self.cfg.seed)

    @property
    def num_clients(self) -> int:
        return len(self.partitions)

    def client_data(self, pid: int) -> tuple[WindowDataset, WindowDataset]:
        """Client ``pid``'s local (train, test) windows, cut once per process and reused each round."""
        if not 0 <= pid < self.num_clients:
            raise FederationError(f"partition-id {pid} is out of range: this configuration has {self.num_clients} clients.")
        if pid not in self._client_data:
            local = self.splits[0].subset(self.partitions[pid])
            if self.cfg.federated.local_split == "chronological":
                tr, te = chronological_local_split(local, self.cfg.federated.local_test_fraction)
            else:
                tr, te = local_split(len(local), self.cfg.federated.local_test_fraction, derive_seed(self.cfg.seed, pid, "split"))
            self._client_data[pid] = (local.subset(tr), local.subset(te))
        return self._client_data[pid]

    # ----------------------------------------------------------------- model
    @cached_property
    def model(self) -> HARModel:
        return self._build(self.cfg.model)

    def _build(self, model_cfg) -> HARModel:
        train = self.splits[0]
        return build_model(model_cfg, train.channels, train.window_length, train.classes, self.cfg.seed,
                           vocab_ids=train.X if self.cfg.model.text.trim_vocab else None, rate_hz=train.rate_hz,
                           units=train.units)

    def initial_state(self) -> State:
        state = self.model.trainable_state()
        return self.fleet.initial(state) if self.fleet is not None else state

    # ------------------------------------------------------- device tiers
    @cached_property
    def fleet(self) -> Fleet | None:
        """Each client's device tier (``federated.tiers``); None: every client runs :attr:`model`."""
        if not self.cfg.federated.tiers:
            return None
        return Fleet.of(self.cfg.federated, self.cfg.model.backbone.lora.r, self.num_clients, self.cfg.seed)

    def client_model(self, pid: int) -> HARModel:
        """The model client ``pid`` trains: :attr:`model`, or its tier's (the tier's LoRA rank on the
        first ``blocks`` backbone blocks), built once per process and tier shape."""
        if self.fleet is None:
            return self.model
        t = self.fleet.tier(pid)
        if (t.rank, t.blocks) not in self._tier_models:
            b = self.cfg.model.backbone
            model = self._build(replace(self.cfg.model, backbone=replace(b, layers=t.blocks, lora=replace(b.lora, r=t.rank))))
            model.freeze(self.fleet.frozen_keys(list(model.state_keys)))
            self._tier_models[t.rank, t.blocks] = model
        return self._tier_models[t.rank, t.blocks]

    def _load_client(self, model: HARModel, state: dict, pid: int, where: str) -> None:
        """Load what client ``pid`` received into its model (under ``shared_a`` with the seeded A added)."""
        if self.fleet is not None:
            state = self.fleet.complete(state, model.trainable_state())
        model.load_trainable_state(state, where=where)

    def _device_metrics(self, pid: int, compute_s: float, reply: State) -> dict:
        """What the server's simulated clock needs of a tiered client: compute seconds on this
        machine, upload bytes and the tier (its index in ``federated.tiers``); nothing without tiers."""
        if self.fleet is None:
            return {}
        return {"compute-seconds": compute_s, "upload-bytes": state_bytes(reply), "tier-index": self.fleet.index(pid)}

    # --------------------------------------------------- personal parts (FedPer)
    @cached_property
    def personal_keys(self) -> list[str]:
        return personal_keys(self.model.state_keys, self.cfg.federated.personal_parts)

    def personal_path(self, pid: int) -> Path:
        if not self.cfg.federated.state_dir:
            raise FederationError("`federated.personal_parts` needs `federated.state_dir` (run_federated sets <run>/clients).")
        return Path(self.cfg.federated.state_dir) / f"client_{pid:04d}" / "personal.safetensors"

    def _with_personal(self, state: dict, pid: int) -> dict:
        """``state`` with this client's own personal entries in place of the global ones."""
        if not self.personal_keys:
            return state
        mine = load_personal(self.personal_path(pid))
        return {**state, **{k: mine[k] for k in self.personal_keys}} if mine is not None else state

    def local_stats(self, pid: int) -> dict[str, np.ndarray]:
        """Per-channel count, sum and sum of squares: pooled exactly by the server into the
        global normaliser without any client sharing its windows."""
        X = self.client_data(pid)[0].X.astype(np.float64)
        return {"count": np.array([X.shape[0] * X.shape[2]], dtype=np.float64),
                "sum": X.sum(axis=(0, 2)), "sumsq": (X**2).sum(axis=(0, 2))}

    # ------------------------------------------------------------ client work
    def train_client(self, state: dict, pid: int, server_round: int, proximal_mu: float = 0.0) -> tuple[State, dict, int]:
        """One round on client ``pid`` from the global ``state``: every federated option (faults,
        personal parts, FedProx, ``federated.attack``) is applied here, around :meth:`local_round`,
        which a subclass (a continual client) overrides; returns (state, metrics, windows trained on).
        The metrics say whether this client attacked (``attacker``: 1.0 or 0.0)."""
        from fedhar.federated import attacks  # it imports this module

        faults = self.cfg.federated.faults
        fault = faults.mode if pid in faults.clients and (not faults.rounds or server_round in faults.rounds) else None
        if fault == "raise":
            raise InjectedFault(f"injected fault: client {pid} fails in round {server_round}")
        attack = self.cfg.federated.attack
        attacking = pid in attacks.attackers(self.cfg.federated, self.cfg.seed, self.num_clients, server_round)
        with self._lock:  # one model per process (per tier); virtual clients in a process take turns
            model = self.client_model(pid)
            self._load_client(model, self._with_personal(state, pid), pid, f"global state (round {server_round})")
            # label_flip poisons whatever local_round trains on (fit_local reads this), even in a subclass
            self._flip_seed = derive_seed(self.cfg.seed, "label_flip") if attacking and attack.kind == "label_flip" else None
            try:
                with Stopwatch() as watch:
                    metrics, n = self.local_round(model, pid, server_round, proximal_mu)
            finally:
                self._flip_seed = None
            new_state = model.trainable_state()
            if self.fleet is not None:
                new_state = self.fleet.reply(new_state)
        if self.personal_keys:
            # The personal parts stay on the client; the reply carries the global values back unchanged.
            save_personal(self.personal_path(pid), {k: new_state[k] for k in self.personal_keys})
            for k in self.personal_keys:
                new_state[k] = torch.as_tensor(np.asarray(state[k])).clone()
        if attacking and attack.kind in attacks.UPDATE_ATTACKS:
            new_state = attacks.poison_update(attack.kind, state, new_state, attack.scale,
                                              derive_seed(self.cfg.seed, pid, server_round, "attack"))
        metrics = {**metrics, "attacker": 1.0 if attacking else 0.0, **self._device_metrics(pid, watch.seconds, new_state)}
        first = next(iter(new_state))
        if fault == "nan":
            new_state[first] = torch.full_like(new_state[first], float("nan"))
        elif fault == "shape":
            new_state[first] = torch.zeros(*new_state[first].shape, 2)
        return new_state, metrics, n

    def local_round(self, model: HARModel, pid: int, server_round: int, proximal_mu: float) -> tuple[dict, int]:
        """Train the loaded ``model`` on the client's windows; returns (metrics, windows)."""
        train, _ = self.client_data(pid)
        history = self.fit_local(model, train, pid, server_round, proximal_mu)
        return {"train_loss": history[-1]["train_loss"]}, len(train)

    @cached_property
    def local_cfg(self) -> TrainConfig:
        """``train`` with ``federated.local_epochs`` epochs and no progress bars: one round's training."""
        return replace(self.cfg.train, epochs=self.cfg.federated.local_epochs, progress=False)

    def fit_local(self, model: HARModel, train: WindowDataset, pid: int, server_round: int, proximal_mu: float,
                  penalties: Sequence[Penalty] = ()) -> list[dict]:
        """:func:`fit` with the round's seed, plus FedProx's proximal term when ``proximal_mu > 0``;
        on a label-flipping attacker's round (see :meth:`train_client`), on a flipped copy of ``train``."""
        if self._flip_seed is not None:
            from fedhar.federated.attacks import flip_labels

            train = train.replace(y=flip_labels(train.y, train.num_classes, self._flip_seed))
        penalties = list(penalties)
        if proximal_mu > 0:
            anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

            def proximal(m: torch.nn.Module) -> torch.Tensor:
                return 0.5 * proximal_mu * sum(((p - anchor[n]) ** 2).sum() for n, p in m.named_parameters() if n in anchor)

            penalties.append(proximal)
        return fit(model, train, self.round_cfg(server_round), seed=derive_seed(self.cfg.seed, pid, server_round),
                   penalties=penalties, desc=f"client {pid}")

    def round_cfg(self, server_round: int) -> TrainConfig:
        """:attr:`local_cfg` with round ``server_round``'s learning rate (``federated.round_lr``)."""
        return replace(self.local_cfg, lr=self.local_cfg.lr * round_lr_factor(self.cfg.federated, server_round))

    def evaluate_state(self, state: dict, data: WindowDataset, where: str = "state") -> dict:
        with self._lock:
            self.model.load_trainable_state(state, where=where)
            return evaluate(self.model, data, self.cfg.train)

    def evaluate_client(self, state: dict, pid: int) -> tuple[dict, int]:
        """Client ``pid``'s model on its local test windows: the global model, or under tiers its
        tier's model on the slice it received."""
        _, test = self.client_data(pid)
        if len(test) == 0:
            return {"accuracy": float("nan"), "macro_f1": float("nan"), "loss": float("nan")}, 0
        state, where = self._with_personal(state, pid), f"global state for client {pid}"
        if self.fleet is None:
            return self.evaluate_state(state, test, where), len(test)
        with self._lock:
            model = self.client_model(pid)
            self._load_client(model, state, pid, where)
            return evaluate(model, test, self.cfg.train), len(test)

    def evaluate_central(self, state: dict) -> dict:
        """The global model on the held-out test split (under ``tier_parts: per_depth`` with the
        deepest tiers' frontend and head)."""
        if self.fleet is not None:
            state = self.fleet.central(state)
        return self.evaluate_state(state, self.splits[1], "global state")

    def save_global_model(self, state: dict, folder: Path) -> Path:
        """``state`` saved as a central run saves its model (``model/``: trainable state with its
        backbone, classes and channels, plus the LoRA adapter), so a federated run's model loads alike.
        Under ``tier_parts: per_depth`` the shallower depths' frontends and heads go beside it in
        ``tier_parts.safetensors`` (keys ``tier_depth_<blocks>.<key>``)."""
        parts = self.fleet.depth_parts(state) if self.fleet is not None else {}
        with self._lock:
            self.model.load_trainable_state(self.fleet.central(state) if parts else state, where="final global state")
            save_model(self.model, folder)
        if parts:
            save_file({k: torch.as_tensor(v).contiguous() for k, v in parts.items()}, str(Path(folder) / "tier_parts.safetensors"))
        return Path(folder)


_TASKS: dict[str, FederatedTask] = {}
_TASKS_LOCK = threading.Lock()


def round_lr_factor(fcfg, server_round: int) -> float:
    """Share of ``train.lr`` clients use in round ``server_round`` (1-based) under ``fcfg.round_lr``:
    1 throughout for ``constant``; for ``cosine``, 1 in round 1 falling to ``round_lr_floor`` in the last."""
    if fcfg.round_lr == "constant" or fcfg.rounds <= 1:
        return 1.0
    progress = min(1.0, max(0.0, (server_round - 1) / (fcfg.rounds - 1)))
    return fcfg.round_lr_floor + (1.0 - fcfg.round_lr_floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def task_class(name: str) -> type[FederatedTask]:
    """The task named by ``federated.task``: ``default``, or one another package declares in the
    ``fedhar.tasks`` entry-point group (``continual``), so that the federated layer knows no
    higher layer and Ray workers and SuperNodes, which import only the client app, find it too."""
    found = {ep.name: ep for ep in entry_points(group=TASK_GROUP)}
    if name != "default" and name not in found:
        raise ConfigError(f"Unknown federated task `{name}` (in `federated.task`). "
                          f"Valid choices: {', '.join(sorted({'default', *found}))}.")
    return FederatedTask if name == "default" else found[name].load()


def get_task(cfg: ExperimentConfig) -> FederatedTask:
    """The process-wide task for ``cfg`` (data and backbone loaded once per worker process)."""
    key = hashlib.sha256(yaml.safe_dump(config_to_dict(cfg), sort_keys=True).encode()).hexdigest()
    with _TASKS_LOCK:
        if key not in _TASKS:
            cls = task_class(cfg.federated.task)
            _TASKS.clear()  # a worker serves one run at a time; free the previous backbone
            _TASKS[key] = cls(cfg)
        return _TASKS[key]


def pooled_normaliser(stats: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact pooled per-channel mean/std from the clients' counts, sums and sums of squares."""
    n = sum(float(s["count"][0]) for s in stats)
    total = sum(s["sum"] for s in stats)
    total_sq = sum(s["sumsq"] for s in stats)
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 1e-12)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)
