"""GuardedStrategy on mock replies: bad updates never reach the global model."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.error import Error

from fedhar.federated.config import FederatedConfig, StrategyConfig
from fedhar.federated.strategy import RoundRecorder, load_strategy_state, make_strategy, strategy_state

TEMPLATE = {"w": (2, 3), "b": (3,)}


@pytest.fixture(autouse=True)
def task_identity():
    """Messages need a run id, as inside a real ServerApp (Flower sets it the same way)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield


def reply(w: float, n: int = 10, pid: int = 0, shape=(2, 3)):
    content = RecordDict({"arrays": ArrayRecord({"w": torch.full(shape, w), "b": torch.full((3,), w)}),
                          "metrics": MetricRecord({"num-examples": n, "partition-id": pid, "train_loss": 1.0})})
    return Message(content=content, dst_node_id=0, message_type="train")


def error_reply():
    msg = Message(content=RecordDict(), dst_node_id=0, message_type="train")
    return Message(Error(code=0, reason="boom"), reply_to=msg)


def make(name="fedavg", min_train=1):
    s = make_strategy(FederatedConfig(strategy=StrategyConfig(name=name), min_train_clients=min_train), num_clients=4)
    rec = RoundRecorder()
    s.setup(rec, TEMPLATE, round_offset=0, seed=0)
    return s, rec


def test_bad_replies_left_out_and_counted():
    # Prepare
    s, rec = make()
    replies = [reply(1.0, 10, 0), reply(3.0, 30, 1), reply(float("nan"), 100, 2), reply(9.0, 100, 3, shape=(3, 2)),
               error_reply()]
    # Execute
    arrays, _ = s.aggregate_train(1, replies)
    # Assert: weighted mean of the two good updates only
    w = arrays["w"].numpy()
    assert np.allclose(w, (1.0 * 10 + 3.0 * 30) / 40)
    row = rec.rows[1]
    assert row["clients"] == 2 and row["failures"] == 3
    assert any("non-finite" in r for r in row["failure_reasons"])
    assert any("wrong shape" in r for r in row["failure_reasons"])
    assert any("boom" in r for r in row["failure_reasons"])
    assert row["bytes_up"] == sum(r.content["arrays"].count_bytes() for r in replies[:4])


def test_too_few_valid_updates_skips_aggregation():
    s, rec = make(min_train=2)
    arrays, metrics = s.aggregate_train(1, [reply(1.0), reply(float("nan"))])
    assert arrays is None and metrics is None and rec.rows[1]["skipped"]


def test_round_offset_and_fedadam_state_round_trip():
    s, rec = make("fedadam")
    s.round_offset = 4
    init = ArrayRecord({"w": torch.zeros(2, 3), "b": torch.zeros(3)})
    s.current_arrays = {k: v.numpy() for k, v in init.items()}
    s.aggregate_train(1, [reply(1.0), reply(2.0, pid=1)])
    assert 5 in rec.rows and 1 not in rec.rows
    state = strategy_state(s)
    assert {k.split("/")[0] for k in state} == {"m_t", "v_t"}
    fresh, _ = make("fedadam")
    load_strategy_state(fresh, state, init)
    assert all(np.array_equal(fresh.m_t[k], s.m_t[k]) for k in s.m_t)


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedadam", "fedyogi", "fedavgm"])
def test_every_configured_strategy_builds(name):
    s, _ = make(name)
    assert type(s).__name__.lower().endswith(name)


class FourNodes:
    """The one Grid call a strategy makes while configuring a round."""

    def get_node_ids(self):
        return [11, 12, 13, 14]


def test_client_config_reaches_every_message_and_is_counted():
    from flwr.app import ConfigRecord

    s, rec = make()
    s.client_config = ConfigRecord({"fedhar-config": "x" * 5000})
    arrays = ArrayRecord({"w": torch.zeros(2, 3), "b": torch.zeros(3)})
    banner = ConfigRecord({"fedhar-config": "<added to each message>"})
    train = list(s.configure_train(1, arrays, banner, FourNodes()))
    evaluate = list(s.configure_evaluate(1, arrays, ConfigRecord(dict(banner)), FourNodes()))
    assert len(train) == 4 and len(evaluate) == 4
    assert all(m.content["config"]["fedhar-config"] == "x" * 5000 for m in train + evaluate)
    assert train[0].content["config"]["server-round"] == 1 and dict(banner) == {"fedhar-config": "<added to each message>"}
    sent = sum(m.content["arrays"].count_bytes() + m.content["config"].count_bytes() for m in train + evaluate)
    assert rec.rows[1]["bytes_down"] == sent > 8 * 5000


def test_min_clients_above_the_client_count_are_lowered_with_a_warning(caplog):
    from fedhar.federated.strategy import min_client_warnings

    cfg = FederatedConfig(min_train_clients=6, min_available_clients=3, min_evaluate_clients=5)
    with caplog.at_level("WARNING"):
        s = make_strategy(cfg, num_clients=4)
    assert (s.min_train_nodes, s.min_available_nodes, s.min_evaluate_nodes) == (4, 3, 4)
    expected = ["`federated.min_train_clients` is 6 but the run has only 4 clients; 4 is used.",
                "`federated.min_evaluate_clients` is 5 but the run has only 4 clients; 4 is used."]
    assert sorted(min_client_warnings(cfg, 4)) == sorted(expected)
    assert sorted(r.getMessage() for r in caplog.records if r.levelname == "WARNING") == sorted(expected)
    assert min_client_warnings(FederatedConfig(min_evaluate_clients=9, local_test_fraction=0.0), 4) == []


class ShuffledNodes:
    """Twelve nodes whose ids (drawn anew by every federation) map to partitions 0..11."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [int(i) for i in rng.choice(10**9, size=12, replace=False)]
        self.partitions = {node: pid for pid, node in enumerate(self.ids)}
        rng.shuffle(self.ids)

    def get_node_ids(self):
        return list(self.ids)


def _sampled_partitions(grid: ShuffledNodes, partitions: dict | None) -> list[int]:
    s = make_strategy(FederatedConfig(fraction_train=0.25, min_train_clients=1), num_clients=12)
    s.setup(RoundRecorder(), TEMPLATE, round_offset=0, seed=0, partitions=partitions)
    arrays = ArrayRecord({"w": torch.zeros(2, 3), "b": torch.zeros(3)})
    from flwr.app import ConfigRecord

    return sorted(grid.partitions[m.metadata.dst_node_id] for m in s.configure_train(1, arrays, ConfigRecord(), grid))


def test_seeded_sampling_picks_the_same_partitions_whatever_ids_the_nodes_got():
    """Flower samples from grid.get_node_ids(); with the node -> partition map the same seed picks
    the same clients in two federations whose nodes got different ids (without it, it did not)."""
    a, b = ShuffledNodes(1), ShuffledNodes(2)
    picked = _sampled_partitions(a, a.partitions)
    assert len(picked) == 3 and picked == _sampled_partitions(b, b.partitions)
    draws = {tuple(_sampled_partitions(ShuffledNodes(k), None)) for k in range(6)}
    assert len(draws) > 1  # the failure this guards against: node ids decided which clients trained
