"""Device tiers (``federated.tiers``): what each client can compute and when it is online, and
the simulated clock of a federation whose clients differ in speed, bandwidth and availability.

A tier gives its clients a LoRA rank and a backbone depth (see :mod:`fedhar.federated.lora_aggregation`),
a compute speed and an uplink bandwidth (for :func:`client_round_time`), and an availability
model (:func:`available`). Clients get a tier by explicit list or by share. The share
assignment is drawn from the run seed (:func:`assign_tiers`). Every answer here depends only on
the config, the run seed and the round, so the server and the clients agree without talking.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence, get_args

import numpy as np

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.seeds import derive_seed
from fedhar.registry import Registry
from fedhar.schema import named_or_mapping

Availability = Literal["always", "daily", "dropout", "never"]
StragglerPolicy = Literal["drop", "stale"]
SHARE_TOLERANCE = 1e-6


class _FieldError(ConfigError):
    """A tier field is invalid. Its reason starts with the backticked field, so ``from_mapping``
    re-raises it unchanged. :func:`parse_tiers` then puts it under ``federated.tiers[i].<field>``."""

    def __init__(self, tier: str, key: str, problem: str) -> None:
        super().__init__(f"`{key}` of device tier `{tier}` {problem}")
        self.key, self.problem = key, problem


@dataclass
class TierConfig:
    """One kind of device in the federation and the clients that are that kind."""

    name: str = field(metadata={"help": "Tier name (unique in `federated.tiers`)."})
    share: float | None = field(default=None, metadata={"help": "Share of the clients not listed in any tier's `clients`, in (0, 1]. Tiers with neither share nor clients split what the others leave equally."})
    clients: list[int] | None = field(default=None, metadata={"help": "Explicit partition ids of this tier (instead of `share`)."})
    rank: int = field(default=8, metadata={"help": "LoRA rank its clients train (at most `model.backbone.lora.r`)."})
    blocks: int = field(default=8, metadata={"help": "Backbone blocks its clients run and adapt: the first N (at most `model.backbone.layers`)."})
    speed: float = field(default=1.0, metadata={"help": "Compute speed relative to the machine that runs the simulation: simulated compute = measured seconds / speed."})
    uplink_mbps: float = field(default=10.0, metadata={"help": "Uplink bandwidth in Mbit/s: simulated upload = bytes * 8 / (uplink_mbps * 1e6)."})
    availability: Availability = field(default="always", metadata={"help": f"One of {', '.join(get_args(Availability))}: online every round, during `hours_on` of each simulated day, independently with probability 1 - `dropout` per round, or never (its clients never train but are still evaluated: a fleet of only the capable devices)."})
    hours_on: list[int] = field(default_factory=list, metadata={"help": "daily: hours of the client's local day (0-23) in which it can train."})
    stagger: bool = field(default=True, metadata={"help": "daily: shift each client's day by a seeded whole number of hours (time zones, habits), so the tier does not go on and off all at once."})
    dropout: float = field(default=0.0, metadata={"help": "dropout: probability in [0, 1) that a client is offline in a round, drawn per client and round."})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise _FieldError(str(self.name), "name", f"must be a non-empty string; got {self.name!r}.")

        def bad(key: str, expected: str) -> _FieldError:
            return _FieldError(self.name, key, f"must be {expected}; got {getattr(self, key)!r}.")

        if self.share is not None and self.clients is not None:
            raise _FieldError(self.name, "clients", "cannot be given with `share`: give a share of the clients or "
                                                    "an explicit list, not both.")
        if self.share is not None and not (_number(self.share) and 0 < self.share <= 1):
            raise bad("share", "in (0, 1]")
        if self.clients is not None:
            ids = self.clients
            if not ids or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in ids) or len(set(ids)) != len(ids):
                raise bad("clients", "a non-empty list of distinct partition ids (integers >= 0)")
        for key in ("rank", "blocks"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "a positive integer")
        for key in ("speed", "uplink_mbps"):
            if not (_number(getattr(self, key)) and getattr(self, key) > 0):
                raise bad(key, "a positive number")
        if self.availability not in get_args(Availability):
            raise bad("availability", f"one of {', '.join(get_args(Availability))}")
        if self.availability == "daily":
            h = self.hours_on
            if not h or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 23 for x in h) or len(set(h)) != len(h):
                raise bad("hours_on", "a non-empty list of distinct hours 0-23 for `availability: daily`")
        elif self.hours_on:
            raise _FieldError(self.name, "hours_on", f"applies to `availability: daily`; this tier is `{self.availability}`.")
        if not (_number(self.dropout) and 0 <= self.dropout < 1):
            raise bad("dropout", "a probability in [0, 1)")
        if self.dropout and self.availability != "dropout":
            raise _FieldError(self.name, "dropout", f"applies to `availability: dropout`; this tier is `{self.availability}`.")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


TIERS: Registry[TierConfig] = Registry("device tier")
"""Built-in tiers. Ranks and depths follow issue 20. Flagship is fedhar's default model (rank 8,
8 blocks). A watch runs 2 blocks at rank 2. A budget phone sits between. The speeds and
bandwidths are order-of-magnitude **assumptions**, not measurements:

- speed is relative to the machine that measures compute, taken to be one laptop/desktop core.
  A flagship phone's big core is about that fast. A budget phone's small in-order cores
  (Cortex-A53/A55 class) are several times slower; 0.25 is assumed. A watch SoC is slower
  again; 0.05 is assumed.
- uplink: phones on LTE/5G or Wi-Fi upload at roughly 5-20 Mbit/s (median mobile upload speeds
  are around 10 Mbit/s). A watch uploads through its phone over Bluetooth LE, below about
  1 Mbit/s in practice.

Availability is ``always`` in every built-in, so that a tier changes only compute by default. An
availability study sets it. For example ``{base: budget_phone, availability: daily, hours_on:
[22, 23, 0, 1, 2, 3, 4, 5]}`` trains only overnight. Deployed FL trains only while the device
is idle, charging and on an unmetered network, which mostly means at night (Bonawitz et al.,
"Towards Federated Learning at Scale", MLSys 2019)."""

for _t in (
    TierConfig("flagship", rank=8, blocks=8, speed=1.0, uplink_mbps=20.0),
    TierConfig("budget_phone", rank=4, blocks=4, speed=0.25, uplink_mbps=5.0),
    TierConfig("watch", rank=2, blocks=2, speed=0.05, uplink_mbps=1.0),
):
    TIERS.register(_t.name, _t)


# ------------------------------------------------------------------- parsing, assignment
def parse_tiers(specs: Sequence[str | Mapping[str, Any] | TierConfig], where: str = "federated.tiers") -> list[TierConfig]:
    """Tiers from names of built-ins, mappings of fields (optionally ``base: <name>`` plus
    overrides), or ready tiers. Field errors name ``<where>[i].<field>``. The tiers must have
    distinct names, given shares may add up to at most 1 (exactly 1 when every tier has one),
    and explicit client lists must not overlap."""
    tiers: list[TierConfig] = []
    for i, spec in enumerate(specs):
        try:
            tiers.append(named_or_mapping(spec, TIERS, TierConfig, "device tier", f"{where}[{i}]"))
        except _FieldError as exc:
            raise ConfigError(f"`{where}[{i}].{exc.key}` {exc.problem}") from None
    if not tiers:
        raise ConfigError(f"`{where}` is empty: list at least one tier ({', '.join(TIERS.names())}, or a mapping).")
    seen: dict[str, int] = {}
    owner: dict[int, int] = {}
    for i, t in enumerate(tiers):
        if t.name in seen:
            raise ConfigError(f"`{where}[{i}].name` is `{t.name}`, as is `{where}[{seen[t.name]}].name`; tier names must differ.")
        seen[t.name] = i
        for c in t.clients or []:
            if c in owner:
                raise ConfigError(f"`{where}[{i}].clients` and `{where}[{owner[c]}].clients` both list client {c}; "
                                  "a client belongs to one tier.")
            owner[c] = i
    shares = [t.share for t in tiers if t.share is not None]
    open_tiers = [t for t in tiers if t.share is None and t.clients is None]
    total = sum(shares)
    if not open_tiers and shares and abs(total - 1) > SHARE_TOLERANCE:
        raise ConfigError(f"`{where}[*].share` must add up to 1; got {total:g} "
                          f"({', '.join(f'{t.name} {t.share:g}' for t in tiers if t.share is not None)}).")
    if open_tiers and total > 1 - SHARE_TOLERANCE:
        raise ConfigError(f"`{where}[*].share` add up to {total:g}, leaving nothing for the tiers without a share "
                          f"({', '.join(t.name for t in open_tiers)}).")
    return tiers


def tier_shares(tiers: Sequence[TierConfig]) -> list[float]:
    """Each tier's share of the unlisted clients. Tiers with neither a share nor a client list
    split the remainder equally. Listed tiers get 0."""
    given = sum(t.share for t in tiers if t.share is not None)
    open_count = sum(t.share is None and t.clients is None for t in tiers)
    rest = (1 - given) / open_count if open_count else 0.0
    return [t.share if t.share is not None else (0.0 if t.clients is not None else rest) for t in tiers]


def assign_tiers(tiers: Sequence[TierConfig], num_clients: int, seed: int, where: str = "federated.tiers") -> list[TierConfig]:
    """The tier of each partition id ``0..num_clients-1``.

    Listed clients get their tier. The others are shuffled from the run seed and cut in order
    into share-sized runs. Counts use the largest-remainder rounding, so they add up to the
    number of unlisted clients.
    """
    tiers = list(tiers)
    out: list[TierConfig | None] = [None] * num_clients
    for i, t in enumerate(tiers):
        for c in t.clients or []:
            if c >= num_clients:
                raise ConfigError(f"`{where}[{i}].clients` lists client {c}, but the run has {num_clients} clients "
                                  f"(ids 0..{num_clients - 1}).")
            out[c] = t
    rest = [c for c in range(num_clients) if out[c] is None]
    shares = tier_shares(tiers)
    if rest and not any(shares):
        raise ConfigError(f"`{where}`: clients {rest[:5]}{'...' if len(rest) > 5 else ''} are in no tier's `clients`, "
                          "and no tier takes a share of the rest.")
    if not rest and any(shares):
        named = [t.name for t, s in zip(tiers, shares) if s]
        raise ConfigError(f"`{where}`: every client is listed in some tier's `clients`, so the tiers with a share "
                          f"({', '.join(named)}) would get none.")
    exact = [s * len(rest) for s in shares]
    counts = [int(math.floor(x)) for x in exact]
    for i in sorted(range(len(tiers)), key=lambda i: (counts[i] - exact[i], i))[: len(rest) - sum(counts)]:
        counts[i] += 1
    order = np.random.default_rng(derive_seed(seed, "tiers")).permutation(rest)
    start = 0
    for t, n in zip(tiers, counts):
        for c in order[start:start + n]:
            out[int(c)] = t
        start += n
    return out  # type: ignore[return-value]  # every slot is filled above


# ----------------------------------------------------------------------- availability
def available(tier: TierConfig, client: int, server_round: int, seed: int, hours_per_round: float = 1.0) -> bool:
    """Whether ``client`` of ``tier`` is online in ``server_round`` (1-based).

    ``daily``: round ``t`` starts at simulated hour ``(t - 1) * hours_per_round``, plus the client's
    seeded offset of 0-23 h when ``stagger`` is on. The client is online when that hour of its
    local day is in ``hours_on``. ``dropout``: an independent draw per (client, round) from the
    run seed. ``never``: offline for training in every round (evaluation still reaches it).
    """
    if tier.availability in ("always", "never"):
        return tier.availability == "always"
    if tier.availability == "dropout":
        u = np.random.default_rng(derive_seed(seed, "available", client, server_round)).random()
        return bool(u >= tier.dropout)
    offset = derive_seed(seed, "day_offset", client) % 24 if tier.stagger else 0
    hour = int(math.floor((server_round - 1) * hours_per_round + offset)) % 24
    return hour in tier.hours_on


# ----------------------------------------------------------------------- simulated time
def client_round_time(compute_s: float, tier: TierConfig, upload_bytes: int) -> float:
    """Simulated seconds a client of ``tier`` needs for a round: its measured compute over the
    tier's speed, plus its upload over the tier's uplink. The download is not counted: downlinks
    are usually several times faster than uplinks, and the server sends while clients wait."""
    if compute_s < 0 or upload_bytes < 0:
        raise FederationError(f"Compute time and upload size must be >= 0; got {compute_s} s, {upload_bytes} bytes.")
    return compute_s / tier.speed + upload_bytes * 8 / (tier.uplink_mbps * 1e6)


class Stopwatch:
    """Measures a client's compute seconds with an injectable clock (tests pass a fake one)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._start = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self.clock() - self._start


