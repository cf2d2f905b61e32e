"""Device tiers: the parser's errors, seeded assignment, availability, and the simulated round
clock (deadline, stragglers, staleness) with a fake clock."""

from collections import Counter

import pytest

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.tiers import (TIERS, RoundClock, Stopwatch, TierConfig, assign_tiers, available,
                                    client_round_time, parse_tiers, tier_shares, time_to_reach)


# ---------------------------------------------------------------------- built-ins, parser
def test_builtin_tiers():
    flagship, phone, watch = (TIERS.get(n) for n in ("flagship", "budget_phone", "watch"))
    assert (flagship.rank, flagship.blocks, watch.rank, watch.blocks) == (8, 8, 2, 2)
    assert watch.rank < phone.rank < flagship.rank and watch.blocks < phone.blocks < flagship.blocks
    assert watch.speed < phone.speed < flagship.speed and watch.uplink_mbps < phone.uplink_mbps < flagship.uplink_mbps
    assert all(t.availability == "always" for t in (flagship, phone, watch))


def test_parse_names_mappings_and_base_overrides():
    tiers = parse_tiers(["watch", {"base": "flagship", "share": 0.5}, {"name": "lab", "clients": [0, 1], "rank": 3}])
    assert [t.name for t in tiers] == ["watch", "flagship_custom", "lab"]
    assert tiers[1].rank == 8 and tiers[1].share == 0.5 and tiers[2].clients == [0, 1]
    assert tier_shares(tiers) == [0.5, 0.5, 0.0]
    tiers[0].rank = 99
    assert TIERS.get("watch").rank == 2  # a copy: the built-in is untouched


@pytest.mark.parametrize("specs, match", [
    ([{"base": "watch", "rank": 0}], r"`federated\.tiers\[0\]\.rank` must be a positive integer; got 0"),
    (["watch", {"base": "flagship", "share": 0.3, "clients": [1]}], r"`federated\.tiers\[1\]\.clients` cannot be given with `share`"),
    ([{"base": "watch", "share": 1.5}], r"`federated\.tiers\[0\]\.share` must be in \(0, 1\]"),
    ([{"base": "watch", "speed": -1}], r"`federated\.tiers\[0\]\.speed` must be a positive number"),
    ([{"base": "watch", "clients": [1, 1]}], r"`federated\.tiers\[0\]\.clients` must be a non-empty list of distinct"),
    ([{"base": "watch", "availability": "daily"}], r"`federated\.tiers\[0\]\.hours_on` must be a non-empty list"),
    ([{"base": "watch", "availability": "daily", "hours_on": [24]}], r"`federated\.tiers\[0\]\.hours_on`.*0-23"),
    ([{"base": "watch", "hours_on": [1]}], r"`federated\.tiers\[0\]\.hours_on` applies to `availability: daily`"),
    ([{"base": "watch", "dropout": 0.2}], r"`federated\.tiers\[0\]\.dropout` applies to `availability: dropout`"),
    ([{"base": "watch", "availability": "dropout", "dropout": 1.0}], r"`federated\.tiers\[0\]\.dropout` must be a probability"),
    ([{"base": "watch", "availability": "sometimes"}], r"`federated\.tiers\[0\]\.availability` must be one of"),
    ([{"base": "watch", "colour": "red"}], r"Unknown key `federated\.tiers\[0\]\.colour`"),
    ([{"name": "x", "rank": "high"}], r"`federated\.tiers\[0\]\.rank` must be an integer"),
    (["phone"], r"Unknown device tier `phone`.*budget_phone, flagship, watch"),
    (["watch", "watch"], r"`federated\.tiers\[1\]\.name` is `watch`, as is `federated\.tiers\[0\]\.name`"),
    ([{"base": "watch", "share": 0.3}, {"base": "flagship", "share": 0.6}], r"must add up to 1; got 0\.9"),
    ([{"base": "watch", "share": 1.0}, "flagship"], r"leaving nothing for the tiers without a share \(flagship\)"),
    ([{"base": "watch", "clients": [0, 3]}, {"base": "flagship", "clients": [3]}],
     r"`federated\.tiers\[1\]\.clients` and `federated\.tiers\[0\]\.clients` both list client 3"),
    ([], "empty"),
])
def test_parser_errors_name_the_dotted_key(specs, match):
    with pytest.raises(ConfigError, match=match):
        parse_tiers(specs)


