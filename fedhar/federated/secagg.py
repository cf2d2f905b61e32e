"""Secure aggregation (``federated.secure_aggregation: secaggplus``) on Flower's SecAgg+ workflow.

Flower 1.41 ships SecAgg+ only on its legacy path: ``SecAggPlusWorkflow`` runs inside a
``DefaultWorkflow`` with a ``LegacyContext`` and a legacy ``flwr.server.strategy.FedAvg``, and the
clients are a ``NumPyClient`` ``ClientApp`` behind ``secaggplus_mod``. This module is that path for
``fedhar simulate``: the clients train exactly as on the Message-API path
(:meth:`~fedhar.federated.task.FederatedTask.train_client`), and each sends its *update* (trained
state minus the global state, as arrays in the order of the task's ``initial_state()`` keys), which
the protocol masks so that the server only learns the weighted mean. The server adds that mean
to the global state, then does fedhar's per-round work: central evaluation, a checkpoint and
``results.json``.

The weights (``num-examples``), the clients' training loss and their evaluation metrics still
travel in clear, as on Flower's own path. The aggregate equals FedAvg's up to SecAgg+'s
quantisation (:func:`secagg_vs_fedavg`, :func:`error_bound`).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import yaml
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import (GetPropertiesIns, Parameters, bytes_to_ndarray, ndarray_to_bytes, ndarrays_to_parameters,
                         parameters_to_ndarrays)
from flwr.common.constant import MessageTypeLegacy
from flwr.common.secure_aggregation.ndarrays_arithmetic import (factor_combine, factor_extract, parameters_addition,
                                                                parameters_mod, parameters_multiply)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig, SimpleClientManager
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.default_workflows import default_evaluate_workflow
from flwr.serverapp import Grid, ServerApp

from fedhar.config import ExperimentConfig, build_config
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.checkpoint import load_checkpoint, save_checkpoint
from fedhar.federated.client_app import CONFIG_KEY, config_record
from fedhar.federated.config import ROBUST_STRATEGIES, FederatedConfig, SecAggConfig
from fedhar.federated.results import write_federated_results
from fedhar.federated.strategy import RoundRecorder, min_client_warnings, min_clients, sampled_clients
from fedhar.federated.task import FederatedTask, derive_seed, get_task, pooled_normaliser
from fedhar.reporting import write_json

log = logging.getLogger(__name__)

MODULUS_RANGE = 2**32
"""Flower's default mask modulus; every quantised sum must stay below it."""
SUPPORTED_STRATEGIES = ("fedavg", "fedprox")
PATH = ("Flower's legacy workflow path: ServerApp main -> LegacyContext(legacy FedAvg) -> "
        "DefaultWorkflow(fit_workflow=SecAggPlusWorkflow); NumPyClient ClientApp with secaggplus_mod")
IN_CLEAR = ["num-examples (the weights)", "train_loss", "count of clipped update values", "federated evaluation metrics",
            "partition-id"]


# --------------------------------------------------------------------------- config
def check_secagg(cfg: ExperimentConfig, engine: str = "simulation", task: FederatedTask | None = None) -> None:
    """Refuse what SecAgg+ cannot run, naming the key and why; with ``task``, also what depends on the
    clients (weights above ``max_weight``, sums that would wrap the modulus, a threshold no round meets)."""
    fcfg = cfg.federated
    if fcfg.secure_aggregation == "none":
        return
    sa, name = fcfg.secagg, fcfg.strategy.name
    if engine != "simulation":
        raise ConfigError(f"`federated.secure_aggregation: secaggplus` runs on the Simulation Engine only (Flower's "
                          f"legacy SecAgg+ workflow needs its own ServerApp/ClientApp pair); got --engine {engine}.")
    if name in ROBUST_STRATEGIES:
        raise ConfigError(f"`federated.strategy.name: {name}` cannot run with `federated.secure_aggregation: secaggplus`: "
                          "the server sees only the sum of the updates, so a rule that inspects each update "
                          "(median, trimming, Krum, Bulyan) has nothing to act on.")
    if name not in SUPPORTED_STRATEGIES:
        raise ConfigError(f"`federated.strategy.name: {name}` is not supported with `federated.secure_aggregation: "
                          f"secaggplus`; use {' or '.join(SUPPORTED_STRATEGIES)} (the SecAgg+ path aggregates with "
                          "FedAvg's weighted mean; server optimisers are not wired on it).")
    if fcfg.privacy.mode != "none":
        why = ("the server clips each client's update, which SecAgg+ hides from it"
               if fcfg.privacy.mode == "central_server" else
               "Flower's DP mods and wrappers are wired on the Message-API path only, not on the legacy SecAgg+ path")
        raise ConfigError(f"`federated.privacy.mode: {fcfg.privacy.mode}` cannot run with "
                          f"`federated.secure_aggregation: secaggplus`: {why}.")
    if fcfg.distill.enabled:
        raise ConfigError("`federated.distill.enabled` cannot run with `federated.secure_aggregation: secaggplus`: "
                          "ensemble distillation needs each client's model, which SecAgg+ hides from the server.")
    if fcfg.attack.kind != "none":
        raise ConfigError(f"`federated.attack.kind: {fcfg.attack.kind}` is not supported with "
                          "`federated.secure_aggregation: secaggplus`: attacks are injected and recorded on the "
                          "Message-API path only.")
    make_workflow(sa)  # parameter errors, as ConfigError
    if task is not None:
        check_clients(fcfg, [len(task.client_data(pid)[0]) for pid in range(task.num_clients)])