@dataclass(frozen=True)
class StaleUpdate:
    """A straggler's update that arrives in a later round: its origin, how late, and its weight factor."""

    from_round: int
    staleness: int
    weight: float


@dataclass
class RoundTiming:
    """What one simulated round did."""

    server_round: int
    start_s: float
    duration_s: float
    on_time: list[int]
    """Clients whose update arrived before the deadline."""
    stragglers: list[int]
    """Clients past the deadline this round: dropped, or pending under ``stale``."""
    stale: dict[int, StaleUpdate] = field(default_factory=dict)
    """Earlier stragglers' updates that arrived during this round, to aggregate with a weight factor."""
    expired: list[int] = field(default_factory=list)
    """Pending updates dropped this round because they grew staler than ``max_staleness``."""
    client_s: dict[int, float] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


class RoundClock:
    """The simulated wall clock of a federation with a round deadline.

    A round starts when the previous one ends. It ends when every client has reported, or at the
    deadline, whichever comes first. A round with no client selected lasts the deadline (no time
    without one). Clients past the deadline are
    stragglers. Under ``drop`` their update is lost. Under ``stale`` it is kept. It joins the
    first round that is still open when it arrives, with weight factor
    ``1 / (1 + staleness)``, where staleness is the number of rounds it is late. Until then the
    client is busy and must not be selected (:meth:`busy`). With no deadline every client is on
    time and a round lasts as long as its slowest client.
    """

    def __init__(self, deadline_s: float | None, stragglers: StragglerPolicy = "drop",
                 max_staleness: int | None = None) -> None:
        if deadline_s is not None and not (_number(deadline_s) and deadline_s > 0):
            raise ConfigError(f"`federated.round_deadline_s` must be positive or null; got {deadline_s!r}.")
        if stragglers not in get_args(StragglerPolicy):
            raise ConfigError(f"`federated.stragglers` must be one of {', '.join(get_args(StragglerPolicy))}; got {stragglers!r}.")
        if max_staleness is not None and max_staleness < 1:
            raise ConfigError(f"`federated.max_staleness` must be at least 1 or null; got {max_staleness!r}.")
        self.deadline_s, self.policy, self.max_staleness = deadline_s, stragglers, max_staleness
        self.now = 0.0
        self._pending: dict[int, tuple[int, float]] = {}  # client -> (round it trained in, arrival time)
        self.history: list[RoundTiming] = []

    def busy(self) -> set[int]:
        """Stragglers whose late update has not arrived yet."""
        return set(self._pending)

    def round(self, server_round: int, client_s: Mapping[int, float]) -> RoundTiming:
        """Close ``server_round``, given each selected client's simulated seconds (:func:`client_round_time`)."""
        clash = sorted(set(client_s) & set(self._pending))
        if clash:
            raise FederationError(f"Round {server_round}: clients {clash} are still computing a late update "
                                  "from an earlier round; leave them out of the selection (RoundClock.busy()).")
        start, d = self.now, self.deadline_s
        on_time = sorted(c for c, t in client_s.items() if d is None or t <= d)
        late = sorted(c for c in client_s if c not in on_time)
        # The server waits for every reply, up to the deadline; with nobody selected it waits
        # out the deadline (so pending late updates can still arrive), or no time without one.
        duration = d if d is not None and (late or not client_s) else max(client_s.values(), default=0.0)
        end = start + duration
        timing = RoundTiming(server_round, start, duration, on_time, late, client_s=dict(client_s))
        for c, (origin, arrival) in sorted(self._pending.items()):
            staleness = server_round - origin
            if arrival <= end:
                timing.stale[c] = StaleUpdate(origin, staleness, 1.0 / (1 + staleness))
                del self._pending[c]
            elif self.max_staleness is not None and staleness >= self.max_staleness:
                timing.expired.append(c)
                del self._pending[c]
        if self.policy == "stale":
            for c in late:
                self._pending[c] = (server_round, start + client_s[c])
        self.now = end
        self.history.append(timing)
        return timing


def time_to_reach(end_s: Sequence[float], scores: Sequence[float], target: float) -> float | None:
    """Simulated seconds until a round's score first reaches ``target`` (None: never)."""
    return next((t for t, s in zip(end_s, scores) if s >= target), None)
