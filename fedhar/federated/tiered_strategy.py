"""The server side of a tiered federation (``federated.tiers``).

Each client gets its tier's slice of the global state. Replies of mixed ranks and depths are
aggregated with ``federated.lora_aggregation`` (:func:`~fedhar.federated.lora_aggregation.aggregate_lora`)
instead of FedAvg's mean. A simulated clock (:class:`~fedhar.federated.tiers.RoundClock`) times
each round from the clients' measured compute and upload. With a round deadline, stragglers are
dropped or join a later round as stale updates. Flower still samples the clients: a sampled client
that is offline in the round (its tier's availability) or still busy with a late update is not
contacted. With ``fraction_train: 1``, that is every available client.
"""

from __future__ import annotations

from typing import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedhar.exceptions import FederationError
from fedhar.federated.config import FederatedConfig
from fedhar.federated.lora_aggregation import aggregate_lora
from fedhar.federated.strategy import GuardedStrategy
from fedhar.federated.tiered import Fleet
from fedhar.federated.tiers import RoundClock, available, client_round_time


def _pid(msg: Message) -> int:
    return int(msg.content["metrics"]["partition-id"])


class TieredGuard(GuardedStrategy):
    """Mixin: ``class X(TieredGuard, FedAvg)`` (or FedProx). Call :meth:`use_fleet` after ``setup``."""

    def use_fleet(self, fleet: Fleet, fcfg: FederatedConfig) -> None:
        """Start the simulated clock; a resumed run continues it from its last recorded round
        (pending stale updates are not checkpointed: they are lost on resume)."""
        self.fleet = fleet
        self.clock = RoundClock(fcfg.round_deadline_s, fcfg.stragglers, fcfg.max_staleness)
        self.clock.now = max((float(r.get("simulated_end_s") or 0.0) for r in self.recorder.rows.values()), default=0.0)
        self.hours_per_round = fcfg.hours_per_round
        self._global: dict = {}
        self._late: dict[int, tuple[dict, float]] = {}  # straggler -> (its update, its examples)
        self._arrived: list[tuple[int, dict, float]] = []  # this round's stale updates: (client, update, weight)

    # ------------------------------------------------------------------ sending
    def _address(self, rnd: int, msgs: list[Message], arrays: ArrayRecord, train: bool) -> list[Message]:
        """Each message with its client's slice; in training, offline and busy clients left out."""
        glob = arrays.to_torch_state_dict()
        if train:
            self._global = glob
        offline, busy, out = [], [], []
        for m in msgs:
            node = m.metadata.dst_node_id
            if node not in self.partitions:
                raise FederationError(f"node {node} is not among the nodes that reported a partition id; the tiered "
                                      "federation needs every client's tier.")
            pid = self.partitions[node]
            if train and not available(self.fleet.tier(pid), pid, rnd, self.seed, self.hours_per_round):
                offline.append(pid)
                continue
            if train and pid in self.clock.busy():
                busy.append(pid)
                continue
            content = RecordDict({"arrays": ArrayRecord(self.fleet.slice_for(glob, pid)), "config": m.content["config"]})
            out.append(Message(content=content, message_type=m.metadata.message_type, dst_node_id=node))
        if train:
            self.recorder.row(rnd).update(unavailable=sorted(offline), busy=sorted(busy))
        return out

    def _template(self, msg: Message) -> dict[str, tuple[int, ...]]:
        """A client's reply has the keys and shapes of the slice it was sent (under ``shared_a`` neither has A)."""
        pid = _pid(msg)
        if not 0 <= pid < len(self.fleet.clients):
            return {}
        return {k: tuple(v.shape) for k, v in self.fleet.slice_for(self._global, pid).items()}

    # ----------------------------------------------------------------- receiving
    def _on_time(self, rnd: int, good: list[Message]) -> list[Message]:
        """Run the round's simulated clock: the replies before the deadline count now, stragglers'
        are dropped or kept for later, and earlier stragglers' updates that arrived join this round."""
        row = self.recorder.row(rnd)
        client_s, by_pid, by_tier = {}, {}, {t.name: 0 for t in self.fleet.tiers}
        for m in good:
            pid, tier = _pid(m), self.fleet.tier(_pid(m))
            up = m.content["arrays"].count_bytes()
            client_s[pid] = client_round_time(float(m.content["metrics"].get("compute-seconds", 0.0)), tier, up)
            by_pid[pid] = m
            by_tier[tier.name] += up
        timing = self.clock.round(rnd, client_s)
        if self.clock.policy == "stale":
            for c in timing.stragglers:
                self._late[c] = (by_pid[c].content["arrays"].to_torch_state_dict(),
                                 float(by_pid[c].content["metrics"]["num-examples"]))
        for c in timing.expired:
            self._late.pop(c, None)
        self._arrived = []
        for c in sorted(timing.stale):
            update, examples = self._late.pop(c)
            self._arrived.append((c, update, examples * timing.stale[c].weight))
        row.update(simulated_seconds=timing.duration_s, simulated_end_s=timing.end_s, stragglers=timing.stragglers,
                   stale=sorted(timing.stale), bytes_up_by_tier=by_tier)
        return [by_pid[c] for c in timing.on_time]

    def _skip_reason(self, good: list[Message]) -> str | None:
        if len(good) + len(self._arrived) >= self.min_train_nodes:
            return None
        return super()._skip_reason(good)

    def _aggregate(self, rnd: int, good: list[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """``aggregate_lora`` over the on-time replies and the stale updates that arrived."""
        pids = [_pid(m) for m in good] + [c for c, _, _ in self._arrived]
        states = [m.content["arrays"].to_torch_state_dict() for m in good] + [s for _, s, _ in self._arrived]
        states = [self.fleet.to_global(st, p) for st, p in zip(states, pids)]
        weights = [float(m.content["metrics"]["num-examples"]) for m in good] + [w for _, _, w in self._arrived]
        agg = aggregate_lora(self._global, states, weights, self.fleet.rule, scales=[self.fleet.scale(p) for p in pids])
        if agg.reconstruction_error:  # svd: the worst module's relative error, per client rank
            ranks = sorted({r for e in agg.reconstruction_error.values() for r in e})
            self.recorder.row(rnd)["reconstruction_error"] = {
                str(r): max(e[r] for e in agg.reconstruction_error.values() if r in e) for r in ranks}
        return ArrayRecord(agg.state), self.train_metrics_aggr_fn([m.content for m in good], "num-examples")

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Flower's evaluation, plus each tier's example-weighted macro-F1 on its own clients' data."""
        replies = list(replies)
        out = super().aggregate_evaluate(server_round, replies)
        ok = [m for m in replies if not m.has_error() and float(m.content["metrics"].get("num-examples", 0)) > 0]
        per_tier: dict[str, float] = {}
        for t in self.fleet.tiers:
            mine = [m.content for m in ok if self.fleet.tier(_pid(m)).name == t.name]
            if mine and "macro_f1" in (agg := self.evaluate_metrics_aggr_fn(mine, "num-examples")):
                per_tier[t.name] = float(agg["macro_f1"])
        self.recorder.row(server_round + self.round_offset)["tier_fed_macro_f1"] = per_tier
        return out