def _count_or_fraction(value: float, key: str) -> int | float:
    """Flower reads an int as a count and a float as a fraction; fedhar's config says ``<= 1`` is a fraction."""
    if value <= 0:
        raise ConfigError(f"`federated.secagg.{key}` must be positive; got {value}.")
    if value <= 1:
        return float(value)
    if float(value) != int(value):
        raise ConfigError(f"`federated.secagg.{key}` above 1 is a count and must be a whole number; got {value}.")
    return int(value)


def make_workflow(sa: SecAggConfig, timeout: float | None = None) -> SecAggPlusWorkflow:
    """Flower's ``SecAggPlusWorkflow`` for ``federated.secagg``; bad values raise ConfigError."""
    for key in ("clipping_range", "max_weight"):
        if getattr(sa, key) <= 0:
            raise ConfigError(f"`federated.secagg.{key}` must be positive; got {getattr(sa, key)}.")
    q = sa.quantization_range
    if float(q) != int(q) or not 1 < q < MODULUS_RANGE:
        raise ConfigError(f"`federated.secagg.quantization_range` must be a whole number in (1, 2^32); got {q}.")
    shares = _count_or_fraction(sa.num_shares, "num_shares")
    threshold = _count_or_fraction(sa.reconstruction_threshold, "reconstruction_threshold")
    try:
        return SecAggPlusWorkflow(shares, threshold, max_weight=float(sa.max_weight), clipping_range=float(sa.clipping_range),
                                  quantization_range=int(q), modulus_range=MODULUS_RANGE,
                                  timeout=getattr(sa, "timeout", timeout))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"`federated.secagg`: {exc} (num_shares {sa.num_shares}, "
                          f"reconstruction_threshold {sa.reconstruction_threshold}).") from None


@dataclass(frozen=True)
class ProtocolSizes:
    """What Flower's SecAgg+ setup stage derives for ``sampled`` clients (same rules as its code)."""

    sampled: int
    shares: int
    threshold: int
    neighbours: int

    @property
    def tolerated_dropouts(self) -> int:
        """Clients a round may lose after sharing keys and still be unmasked (negative: none can be)."""
        return self.neighbours - self.threshold


def protocol_sizes(sa: SecAggConfig, sampled: int) -> ProtocolSizes:
    wf = make_workflow(sa)
    ns, t = wf.num_shares, wf.reconstruction_threshold
    if isinstance(ns, float):
        shares = round(ns * sampled)
        if shares < sampled and shares % 2 == 0:
            shares += 1
        if shares <= 2:
            shares = sampled
    else:
        shares = ns
    threshold = max(round(t * shares), 2) if isinstance(t, float) else t
    if sampled != shares and shares % 2 == 0:
        shares += 1
    return ProtocolSizes(sampled, shares, threshold, min(2 * (shares >> 1) + 1, sampled))


