"""Each robust rule (``federated.strategy.name``), built by make_strategy and guarded as in a run, on
hand-made updates: nine honest clients near 1.0 and two that send huge values. The robust
aggregate stays near 1.0 where FedAvg's is dragged away."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedhar.exceptions import ConfigError
from fedhar.federated.config import FederatedConfig, StrategyConfig
from fedhar.federated.strategy import RoundRecorder, make_strategy, robust_kwargs

TEMPLATE = {"w": (2, 3), "b": (3,)}
N, OUTLIERS, HUGE = 11, (3, 7), 1000.0


@pytest.fixture(autouse=True)
def task_identity():
    """Messages need a run id, as inside a real ServerApp (Flower sets it the same way)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield


def updates() -> dict[int, dict[str, np.ndarray]]:
    """Partition id -> update: honest ones 1.0 + N(0, 0.01^2) per entry, the outliers ~HUGE."""
    rng = np.random.default_rng(0)
    out = {}
    for pid in range(N):
        centre = HUGE * (1 + 0.1 * pid) if pid in OUTLIERS else 1.0
        out[pid] = {k: (centre + 0.01 * rng.standard_normal(shape)).astype(np.float32) for k, shape in TEMPLATE.items()}
    return out


def replies(ups: dict[int, dict[str, np.ndarray]]) -> list[Message]:
    """Fresh messages (FedTrimmedAvg pops the arrays out of the ones it aggregates), in reverse
    order: the guard sorts them by partition id."""
    msgs = []
    for pid in reversed(range(N)):
        content = RecordDict({"arrays": ArrayRecord({k: torch.from_numpy(v.copy()) for k, v in ups[pid].items()}),
                              "metrics": MetricRecord({"num-examples": 10, "partition-id": pid, "train_loss": 1.0})})
        msgs.append(Message(content=content, dst_node_id=0, message_type="train"))
    return msgs


def aggregate(name: str, **strategy) -> tuple[dict[str, np.ndarray], RoundRecorder]:
    cfg = FederatedConfig(strategy=StrategyConfig(name=name, **strategy))
    s = make_strategy(cfg, num_clients=N)
    rec = RoundRecorder()
    s.setup(rec, TEMPLATE, round_offset=0, seed=0)
    arrays, _ = s.aggregate_train(1, replies(updates()))
    assert arrays is not None, f"{name} skipped the round"
    return {k: v.numpy() for k, v in arrays.items()}, rec


def honest() -> list[dict[str, np.ndarray]]:
    return [u for pid, u in updates().items() if pid not in OUTLIERS]


def test_fedavg_is_dragged_by_the_outliers():
    agg, rec = aggregate("fedavg")
    assert all((v > 100).all() for v in agg.values()) and rec.rows[1]["clients"] == N


@pytest.mark.parametrize("name, strategy", [
    ("fedmedian", {}),
    ("fedtrimmedavg", {"trim_beta": 0.2}),  # cuts int(0.2 x 11) = 2 from each end
    ("krum", {"num_malicious": 2}),
    ("multikrum", {"num_malicious": 2}),
    ("bulyan", {"num_malicious": 2}),  # 4f + 3 = 11 replies
])
def test_robust_aggregate_stays_near_the_honest_value(name, strategy):
    agg, rec = aggregate(name, **strategy)
    assert type(make_strategy(FederatedConfig(strategy=StrategyConfig(name=name, **strategy)), N)).__name__.lower().endswith(name)
    assert set(agg) == set(TEMPLATE) and all(np.abs(v - 1.0).max() < 0.05 for v in agg.values()), agg
    assert rec.rows[1]["clients"] == N and rec.rows[1]["failures"] == 0


def test_krum_picks_one_honest_update():
    agg, _ = aggregate("krum", num_malicious=2)
    picked = [u for u in honest() if all(np.array_equal(agg[k], u[k]) for k in TEMPLATE)]
    assert len(picked) == 1


def test_multikrum_averages_exactly_the_honest_updates():
    agg, _ = aggregate("multikrum", num_malicious=2)  # num_to_select 0: replies minus f = the 9 honest ones
    for k in TEMPLATE:
        assert np.allclose(agg[k], np.mean([u[k] for u in honest()], axis=0), atol=1e-6)


def test_fedtrimmedavg_with_too_small_a_cut_lets_an_outlier_through():
    """Both outliers sit on the same side: cutting one per end (beta 0.1) is not enough, two is."""
    agg, _ = aggregate("fedtrimmedavg", trim_beta=0.1)
    assert all((v > 50).all() for v in agg.values())


@pytest.mark.parametrize("name, f, clients, needed", [
    ("krum", 2, 6, "more than 6"), ("multikrum", 1, 4, "more than 4"), ("bulyan", 2, 10, "at least 11"),
    ("bulyan", 1, 6, "at least 7"),
])
def test_too_few_clients_for_the_robust_rule_is_refused(name, f, clients, needed):
    cfg = FederatedConfig(strategy=StrategyConfig(name=name, num_malicious=f))
    message = (rf"`federated.strategy.name: {name}` with `num_malicious: {f}` needs {needed} "
               rf"clients per round; a round samples {clients}\.")
    with pytest.raises(ConfigError, match=message):
        robust_kwargs(cfg, clients)
    with pytest.raises(ConfigError, match=message):
        make_strategy(cfg, clients)
    robust_kwargs(cfg, clients + 1)  # one more client is enough


def test_the_sampled_count_is_what_the_rule_is_checked_against():
    """fraction_train 0.5 of 14 clients samples 7: Bulyan with f=1 fits, with f=2 it does not."""
    ok = FederatedConfig(fraction_train=0.5, strategy=StrategyConfig(name="bulyan", num_malicious=1))
    assert robust_kwargs(ok, 14) == {"num_malicious_nodes": 1}
    bad = FederatedConfig(fraction_train=0.5, strategy=StrategyConfig(name="bulyan", num_malicious=2))
    with pytest.raises(ConfigError, match="a round samples 7"):
        robust_kwargs(bad, 14)
