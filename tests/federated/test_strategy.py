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