def check_clients(fcfg: FederatedConfig, train_sizes: Sequence[int]) -> None:
    """What the clients' sizes rule out: a weight above ``max_weight``, a sum that wraps the modulus,
    a reconstruction threshold above what a round's neighbourhood can give."""
    sa, k = fcfg.secagg, sampled_clients(fcfg, len(train_sizes))
    if train_sizes and max(train_sizes) > sa.max_weight:
        raise ConfigError(f"`federated.secagg.max_weight` is {sa.max_weight:g} but a client trains on "
                          f"{max(train_sizes)} windows: raise it to at least {max(train_sizes)} (the largest weight "
                          "the masked sum can carry).")
    if k * int(sa.quantization_range) + 1 >= MODULUS_RANGE:
        raise ConfigError(f"`federated.secagg.quantization_range` {sa.quantization_range} x {k} clients per round "
                          "exceeds SecAgg+'s 2^32 modulus: the sum would wrap; lower the quantisation range.")
    if k < 2:
        raise ConfigError(f"`federated.secure_aggregation: secaggplus` needs at least 2 clients per round; a round samples {k}.")
    sizes = protocol_sizes(sa, k)
    if sizes.threshold > sizes.neighbours:
        raise ConfigError(f"`federated.secagg.reconstruction_threshold` gives {sizes.threshold} shares, but each of the "
                          f"{k} clients per round has only {sizes.neighbours} neighbours: no round could be unmasked.")


def max_weight_warning(sa: SecAggConfig, train_sizes: Sequence[int]) -> str | None:
    """A warning when ``max_weight`` is far above the largest client: SecAgg+ scales each update by
    num-examples / max_weight before quantising, so a loose bound costs precision."""
    if not train_sizes or sa.max_weight <= 10 * max(train_sizes):
        return None
    big = max(train_sizes)
    return (f"`federated.secagg.max_weight` {sa.max_weight:g} is {sa.max_weight / big:.0f}x the largest client ({big} "
            f"windows): SecAgg+'s mean may differ from FedAvg's by up to {error_bound(train_sizes, sa):.1e} per value; "
            f"set it near {big}.")


