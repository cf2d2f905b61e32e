"""Flower strategies from ``flwr.serverapp.strategy``, guarded and instrumented for fedhar.

:class:`GuardedStrategy` is a mixin placed in front of any Flower strategy. It only overrides
the four round hooks to (1) keep true round numbers on resume, (2) drop replies whose update is
non-finite or does not match the global state's keys and shapes, so a bad update never reaches
the global model, (3) count the bytes of the records actually sent and received, and (4) make
node sampling reproducible from the run seed. Aggregation itself is Flower's.

Under central differential privacy the guard sits in front of Flower's DP wrapper, which wraps a
plain FedAvg (:class:`PrivateGuard`): Flower's accountant accepts only an inner strategy that
aggregates with FedAvg's own ``aggregate_train``, and in front the guard still sees, counts and
drops each raw reply before the wrapper clips, averages and noises what is left.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.exception import PrivacyBudgetExhausted
from flwr.serverapp.strategy import (Bulyan, FedAdam, FedAvg, FedAvgM, FedMedian, FedProx, FedTrimmedAvg, FedYogi, Krum,
                                     MultiKrum)

from fedhar.exceptions import ConfigError
from fedhar.federated import privacy
from fedhar.federated.config import FederatedConfig
from fedhar.federated.task import derive_seed
from fedhar.registry import Registry

log = logging.getLogger(__name__)

FLOWER_STRATEGIES: Registry[type] = Registry("federated strategy")
FLOWER_STRATEGIES.register("fedavg", FedAvg)
FLOWER_STRATEGIES.register("fedprox", FedProx)
FLOWER_STRATEGIES.register("fedadam", FedAdam)
FLOWER_STRATEGIES.register("fedyogi", FedYogi)
FLOWER_STRATEGIES.register("fedavgm", FedAvgM)
FLOWER_STRATEGIES.register("fedmedian", FedMedian)
FLOWER_STRATEGIES.register("fedtrimmedavg", FedTrimmedAvg)
FLOWER_STRATEGIES.register("krum", Krum)
FLOWER_STRATEGIES.register("multikrum", MultiKrum)
FLOWER_STRATEGIES.register("bulyan", Bulyan)


class RoundRecorder:
    """Per-round bookkeeping: bytes, clients, failures, timings, federated and central metrics."""

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows: dict[int, dict] = {int(r["round"]): dict(r) for r in rows or []}
        self._t0: dict[int, float] = {}

    def row(self, rnd: int) -> dict:
        return self.rows.setdefault(rnd, {"round": rnd, "bytes_down": 0, "bytes_up": 0, "clients": 0,
                                          "failures": 0, "failure_reasons": [], "messages_down": 0, "messages_up": 0})

    def start(self, rnd: int) -> None:
        self._t0.setdefault(rnd, time.perf_counter())

    def finish(self, rnd: int) -> None:
        if rnd in self._t0:
            self.row(rnd)["seconds"] = time.perf_counter() - self._t0.pop(rnd)

    def history(self) -> list[dict]:
        return [self.rows[r] for r in sorted(self.rows) if r > 0]


def _weighted_metrics(records: list[RecordDict], weight_key: str) -> MetricRecord:
    """Example-weighted mean of client metrics (bookkeeping keys such as partition-id excluded)."""
    weights = np.array([float(next(iter(r.metric_records.values()))[weight_key]) for r in records])
    out = MetricRecord()
    if weights.sum() <= 0:
        return out
    skip = (weight_key, "partition-id", "tier-index", privacy.DP_WEIGHT_KEY)
    keys = [k for k in next(iter(records[0].metric_records.values())) if k not in skip]
    for k in keys:
        vals = np.array([float(next(iter(r.metric_records.values()))[k]) for r in records])
        ok = np.isfinite(vals) & (weights > 0)
        if ok.any():
            out[k] = float((vals[ok] * weights[ok]).sum() / weights[ok].sum())
    return out


def _short(reason: str, limit: int = 400) -> str:
    """Keep a failure reason readable: remote tracebacks end with the actual exception line."""
    lines = [ln.strip() for ln in reason.splitlines() if ln.strip()]
    if len(reason) <= limit or not lines:
        return reason
    return (lines[0][:120] + " ... " + lines[-1])[-limit:]


class PartitionOrderedGrid:
    """A Grid whose ``get_node_ids`` lists nodes in the order of the partitions they serve.

    Flower samples nodes with ``random.sample(grid.get_node_ids(), k)``; fedhar seeds ``random``
    per round, but node ids are drawn anew by every federation, so the same seed picked different
    clients in every run. Ordered by partition id, a seed picks the same clients every time.
    Nodes whose partition is unknown come last, in id order.
    """

    def __init__(self, grid: Grid, partitions: dict[int, int]) -> None:
        self._grid = grid
        self._partitions = partitions

    def get_node_ids(self) -> list[int]:
        known = self._partitions
        return sorted(self._grid.get_node_ids(), key=lambda n: (n not in known, known.get(n, 0), n))

    def __getattr__(self, name: str):
        return getattr(self._grid, name)


class GuardedStrategy:
    """Mixin: ``class X(GuardedStrategy, FedAvg)``. Call :meth:`setup` before ``start``."""

    def setup(self, recorder: RoundRecorder, template: dict[str, tuple[int, ...]], round_offset: int, seed: int,
              distiller=None, client_config: ConfigRecord | None = None, partitions: dict[int, int] | None = None) -> None:
        """``distiller`` (a :class:`~fedhar.federated.distill.ServerDistiller`) runs after each aggregation.
        ``client_config`` is added to every outgoing message's config record here rather than passed to
        ``start``, whose start-up banner would print it (fedhar's config is hundreds of lines of YAML)."""
        self.recorder = recorder
        self.template = template
        self.round_offset = round_offset
        self.seed = seed
        self.distiller = distiller
        self.client_config = ConfigRecord(dict(client_config or {}))
        self.partitions = dict(partitions or {})
        """node id -> partition id, so that seeded sampling picks the same clients in every run."""

    def _grid(self, grid: Grid) -> Grid:
        partitions = getattr(self, "partitions", None)
        return PartitionOrderedGrid(grid, partitions) if partitions else grid

    def _outgoing(self, config: ConfigRecord) -> ConfigRecord:
        """A fresh copy of the round's ``config`` with the client config added (Flower writes into it)."""
        return ConfigRecord({**config, **getattr(self, "client_config", {})})

    def _template(self, msg: Message) -> dict[str, tuple[int, ...]]:
        """Keys and shapes this reply's update must have (the global state's; a tier's slice under tiers)."""
        return self.template

    def _validate(self, msg: Message) -> str | None:
        """Why this reply's update must not be aggregated, or None when it is fine."""
        if msg.has_error():
            return f"client error: {msg.error.reason}"
        content = msg.content
        if "arrays" not in content.array_records or "metrics" not in content.metric_records:
            return "reply has no update or no metrics"
        arrays = content["arrays"]
        template = self._template(msg)
        if set(arrays.keys()) != set(template):
            return "update keys differ from the global state"
        for k, arr in arrays.items():
            if tuple(arr.shape) != template[k]:
                return f"wrong shape for `{k}`: {tuple(arr.shape)} instead of {template[k]}"
            if not np.isfinite(arr.numpy()).all():
                return f"non-finite values in `{k}`"
        if float(content["metrics"].get("num-examples", 0)) <= 0:
            return "num-examples is not positive"
        return None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        rnd = server_round + self.round_offset
        self.recorder.start(rnd)
        random.seed(derive_seed(self.seed, rnd, "sample"))  # Flower samples nodes with `random`
        msgs = self._address(rnd, list(super().configure_train(rnd, arrays, self._outgoing(config), self._grid(grid))),
                             arrays, train=True)
        row = self.recorder.row(rnd)
        row["bytes_down"] += sum(m.content["arrays"].count_bytes() + m.content["config"].count_bytes() for m in msgs)
        row["messages_down"] += len(msgs)
        return msgs

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        rnd = server_round + self.round_offset
        row = self.recorder.row(rnd)
        good: list[Message] = []
        for msg in replies:
            if not msg.has_error() and "arrays" in msg.content.array_records:
                row["bytes_up"] += msg.content["arrays"].count_bytes()
                row["messages_up"] += 1
            reason = self._validate(msg)
            if reason is None:
                good.append(msg)
            else:
                reason = _short(reason)
                row["failures"] += 1
                row["failure_reasons"].append(reason)
                log.warning("round %d: leaving out a reply from node %s: %s", rnd, msg.metadata.src_node_id, reason)
        # Aggregate in a fixed client order so results do not depend on arrival order.
        good.sort(key=lambda m: int(m.content["metrics"].get("partition-id", 0)))
        good = self._on_time(rnd, good)
        row["clients"] = len(good)
        if (why := self._skip_reason(good)) is not None:
            log.warning("round %d: %s", rnd, why)
            row["skipped"] = True
            row["skipped_reason"] = why
            self._skipped(rnd)
            return None, None
        self._prepare(good)
        arrays, metrics = self._aggregate(rnd, good)
        if arrays is not None and getattr(self, "distiller", None) is not None:
            clients = [m.content["arrays"].to_torch_state_dict() for m in good]
            arrays = ArrayRecord(self.distiller(rnd, arrays.to_torch_state_dict(), clients))
            last = self.distiller.rows[-1]
            row["distill_agreement"] = last["agreement_after"]
            row["distill_seconds"] = last["seconds"]
        if metrics is not None and "train_loss" in metrics:
            row["train_loss"] = float(metrics["train_loss"])
        return arrays, metrics

    def _address(self, rnd: int, msgs: list[Message], arrays: ArrayRecord, train: bool) -> list[Message]:
        """The round's outgoing messages as sent (a hook: tiered clients each get their own slice)."""
        return msgs

    def _on_time(self, rnd: int, good: list[Message]) -> list[Message]:
        """The valid replies that count this round (a hook: a round deadline leaves stragglers out)."""
        return good

    def _aggregate(self, rnd: int, good: list[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The new global state from the accepted replies: the Flower strategy's own aggregation."""
        return super().aggregate_train(rnd, good)

    def _skip_reason(self, good: list[Message]) -> str | None:
        """Why the round's valid updates must not be aggregated at all, or None."""
        if len(good) < self.min_train_nodes:
            return f"only {len(good)} valid updates (< min_train_clients={self.min_train_nodes}); global model unchanged."
        return None

    def _skipped(self, rnd: int) -> None:
        """A round was skipped before aggregation (a hook for wrappers that keep per-round state)."""

    def _prepare(self, good: list[Message]) -> None:
        """Last touch on the accepted replies before Flower aggregates them (after bytes were counted)."""

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        rnd = server_round + self.round_offset
        random.seed(derive_seed(self.seed, rnd, "sample-eval"))
        msgs = self._address(rnd, list(super().configure_evaluate(rnd, arrays, self._outgoing(config), self._grid(grid))),
                             arrays, train=False)
        row = self.recorder.row(rnd)
        row["bytes_down"] += sum(m.content["arrays"].count_bytes() + m.content["config"].count_bytes() for m in msgs)
        row["messages_down"] += len(msgs)
        return msgs

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        rnd = server_round + self.round_offset
        ok = [m for m in replies if not m.has_error() and float(m.content["metrics"].get("num-examples", 0)) > 0]
        metrics = super().aggregate_evaluate(rnd, ok) if ok else None
        if metrics:
            row = self.recorder.row(rnd)
            row["fed_accuracy"] = float(metrics.get("accuracy", float("nan")))
            row["fed_macro_f1"] = float(metrics.get("macro_f1", float("nan")))
        return metrics


class PrivateGuard(GuardedStrategy):
    """The guard in front of a Flower central-DP wrapper: ``class X(PrivateGuard, DifferentialPrivacy...)``,
    built as ``X(FedAvg(...), **wrapper_kwargs)`` by :func:`make_strategy`.

    - FedAvg's settings (``min_train_nodes`` ...) that the guard reads are proxied from the inner strategy.
    - Every accepted update gets weight 1 (:data:`~fedhar.federated.privacy.DP_WEIGHT_KEY`): the
      accountant's analysis is for the plain mean of the clipped updates.
    - A round aggregates only when every sampled client sent a valid update. The noise (std
      z x C / n) and the accountant assume n updates; Flower's accounted wrappers skip such a round
      anyway, and the guard applies the same rule under adaptive clipping. A skipped round leaves the
      global model unchanged, spends no epsilon and says why in its row (``skipped_reason``).
    - Each round row gets the epsilon spent so far (:func:`~fedhar.federated.privacy.round_privacy`).
    - When the next round would pass ``max_epsilon``, Flower raises ``PrivacyBudgetExhausted`` from
      ``configure_train`` before anything is sent; the reason is kept in ``stopped_by_budget`` and
      the ServerApp ends the run there.
    """

    stopped_by_budget: str | None = None

    def __getattr__(self, name: str):
        inner = self.__dict__.get("strategy")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        try:
            return super().configure_train(server_round, arrays, config, grid)
        except PrivacyBudgetExhausted as exc:
            self.stopped_by_budget = f"round {server_round + self.round_offset} was not run: {exc}"
            raise

    def _skip_reason(self, good: list[Message]) -> str | None:
        if (why := super()._skip_reason(good)) is not None:
            return why
        if len(good) != self.num_sampled_clients:
            return (f"only {len(good)} of {self.num_sampled_clients} sampled clients sent a valid update, and central "
                    "DP aggregates only when all of them do (its noise and accountant assume every sampled client); "
                    "global model unchanged, no epsilon spent.")
        return None

    def _skipped(self, rnd: int) -> None:
        getattr(self, "_pending_events", {}).pop(rnd, None)  # Flower's accountant event of the unreleased round

    def _prepare(self, good: list[Message]) -> None:
        for msg in good:
            msg.content["metrics"][privacy.DP_WEIGHT_KEY] = 1.0

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        privacy.fresh_entropy()
        out = super().aggregate_train(server_round, replies)
        self.recorder.row(server_round + self.round_offset).update(privacy.round_privacy(self))
        return out

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        for msg in replies:  # the inner FedAvg checks its weight key; evaluation is still weighted by examples
            if not msg.has_error() and "metrics" in msg.content.metric_records:
                msg.content["metrics"][privacy.DP_WEIGHT_KEY] = 1.0
        return super().aggregate_evaluate(server_round, replies)


def _by_examples(records: list[RecordDict], _weight_key: str) -> MetricRecord:
    """Client metrics weighted by examples whatever key the strategy weights updates by."""
    return _weighted_metrics(records, "num-examples")


def _fraction_evaluate(cfg: FederatedConfig) -> float:
    """No local test windows, no federated evaluation."""
    return cfg.fraction_evaluate if cfg.local_test_fraction > 0 else 0.0


def min_clients(cfg: FederatedConfig, num_clients: int) -> dict[str, tuple[int, int]]:
    """``federated.min_*`` key -> (configured, used): a minimum above the client count is lowered to it
    (min_evaluate_clients only matters when there is federated evaluation)."""
    keys = ["min_train_clients", "min_available_clients"] + (["min_evaluate_clients"] if _fraction_evaluate(cfg) else [])
    return {k: (getattr(cfg, k), min(getattr(cfg, k), num_clients)) for k in keys}


def min_client_warnings(cfg: FederatedConfig, num_clients: int) -> list[str]:
    """One sentence per ``federated.min_*`` value the run does not use as configured."""
    return [f"`federated.{k}` is {have} but the run has only {num_clients} clients; {used} is used."
            for k, (have, used) in min_clients(cfg, num_clients).items() if used != have]


def make_strategy(cfg: FederatedConfig, num_clients: int):
    """A guarded instance of the configured Flower strategy; a ``min_*`` lowered to the client count is
    warned about (and recorded in results.json by :func:`~fedhar.federated.results.write_federated_results`).
    Under central DP: the guard in front of Flower's DP wrapper around the plain strategy (:class:`PrivateGuard`)."""
    base = FLOWER_STRATEGIES.get(cfg.strategy.name, "federated.strategy.name")
    cls = type(f"Guarded{base.__name__}", (GuardedStrategy, base), {})
    if cfg.tiers:  # the config allows only FedAvg/FedProx with tiers; the tiered aggregation replaces their mean
        from fedhar.federated.tiered_strategy import TieredGuard  # it builds on GuardedStrategy

        cls = type(f"Tiered{base.__name__}", (TieredGuard, base), {})
    fraction_evaluate = _fraction_evaluate(cfg)
    used = {k: u for k, (_, u) in min_clients(cfg, num_clients).items()}
    for message in min_client_warnings(cfg, num_clients):
        log.warning(message)
    kwargs = dict(
        fraction_train=cfg.fraction_train, fraction_evaluate=fraction_evaluate,
        min_train_nodes=used["min_train_clients"],
        min_evaluate_nodes=used.get("min_evaluate_clients", 0),
        min_available_nodes=used["min_available_clients"],
        train_metrics_aggr_fn=_weighted_metrics, evaluate_metrics_aggr_fn=_weighted_metrics,
    )
    s = cfg.strategy
    if s.name == "fedprox":
        kwargs["proximal_mu"] = s.proximal_mu
    elif s.name in ("fedadam", "fedyogi"):
        kwargs.update(eta=s.server_lr, beta_1=s.beta_1, beta_2=s.beta_2, tau=s.tau)
    elif s.name == "fedavgm":
        kwargs.update(server_momentum=s.server_momentum)
    else:
        kwargs.update(robust_kwargs(cfg, num_clients))
    if privacy.is_central(cfg.privacy):
        return _private_strategy(cfg, base, kwargs, num_clients)
    return cls(**kwargs)


def _private_strategy(cfg: FederatedConfig, base: type, kwargs: dict, num_clients: int):
    """``Guarded<Wrapper>(base(...))``: the config already refused a base other than FedAvg/FedProx
    (FederatedConfig), since Flower's wrappers noise whatever the inner strategy returns."""
    if base not in (FedAvg, FedProx):
        raise ConfigError(f"`federated.privacy.mode: {cfg.privacy.mode}` needs `federated.strategy.name` fedavg or "
                          f"fedprox; got {cfg.strategy.name}.")
    n = sampled_clients(cfg, num_clients)
    kwargs.update(weighted_by_key=privacy.DP_WEIGHT_KEY, train_metrics_aggr_fn=_by_examples,
                  evaluate_metrics_aggr_fn=_by_examples,
                  min_available_nodes=max(kwargs["min_available_nodes"], n))  # wait for every client it samples
    wrapper, wrapper_kwargs = privacy.dp_wrapper(cfg, num_clients, n)
    cls = type(f"Guarded{wrapper.__name__}", (PrivateGuard, wrapper), {})
    return privacy.build_wrapper(cls, base(**kwargs), wrapper_kwargs)


def sampled_clients(cfg: FederatedConfig, num_clients: int) -> int:
    """How many clients a training round samples (Flower's rule: the fraction, at least the minimum)."""
    return max(int(num_clients * cfg.fraction_train), min(cfg.min_train_clients, num_clients))


def robust_kwargs(cfg: FederatedConfig, num_clients: int) -> dict:
    """The robust rule's own arguments, checked against the replies a round can have: Krum needs
    n > 2f + 2, Bulyan n >= 4f + 3 (Flower would otherwise skip or fail every round)."""
    s, n = cfg.strategy, sampled_clients(cfg, num_clients)
    f = s.num_malicious
    if s.name == "fedtrimmedavg":
        return {"beta": s.trim_beta}
    if s.name in ("krum", "multikrum") and n <= 2 * f + 2:
        raise ConfigError(f"`federated.strategy.name: {s.name}` with `num_malicious: {f}` needs more than {2 * f + 2} "
                          f"clients per round; a round samples {n}.")
    if s.name == "bulyan" and n < 4 * f + 3:
        raise ConfigError(f"`federated.strategy.name: bulyan` with `num_malicious: {f}` needs at least {4 * f + 3} "
                          f"clients per round; a round samples {n}.")
    if s.name == "multikrum":
        return {"num_malicious_nodes": f, "num_nodes_to_select": s.num_to_select or max(1, n - f)}
    if s.name in ("krum", "bulyan"):
        return {"num_malicious_nodes": f}
    return {}


# --------------------------------------------------------------- strategy state
def strategy_state(strategy) -> dict[str, np.ndarray]:
    """The server optimiser's own state (FedAdam/FedYogi moments, FedAvgM momentum)."""
    out: dict[str, np.ndarray] = {}
    for attr in ("m_t", "v_t"):
        for k, v in (getattr(strategy, attr, None) or {}).items():
            out[f"{attr}/{k}"] = np.asarray(v)
    for i, v in enumerate(getattr(strategy, "momentum_vector", None) or []):
        out[f"momentum_vector/{i:05d}"] = np.asarray(v)
    return out


def load_strategy_state(strategy, state: dict[str, np.ndarray], global_arrays: ArrayRecord) -> None:
    """Restore :func:`strategy_state` output and the strategy's view of the current global model."""
    for attr in ("m_t", "v_t"):
        d = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(attr + "/")}
        if d:
            setattr(strategy, attr, d)
    mv = [state[k] for k in sorted(state) if k.startswith("momentum_vector/")]
    if mv:
        strategy.momentum_vector = mv
    if isinstance(strategy, FedAvgM):
        strategy.current_arrays = global_arrays