def test_direct_construction_names_the_tier():
    with pytest.raises(ConfigError, match="`blocks` of device tier `mine` must be a positive integer"):
        TierConfig("mine", blocks=0)


# -------------------------------------------------------------------------- assignment
def test_assignment_is_seeded_and_follows_shares():
    tiers = parse_tiers([{"base": "watch", "share": 0.2}, {"base": "budget_phone", "share": 0.3},
                         {"base": "flagship", "share": 0.5}])
    a = assign_tiers(tiers, 10, seed=1)
    assert Counter(t.name for t in a) == {"watch_custom": 2, "budget_phone_custom": 3, "flagship_custom": 5}
    assert [t.name for t in a] == [t.name for t in assign_tiers(tiers, 10, seed=1)]
    assert len({tuple(t.name for t in assign_tiers(tiers, 10, seed=s)) for s in range(6)}) > 1
    odd = Counter(t.name for t in assign_tiers(tiers, 7, seed=0))  # 1.4, 2.1, 3.5: largest remainders
    assert sum(odd.values()) == 7 and odd["flagship_custom"] == 4 and odd["watch_custom"] == 1


def test_explicit_lists_and_an_equal_split_of_the_rest():
    tiers = parse_tiers([{"base": "watch", "clients": [4, 0]}, "budget_phone", "flagship"])
    a = assign_tiers(tiers, 8, seed=3)
    assert a[0].name == a[4].name == "watch_custom"
    rest = Counter(t.name for i, t in enumerate(a) if i not in (0, 4))
    assert rest == {"budget_phone": 3, "flagship": 3}


def test_assignment_errors():
    with pytest.raises(ConfigError, match=r"`federated\.tiers\[0\]\.clients` lists client 9, but the run has 5 clients"):
        assign_tiers(parse_tiers([{"base": "watch", "clients": [9]}, "flagship"]), 5, seed=0)
    with pytest.raises(ConfigError, match=r"clients \[2, 3\] are in no tier's `clients`"):
        assign_tiers(parse_tiers([{"base": "watch", "clients": [0, 1]}]), 4, seed=0)
    with pytest.raises(ConfigError, match=r"would get none"):
        assign_tiers(parse_tiers([{"base": "watch", "clients": [0, 1]}, "flagship"]), 2, seed=0)


# ------------------------------------------------------------------------ availability
def test_always_and_dropout_availability():
    assert all(available(TIERS.get("flagship"), c, r, seed=0) for c in range(5) for r in range(1, 20))
    tier = TierConfig("flaky", availability="dropout", dropout=0.3)
    draws = [available(tier, c, r, seed=5) for c in range(50) for r in range(1, 41)]
    assert draws == [available(tier, c, r, seed=5) for c in range(50) for r in range(1, 41)]
    assert 0.65 < sum(draws) / len(draws) < 0.75
    assert draws != [available(tier, c, r, seed=6) for c in range(50) for r in range(1, 41)]
    per_client = [sum(available(tier, c, r, seed=5) for r in range(1, 41)) for c in range(50)]
    assert len(set(per_client)) > 3  # independent per client, not one shared coin


def test_a_never_tier_is_offline_every_round():
    tier = TierConfig("shelf", availability="never")
    assert not any(available(tier, c, r, seed=s) for c in range(5) for r in range(1, 50) for s in (0, 1))