# --------------------------------------------------------------- quantisation error
def weighted_mean(client_arrays: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> list[np.ndarray]:
    """Plain FedAvg in float64: sum_i w_i x_i / sum_i w_i."""
    w = np.asarray(weights, dtype=np.float64)
    return [sum(wi * np.asarray(a[j], dtype=np.float64) for wi, a in zip(w, client_arrays)) / w.sum()
            for j in range(len(client_arrays[0]))]


def secagg_aggregate(client_arrays: Sequence[Sequence[np.ndarray]], weights: Sequence[float],
                     sa: SecAggConfig) -> list[np.ndarray]:
    """The mean the SecAgg+ server obtains for these updates, computed with Flower's own client and
    server arithmetic (weight factor, clipping, stochastic quantisation, sum modulo 2^32, dequantisation)
    minus the masks, which cancel exactly in the modular sum."""
    q, c = int(sa.quantization_range), float(sa.clipping_range)
    total: list[np.ndarray] | None = None
    for arrays, n in zip(client_arrays, weights):
        q_ratio = round(n / sa.max_weight * q)
        scaled = parameters_multiply([np.asarray(a, dtype=np.float64) for a in arrays], q_ratio / q)
        vec = factor_combine(q_ratio, [v.astype(np.int64) for v in quantize(scaled, c, q)])  # int64, as once masked
        total = vec if total is None else parameters_addition(total, vec)
    q_total, summed = factor_extract(parameters_mod(total, MODULUS_RANGE))
    out = dequantize(summed, c, q)
    offset = -(len(client_arrays) - 1) * c
    return [(v + offset) * (q / q_total) for v in out]


def error_bound(weights: Sequence[float], sa: SecAggConfig, max_abs: float = 0.0) -> float:
    """Worst-case per-value distance between SecAgg+'s mean and FedAvg's, for unclipped updates whose
    values are at most ``max_abs``: each client's stochastic rounding (under one quantum 2c/Q of its
    weighted update, summed, over the summed weight factors) plus the rounding of the weights themselves."""
    q, c = int(sa.quantization_range), float(sa.clipping_range)
    n = np.asarray(weights, dtype=np.float64)
    q_ratio = np.round(n / sa.max_weight * q)
    rounding = 2 * c * len(n) / q_ratio.sum()
    weight_shift = float(np.abs(q_ratio / q_ratio.sum() - n / n.sum()).sum())
    return float(rounding + max_abs * weight_shift)


def secagg_vs_fedavg(client_arrays: Sequence[Sequence[np.ndarray]], weights: Sequence[float], sa: SecAggConfig,
                     aggregate: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """Max absolute difference between a SecAgg+ mean (``aggregate``, or :func:`secagg_aggregate`'s)
    and the exact weighted mean, with :func:`error_bound` for comparison."""
    got = secagg_aggregate(client_arrays, weights, sa) if aggregate is None else aggregate
    exact = weighted_mean(client_arrays, weights)
    err = max(float(np.abs(np.asarray(g, dtype=np.float64) - e).max()) for g, e in zip(got, exact))
    max_abs = max(float(np.abs(np.asarray(a)).max()) for arrays in client_arrays for a in arrays)
    return {"max_abs_error": err, "bound": error_bound(weights, sa, max_abs)}


# --------------------------------------------------------------------------- client
@lru_cache(maxsize=4)
def _cfg(text: str) -> ExperimentConfig:
    return build_config(yaml.safe_load(text), source="server config")


def state_keys(task: FederatedTask) -> list[str]:
    """The order in which the trainable state travels as a list of arrays."""
    return list(task.initial_state())


def update_vector(global_arrays: Sequence[np.ndarray], new_state: dict, keys: Sequence[str]) -> list[np.ndarray]:
    """``new_state - global`` in key order; a non-finite or wrong-shaped update raises, so the client
    drops out of the round (SecAgg+ then unmasks the others) instead of poisoning a sum nobody can inspect."""
    out = []
    for k, g in zip(keys, global_arrays):
        new = np.asarray(new_state[k].detach().cpu().numpy() if torch.is_tensor(new_state[k]) else new_state[k])
        if new.shape != np.shape(g):
            raise FederationError(f"wrong shape for `{k}`: {new.shape} instead of {np.shape(g)}")
        delta = new.astype(np.float32) - np.asarray(g, dtype=np.float32)
        if not np.isfinite(delta).all():
            raise FederationError(f"non-finite values in `{k}`")
        out.append(delta)
    return out


class SecAggClient(NumPyClient):
    """fedhar's client task behind Flower's legacy NumPyClient interface (what ``secaggplus_mod`` wraps)."""

    def __init__(self, pid: int, num_partitions: int | None) -> None:
        self.pid = pid
        self.num_partitions = num_partitions

    def _task(self, config: dict) -> FederatedTask:
        task = get_task(_cfg(str(config[CONFIG_KEY])))
        if self.num_partitions is not None and self.num_partitions != task.num_clients:
            raise FederationError(f"this SuperNode says num-partitions={self.num_partitions}, but the configuration "
                                  f"yields {task.num_clients} clients.")
        return task

    def _state(self, task: FederatedTask, parameters: list[np.ndarray]) -> tuple[list[str], dict]:
        keys = state_keys(task)
        if len(parameters) != len(keys):
            raise FederationError(f"received {len(parameters)} arrays; the model's trainable state has {len(keys)}.")
        return keys, {k: torch.as_tensor(np.array(a)) for k, a in zip(keys, parameters)}

    def get_properties(self, config: dict) -> dict:
        """Per-channel count/sum/sum of squares, for the server's pooled normaliser (as on the other path)."""
        s = self._task(config).local_stats(self.pid)
        return {"partition-id": self.pid, "count": float(s["count"][0]), "sum": ndarray_to_bytes(s["sum"]),
                "sumsq": ndarray_to_bytes(s["sumsq"])}

    def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
        task = self._task(config)
        keys, state = self._state(task, parameters)
        new_state, metrics, n = task.train_client(state, self.pid, int(config["server-round"]),
                                                  float(config.get("proximal-mu", 0.0)))
        delta = update_vector(parameters, new_state, keys)
        sa = task.cfg.federated.secagg
        ratio = round(n / sa.max_weight * sa.quantization_range) / sa.quantization_range
        clipped = int(sum((np.abs(d) * ratio > sa.clipping_range).sum() for d in delta))
        return delta, int(n), {"train_loss": float(metrics.get("train_loss", float("nan"))), "partition-id": self.pid,
                               "clipped": clipped}

    def evaluate(self, parameters: list[np.ndarray], config: dict) -> tuple[float, int, dict]:
        task = self._task(config)
        _, state = self._state(task, parameters)
        m, n = task.evaluate_client(state, self.pid)
        return float(m["loss"]), int(n), {"accuracy": float(m["accuracy"]), "macro_f1": float(m["macro_f1"]),
                                          "partition-id": self.pid}


def _client_fn(context: Context):
    expected = context.node_config.get("num-partitions")
    return SecAggClient(int(context.node_config["partition-id"]), None if expected is None else int(expected)).to_client()


client_app = ClientApp(client_fn=_client_fn, mods=[secaggplus_mod])
"""The legacy ClientApp of the SecAgg+ path (module-level, so Ray workers import it by name)."""


# --------------------------------------------------------------------------- server
def _record_bytes(record) -> int:
    """Flower's ``count_bytes``, which fails on an empty list (SecAgg+'s ``dead_nids`` often is): such
    an entry counts only its key."""
    empty = [k for k, v in record.items() if isinstance(v, list) and not v]
    if not empty:
        return record.count_bytes()
    return type(record)({k: v for k, v in record.items() if k not in empty}).count_bytes() + sum(map(len, empty))


def _content_bytes(msg: Message) -> int:
    return sum(_record_bytes(r) for r in msg.content.values()) if msg.has_content() else 0


def _stage(msg: Message) -> str:
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return str(msg.content.config_records[RECORD_KEY_CONFIGS].get(Key.STAGE, "train"))
    return str(msg.metadata.message_type)


MODEL_STAGES = ("collect_masked_vectors", MessageType.EVALUATE)
"""Stages whose messages carry the model (what one message is on the Message-API path)."""


class CountingGrid:
    """A Grid that records the bytes of every message and reply in the round's row (``bytes_down``:
    all sent; ``bytes_up``: replies to training stages, as on the Message-API path) and per stage."""

    def __init__(self, grid: Grid, row: dict) -> None:
        self._grid, self.row = grid, row

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        if not messages:
            return []
        stage = _stage(messages[0])
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        ok = [r for r in replies if not r.has_error()]
        down, up = sum(map(_content_bytes, messages)), sum(map(_content_bytes, ok))
        info = self.row.setdefault("secagg", {}).setdefault("stages", {}).setdefault(
            stage, {"sent": 0, "replies": 0, "bytes_down": 0, "bytes_up": 0})
        info["sent"] += len(messages)
        info["replies"] += len(ok)
        info["bytes_down"] += down
        info["bytes_up"] += up
        self.row["bytes_down"] += down
        if stage in MODEL_STAGES:
            self.row["messages_down"] += len(messages)
        if stage != MessageType.EVALUATE:
            self.row["bytes_up"] += up
            for r in replies:
                if r.has_error():
                    self.row["failures"] += 1
                    self.row["failure_reasons"].append(f"{stage}: {_short(r.error.reason)}")
            if stage == "collect_masked_vectors":
                self.row["messages_up"] += len(ok)
        return replies

    def __getattr__(self, name: str):
        return getattr(self._grid, name)


def _short(reason: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in reason.splitlines() if ln.strip()]
    return reason if len(reason) <= limit or not lines else (lines[0][:100] + " ... " + lines[-1])[-limit:]


class PartitionOrderedClientManager(SimpleClientManager):
    """Samples from the nodes in partition order, so a seeded round picks the same clients in every run
    (node ids are drawn anew by each federation)."""

    def __init__(self, partitions: dict[int, int]) -> None:
        super().__init__()
        self.partitions = partitions

    def sample(self, num_clients: int, min_num_clients: int | None = None, criterion=None) -> list:
        self.wait_for(num_clients if min_num_clients is None else min_num_clients)
        p = self.partitions
        cids = sorted(self.clients, key=lambda c: (self.clients[c].node_id not in p, p.get(self.clients[c].node_id, 0), c))
        if criterion is not None:
            cids = [c for c in cids if criterion.select(self.clients[c])]
        return [] if num_clients > len(cids) else [self.clients[c] for c in random.sample(cids, num_clients)]


def _weighted(metrics: list[tuple[int, dict]], keys: Sequence[str]) -> dict:
    out = {}
    for k in keys:
        pairs = [(n, float(m[k])) for n, m in metrics if k in m and n > 0 and np.isfinite(float(m[k]))]
        if pairs:
            out[k] = sum(n * v for n, v in pairs) / sum(n for n, _ in pairs)
    return out


class SecAggFedAvg(FedAvg):
    """Legacy FedAvg fed by SecAgg+: every result carries the same unmasked mean update, so aggregation
    passes it on (as float32) and records the round; evaluation replies are averaged by weight."""

    def __init__(self, recorder: RoundRecorder, offset: int, sa: SecAggConfig, min_train: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.recorder, self.offset, self.sa, self.min_train = recorder, offset, sa, min_train
        self.dtypes: list[np.dtype] = []

    def aggregate_fit(self, server_round: int, results: list, failures: list) -> tuple[Parameters | None, dict]:
        rnd = server_round + self.offset
        row = self.recorder.row(rnd)
        row["clients"] = len(results)
        weights = [fit.num_examples for _, fit in results]
        info = row.setdefault("secagg", {})
        info.update(survivors=len(results), clipped=int(sum(int(fit.metrics.get("clipped", 0)) for _, fit in results)),
                    rounding_bound=error_bound(weights, self.sa) if results else None)
        if info["clipped"]:
            log.warning("round %d: %d update values exceeded federated.secagg.clipping_range after weighting and were "
                        "clipped", rnd, info["clipped"])
        if len(results) < self.min_train:
            log.warning("round %d: only %d clients survived SecAgg+ (< min_train_clients=%d); global model unchanged.",
                        rnd, len(results), self.min_train)
            row["skipped"] = True
            return None, {}
        mean = parameters_to_ndarrays(results[0][1].parameters)
        mean = [m.astype(d, copy=False) for m, d in zip(mean, self.dtypes)] if self.dtypes else mean
        metrics = _weighted([(fit.num_examples, fit.metrics) for _, fit in results], ["train_loss"])
        if "train_loss" in metrics:
            row["train_loss"] = float(metrics["train_loss"])
        info["aggregated"] = True  # what the fit workflow adds to the global state
        return ndarrays_to_parameters(mean), metrics

    def aggregate_evaluate(self, server_round: int, results: list, failures: list) -> tuple[float | None, dict]:
        pairs = [(ev.num_examples, {**ev.metrics, "loss": ev.loss}) for _, ev in results]
        metrics = _weighted(pairs, ["accuracy", "macro_f1", "loss"])
        if metrics:
            row = self.recorder.row(server_round + self.offset)
            row["fed_accuracy"] = float(metrics.get("accuracy", float("nan")))
            row["fed_macro_f1"] = float(metrics.get("macro_f1", float("nan")))
        return metrics.get("loss"), metrics


def _current(context: LegacyContext) -> list[np.ndarray]:
    return parameters_to_ndarrays(compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD],
                                                                   keep_input=True))


def _round(context: LegacyContext) -> int:
    return int(context.state.config_records[MAIN_CONFIGS_RECORD][WorkflowKey.CURRENT_ROUND])


@dataclass
class SecAggRound:
    """The fit workflow: one SecAgg+ round on update vectors, then global = global + mean update."""

    workflow: SecAggPlusWorkflow
    recorder: RoundRecorder
    offset: int
    seed: int
    sizes: ProtocolSizes

    def __call__(self, grid: Grid, context: LegacyContext) -> None:
        rnd = _round(context) + self.offset
        self.recorder.start(rnd)
        row = self.recorder.row(rnd)
        random.seed(derive_seed(self.seed, rnd, "sample"))  # legacy sampling and SecAgg+'s neighbour shuffle
        glob = _current(context)
        self.workflow(CountingGrid(grid, row), context)
        row.setdefault("secagg", {}).update(threshold=self.sizes.threshold, shares=self.sizes.shares)
        if not row["secagg"].get("aggregated"):  # halted, or too few survivors: the record still holds the global state
            if "survivors" not in row["secagg"]:
                stages = row["secagg"].get("stages", {})
                last = list(stages)[-1] if stages else "setup"
                row["clients"] = 0
                row["failure_reasons"].append(
                    f"SecAgg+ halted at stage {last}: {stages.get(last, {}).get('replies', 0)} clients replied, "
                    f"fewer than the reconstruction threshold {self.sizes.threshold} allows; global model unchanged")
                log.warning("round %d: %s", rnd, row["failure_reasons"][-1])
            row["secagg"]["halted"] = "survivors" not in row["secagg"]  # else: fewer survivors than min_train_clients
            return
        row["secagg"]["halted"] = False
        mean = _current(context)
        new = [(g.astype(np.float64) + m).astype(g.dtype) for g, m in zip(glob, mean)]
        context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(ndarrays_to_parameters(new), True)


@dataclass
class RoundEnd:
    """The evaluate workflow: Flower's federated evaluation, then fedhar's per-round files."""

    write: object  # (round, global arrays) -> None
    recorder: RoundRecorder
    offset: int
    seed: int

    def __call__(self, grid: Grid, context: LegacyContext) -> None:
        rnd = _round(context) + self.offset
        random.seed(derive_seed(self.seed, rnd, "sample-eval"))
        default_evaluate_workflow(CountingGrid(grid, self.recorder.row(rnd)), context)
        self.recorder.finish(rnd)
        self.write(rnd, _current(context))


def query_stats(grid: Grid, cfg: ExperimentConfig, min_nodes: int, timeout: float = 600) -> tuple[dict[int, int], list]:
    """Legacy ``get_properties`` to every node: (node id -> partition id, [count, sum, sumsq] per client
    in partition order), for the pooled normaliser and seeded sampling."""
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < min_nodes:
        if time.monotonic() > deadline:
            raise FederationError(f"only {len(nodes)} of {min_nodes} nodes connected within {timeout:.0f}s.")
        time.sleep(0.5)
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns({CONFIG_KEY: config_record(cfg)[CONFIG_KEY]}))
    msgs = [Message(content=content, dst_node_id=n, message_type=MessageTypeLegacy.GET_PROPERTIES, group_id="0")
            for n in nodes]
    replies = list(grid.send_and_receive(msgs, timeout=timeout))
    props = {int(r.metadata.src_node_id): compat.recorddict_to_getpropertiesres(r.content).properties
             for r in replies if not r.has_error()}
    if not props:
        why = next((r.error.reason for r in replies if r.has_error()), "no reply")
        raise FederationError(f"no client answered the normalisation-statistics query; first error: {why}")
    order = sorted(props, key=lambda n: int(props[n]["partition-id"]))
    stats = [[np.array([props[n]["count"]]), bytes_to_ndarray(props[n]["sum"]), bytes_to_ndarray(props[n]["sumsq"])]
             for n in order]
    return {n: int(props[n]["partition-id"]) for n in order}, stats


@dataclass
class _Run:
    """One SecAgg+ federation's server side: state, recorder and files."""

    cfg: ExperimentConfig
    run_dir: Path
    task: FederatedTask
    recorder: RoundRecorder = field(default_factory=RoundRecorder)
    confusion: list | None = None
    warnings: list[str] = field(default_factory=list)

    def state(self, arrays: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(np.array(a)) for k, a in zip(state_keys(self.task), arrays)}

    def central(self, rnd: int, arrays: Sequence[np.ndarray]) -> tuple[float, dict]:
        m = self.task.evaluate_central(self.state(arrays))
        self.confusion = m["confusion"]
        self.recorder.row(rnd).update(accuracy=m["accuracy"], macro_f1=m["macro_f1"], loss=m["loss"])
        return float(m["loss"]), {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    def write(self, final: bool) -> dict:
        results = write_federated_results(self.run_dir, self.cfg, self.task, self.recorder, final=final,
                                          confusion=self.confusion)
        sa, k = self.cfg.federated.secagg, sampled_clients(self.cfg.federated, self.task.num_clients)
        sizes = protocol_sizes(sa, k)
        stages: dict[str, dict] = {}
        for r in self.recorder.history():
            for stage, v in (r.get("secagg") or {}).get("stages", {}).items():
                acc = stages.setdefault(stage, {"sent": 0, "replies": 0, "bytes_down": 0, "bytes_up": 0})
                for key in acc:
                    acc[key] += v[key]
        results["secure_aggregation"] = {
            "protocol": "secaggplus", "path": PATH,
            "sent": "each client's update (trained state minus the global state), masked; the server learns only "
                    "the weighted mean and adds it to the global state",
            "in_clear": IN_CLEAR,
            "num_shares": sizes.shares, "reconstruction_threshold": sizes.threshold, "neighbours": sizes.neighbours,
            "clients_per_round": k, "tolerated_dropouts_per_round": sizes.tolerated_dropouts,
            "clipping_range": sa.clipping_range, "quantization_range": sa.quantization_range,
            "max_weight": sa.max_weight, "modulus_range": MODULUS_RANGE,
            "bytes_by_stage": stages,
            "rounds": [{"round": r["round"], **{k2: v for k2, v in (r.get("secagg") or {}).items() if k2 != "stages"}}
                       for r in self.recorder.history()],
        }
        results["warnings"] = list(dict.fromkeys([*results.get("warnings", []), *self.warnings]))
        write_json(self.run_dir / "results.json", results)
        return results

    def end_of_round(self, rnd: int, arrays: Sequence[np.ndarray]) -> None:
        rows = [self.recorder.rows[r] for r in sorted(self.recorder.rows)]
        save_checkpoint(self.run_dir, rnd, self.state(arrays), {}, rows)
        self.write(final=False)
        row = self.recorder.row(rnd)
        log.info("round %d/%d (SecAgg+): central acc %.4f macro-F1 %.4f | clients %d failures %d | up %.2f MB down %.2f MB "
                 "| %.1fs", rnd, self.cfg.federated.rounds, row.get("accuracy", float("nan")),
                 row.get("macro_f1", float("nan")), row.get("clients", 0), row.get("failures", 0),
                 row.get("bytes_up", 0) / 1e6, row.get("bytes_down", 0) / 1e6, row.get("seconds", 0.0))


def run_secagg_server(grid: Grid, context: Context, cfg: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    """The SecAgg+ federation: the legacy DefaultWorkflow with SecAgg+ as its fit workflow."""
    run_dir, fcfg = Path(run_dir), cfg.federated
    task = get_task(cfg)
    check_secagg(cfg, "simulation", task)
    run = _Run(cfg, run_dir, task)
    if warning := max_weight_warning(fcfg.secagg, [len(task.client_data(p)[0]) for p in range(task.num_clients)]):
        log.warning(warning)
        run.warnings.append(warning)
    keys = state_keys(task)
    initial = task.initial_state()
    ckpt = load_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        state, offset, run.recorder = ckpt.global_state, ckpt.round, RoundRecorder(ckpt.rounds)
        log.info("resuming %s after round %d of %d", run_dir, offset, fcfg.rounds)
    else:
        state, offset = initial, 0
    used = {k: u for k, (_, u) in min_clients(fcfg, task.num_clients).items()}
    for message in min_client_warnings(fcfg, task.num_clients):
        log.warning(message)
    partitions, stats = query_stats(grid, cfg, used["min_available_clients"])
    if ckpt is None and "normalizer.mean" in state:
        mean, std = pooled_normaliser([{"count": c, "sum": s, "sumsq": sq} for c, s, sq in stats])
        state["normalizer.mean"] = torch.as_tensor(mean, dtype=torch.float32)
        state["normalizer.std"] = torch.as_tensor(std, dtype=torch.float32)
    arrays = [np.asarray(state[k].detach().cpu().numpy() if torch.is_tensor(state[k]) else state[k]) for k in keys]
    remaining = fcfg.rounds - offset
    if remaining > 0:
        text = config_record(cfg)[CONFIG_KEY]
        mu = fcfg.strategy.proximal_mu if fcfg.strategy.name == "fedprox" else 0.0

        def fit_config(server_round: int) -> dict:
            return {CONFIG_KEY: text, "server-round": server_round + offset, "proximal-mu": mu}

        def central(server_round: int, ndarrays: list[np.ndarray], _: dict) -> tuple[float, dict] | None:
            return None if server_round == 0 and offset else run.central(server_round + offset, ndarrays)

        fraction_evaluate = fcfg.fraction_evaluate if fcfg.local_test_fraction > 0 else 0.0
        strategy = SecAggFedAvg(
            run.recorder, offset, fcfg.secagg, used["min_train_clients"],
            fraction_fit=fcfg.fraction_train, fraction_evaluate=fraction_evaluate,
            min_fit_clients=used["min_train_clients"], min_evaluate_clients=used.get("min_evaluate_clients", 0),
            min_available_clients=used["min_available_clients"], evaluate_fn=central,
            on_fit_config_fn=fit_config, on_evaluate_config_fn=fit_config,
            initial_parameters=ndarrays_to_parameters(arrays))
        strategy.dtypes = [a.dtype for a in arrays]
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=remaining), strategy=strategy,
                               client_manager=PartitionOrderedClientManager(partitions))
        sizes = protocol_sizes(fcfg.secagg, sampled_clients(fcfg, task.num_clients))
        workflow = DefaultWorkflow(
            fit_workflow=SecAggRound(make_workflow(fcfg.secagg), run.recorder, offset, cfg.seed, sizes),
            evaluate_workflow=RoundEnd(run.end_of_round, run.recorder, offset, cfg.seed))
        workflow(grid, legacy)
    else:
        log.info("%s already finished all %d rounds.", run_dir, fcfg.rounds)
    if (last := load_checkpoint(run_dir)) is not None:
        if run.confusion is None:
            run.confusion = task.evaluate_central(last.global_state)["confusion"]
        log.info("final global model saved in %s", task.save_global_model(last.global_state, run_dir / "model"))
    run.write(final=True)


def make_secagg_server_app(cfg: ExperimentConfig, run_dir: Path, resume: bool = False) -> ServerApp:
    """The SecAgg+ ServerApp for ``fedhar simulate`` (config passed in, as :func:`make_server_app`)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_secagg_server(grid, context, cfg, run_dir, resume)

    return server