def test_daily_availability_follows_the_local_hour():
    night = TierConfig("night", availability="daily", hours_on=[0, 1, 2, 3, 4, 5], stagger=False)
    on = [available(night, 0, r, seed=0) for r in range(1, 26)]
    assert on == [True] * 6 + [False] * 18 + [True]  # round 25 is hour 24 = 0 of the next day
    assert [available(night, 0, r, 0, hours_per_round=6.0) for r in range(1, 6)] == [True, False, False, False, True]
    staggered = TierConfig("night", availability="daily", hours_on=[0, 1, 2, 3, 4, 5])
    patterns = {tuple(available(staggered, c, r, seed=0) for r in range(1, 25)) for c in range(20)}
    assert len(patterns) > 1 and all(sum(p) == 6 for p in patterns)  # shifted days, 6 hours on each


# ----------------------------------------------------------------------- simulated time
class FakeClock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_stopwatch_and_client_round_time_with_a_fake_clock():
    with Stopwatch(FakeClock(100.0, 112.5)) as sw:
        pass
    assert sw.seconds == 12.5
    tier = TierConfig("t", speed=0.5, uplink_mbps=8.0)
    assert client_round_time(sw.seconds, tier, upload_bytes=2_000_000) == pytest.approx(25.0 + 2.0)
    with pytest.raises(FederationError):
        client_round_time(-1.0, tier, 0)


def test_deadline_drops_stragglers():
    clock = RoundClock(deadline_s=30.0, stragglers="drop")
    r1 = clock.round(1, {0: 10.0, 1: 25.0, 2: 40.0})
    assert (r1.on_time, r1.stragglers, r1.start_s, r1.duration_s) == ([0, 1], [2], 0.0, 30.0)
    r2 = clock.round(2, {0: 10.0, 2: 12.0})  # everyone on time: the round ends with the slowest
    assert (r2.on_time, r2.stragglers, r2.start_s, r2.duration_s, r2.stale) == ([0, 2], [], 30.0, 12.0, {})
    assert clock.now == 42.0 and clock.busy() == set()
    assert clock.round(3, {}).duration_s == 30.0  # nobody selected: the server waits out the deadline
    free = RoundClock(deadline_s=None)
    assert free.round(1, {0: 10.0, 1: 400.0}).duration_s == 400.0 and free.history[0].stragglers == []
    assert time_to_reach([t.end_s for t in clock.history], [0.5, 0.9, 0.95], 0.9) == 42.0
    assert time_to_reach([30.0, 42.0], [0.5, 0.6], 0.9) is None


def test_stale_updates_join_a_later_round_with_a_staleness_weight():
    clock = RoundClock(deadline_s=30.0, stragglers="stale")
    r1 = clock.round(1, {0: 10.0, 1: 45.0, 2: 100.0})  # 1 arrives at 45, 2 at 100
    assert r1.stragglers == [1, 2] and clock.busy() == {1, 2}
    with pytest.raises(FederationError, match=r"clients \[1\] are still computing"):
        clock.round(2, {1: 5.0})
    r2 = clock.round(2, {0: 20.0})  # 30 .. 50: client 1's update (t=45) arrives in it
    assert r2.stale.keys() == {1} and r2.stale[1].from_round == 1 and r2.stale[1].weight == pytest.approx(0.5)
    r3 = clock.round(3, {0: 20.0, 1: 20.0})  # 50 .. 70: client 2 is still out
    assert r3.stale == {} and clock.busy() == {2}
    r4 = clock.round(4, {0: 40.0})  # 70 .. 100: straggler 0 this time; client 2 arrives at 100, staleness 3
    assert r4.stale[2].staleness == 3 and r4.stale[2].weight == pytest.approx(0.25) and clock.busy() == {0}


def test_stale_updates_expire_past_max_staleness():
    clock = RoundClock(deadline_s=30.0, stragglers="stale", max_staleness=1)
    clock.round(1, {0: 10.0, 1: 100.0})
    r2 = clock.round(2, {0: 10.0})
    assert r2.expired == [1] and r2.stale == {} and clock.busy() == set()


@pytest.mark.parametrize("kwargs, match", [({"deadline_s": 0.0}, "round_deadline_s"),
                                           ({"deadline_s": 1.0, "stragglers": "wait"}, "stragglers"),
                                           ({"deadline_s": 1.0, "max_staleness": 0}, "max_staleness")])
def test_round_clock_settings_are_checked(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RoundClock(**kwargs)
