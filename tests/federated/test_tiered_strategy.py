"""The tiered server on mock replies: each client gets its tier's slice, replies of mixed ranks
and depths are aggregated by the configured rule, and the simulated clock drops or delays
stragglers past the deadline and leaves offline clients out."""

from collections import OrderedDict

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedhar.federated.lora_aggregation import aggregate_lora
from fedhar.federated.strategy import RoundRecorder, make_strategy
from fedhar.federated.tiered import Fleet
from fedhar.federated.config import FederatedConfig
from fedhar.schema import from_mapping

BIG = {"name": "big", "rank": 4, "blocks": 2, "clients": [0, 1], "speed": 1.0, "uplink_mbps": 8.0}
SMALL = {"name": "small", "rank": 2, "blocks": 1, "clients": [2, 3], "speed": 0.5, "uplink_mbps": 1.0}
NODES = {100 + pid: pid for pid in range(4)}
pytestmark = pytest.mark.usefixtures("flower_task_identity")


class Nodes:
    def get_node_ids(self):
        return list(NODES)


def global_state() -> OrderedDict:
    g = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for block in (0, 1):
        state[f"backbone.layers.{block}.q.lora_A.default.weight"] = torch.randn(4, 3, generator=g)
        state[f"backbone.layers.{block}.q.lora_B.default.weight"] = torch.randn(5, 4, generator=g)
    state["head.w"] = torch.randn(2, generator=g)
    return state


def strategy(**changes):
    fcfg = from_mapping(FederatedConfig, {"tiers": [BIG, SMALL], "min_train_clients": 1, **changes})
    fleet = Fleet.of(fcfg, global_rank=4, num_clients=4, seed=0)
    s = make_strategy(fcfg, num_clients=4)
    rec = RoundRecorder()
    glob = fleet.initial(global_state())
    s.setup(rec, {k: tuple(v.shape) for k, v in glob.items()}, round_offset=0, seed=0, partitions=NODES)
    s.use_fleet(fleet, fcfg)
    return s, rec, fleet, glob


def trained(msg: Message, compute_s: float, shift: float = 0.5) -> Message:
    """A client's reply: its slice moved by ``shift`` (less A under shared_a), with its compute seconds."""
    pid = NODES[msg.metadata.dst_node_id]
    state = {k: v + shift * (pid + 1) for k, v in msg.content["arrays"].to_torch_state_dict().items()}
    content = RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(
        {"num-examples": 10 * (pid + 1), "partition-id": pid, "compute-seconds": compute_s, "train_loss": 1.0})})
    return Message(content=content, reply_to=msg)


def test_each_tier_gets_its_slice_and_shared_a_aggregates_exactly():
    s, rec, fleet, glob = strategy()
    msgs = list(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()))
    assert sorted(NODES[m.metadata.dst_node_id] for m in msgs) == [0, 1, 2, 3]
    by_pid = {NODES[m.metadata.dst_node_id]: m for m in msgs}
    small = by_pid[2].content["arrays"]
    assert set(small.keys()) == {"backbone.layers.0.q.lora_B.default.weight", "head.w"}  # no A, no block 1
    assert tuple(small["backbone.layers.0.q.lora_B.default.weight"].shape) == (5, 2)
    assert by_pid[0].content["arrays"].count_bytes() > small.count_bytes()
    replies = [trained(by_pid[pid], compute_s=1.0) for pid in range(4)]
    arrays, metrics = s.aggregate_train(1, replies)
    expected = aggregate_lora(glob, [r.content["arrays"].to_torch_state_dict() for r in replies],
                              [10.0, 20.0, 30.0, 40.0], "shared_a", scales=[1.0, 1.0, 2.0, 2.0]).state
    got = arrays.to_torch_state_dict()
    assert all(torch.allclose(got[k], expected[k]) for k in expected)
    row = rec.rows[1]
    assert row["clients"] == 4 and row["failures"] == 0 and row["stragglers"] == []
    assert row["bytes_up_by_tier"]["big"] > row["bytes_up_by_tier"]["small"] > 0
    # no deadline: the round lasts as long as its slowest client (a small one: 1 s / 0.5 + upload)
    slowest = 1.0 / 0.5 + replies[3].content["arrays"].count_bytes() * 8 / 1e6
    assert row["simulated_seconds"] == pytest.approx(slowest) and row["simulated_end_s"] == pytest.approx(slowest)
    assert "tier-index" not in metrics


def test_a_reply_that_does_not_fit_its_tier_is_left_out():
    s, rec, _, glob = strategy()
    msgs = list(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()))
    wrong = trained(msgs[0], 1.0)
    wrong.content["metrics"]["partition-id"] = 2  # a big client's slice claimed by a small one
    s.aggregate_train(1, [wrong, trained(msgs[1], 1.0)])
    assert rec.rows[1]["failures"] == 1 and "update keys differ" in rec.rows[1]["failure_reasons"][0]


def test_a_straggler_is_busy_then_joins_the_next_round_with_half_weight():
    s, rec, fleet, glob = strategy(round_deadline_s=10.0, stragglers="stale")
    msgs = sorted(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()), key=lambda m: m.metadata.dst_node_id)
    late = {3: 5.5}  # 5.5 s at speed 0.5 is past the 10 s deadline
    arrays, _ = s.aggregate_train(1, [trained(m, late.get(NODES[m.metadata.dst_node_id], 3.0)) for m in msgs])
    first = rec.rows[1]
    assert first["stragglers"] == [3] and first["clients"] == 3 and first["simulated_seconds"] == 10.0
    late_update = trained(msgs[3], 5.5).content["arrays"].to_torch_state_dict()
    msgs2 = sorted(s.configure_train(2, arrays, ConfigRecord(), Nodes()), key=lambda m: m.metadata.dst_node_id)
    assert sorted(NODES[m.metadata.dst_node_id] for m in msgs2) == [0, 1, 2] and rec.rows[2]["busy"] == [3]
    replies2 = [trained(m, 3.0, shift=0.1) for m in msgs2]
    arrays2, _ = s.aggregate_train(2, replies2)
    assert rec.rows[2]["stale"] == [3] and rec.rows[2]["stragglers"] == []
    states = [r.content["arrays"].to_torch_state_dict() for r in replies2] + [late_update]
    expected = aggregate_lora(arrays.to_torch_state_dict(), states, [10.0, 20.0, 30.0, 40.0 * 0.5], "shared_a",
                              scales=[1.0, 1.0, 2.0, 2.0]).state
    got = arrays2.to_torch_state_dict()
    assert all(torch.allclose(got[k], expected[k]) for k in expected)


def test_dropped_stragglers_and_offline_clients_do_not_count():
    night = {**SMALL, "availability": "daily", "hours_on": [22, 23], "stagger": False}
    s, rec, _, glob = strategy(tiers=[BIG, night], round_deadline_s=2.5)
    msgs = list(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()))
    assert rec.rows[1]["unavailable"] == [2, 3] and len(msgs) == 2  # hour 0: the small tier is off
    s.aggregate_train(1, [trained(m, 9.0 if NODES[m.metadata.dst_node_id] == 1 else 1.0) for m in msgs])
    assert rec.rows[1]["stragglers"] == [1] and rec.rows[1]["clients"] == 1


def test_per_depth_parts_are_averaged_over_their_depth_only():
    s, rec, fleet, glob = strategy(tier_parts="per_depth")
    assert set(glob) - set(global_state()) == {"tier_depth_1.head.w"}  # the shallow tier's own head
    assert torch.equal(glob["tier_depth_1.head.w"], glob["head.w"])  # both start alike
    msgs = list(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()))
    by_pid = {NODES[m.metadata.dst_node_id]: m for m in msgs}
    assert set(by_pid[2].content["arrays"].keys()) == {"backbone.layers.0.q.lora_B.default.weight", "head.w"}
    replies = [trained(by_pid[pid], compute_s=1.0) for pid in range(4)]
    got = s.aggregate_train(1, replies)[0].to_torch_state_dict()
    shift = {pid: 0.5 * (pid + 1) for pid in range(4)}  # what each client added; weights 10 (pid + 1)
    deep = (10 * shift[0] + 20 * shift[1]) / 30
    shallow = (30 * shift[2] + 40 * shift[3]) / 70
    assert torch.allclose(got["head.w"], glob["head.w"] + deep)
    assert torch.allclose(got["tier_depth_1.head.w"], glob["tier_depth_1.head.w"] + shallow)
    # block 0's LoRA is still shared by both depths, and the global model's own state has no copies
    assert set(fleet.central(got)) == set(global_state())
    assert set(fleet.depth_parts(got)) == {"tier_depth_1.head.w"}
    sent = {NODES[m.metadata.dst_node_id]: m for m in s.configure_train(2, ArrayRecord(got), ConfigRecord(), Nodes())}
    assert torch.allclose(sent[3].content["arrays"].to_torch_state_dict()["head.w"], got["tier_depth_1.head.w"])
    assert torch.allclose(sent[0].content["arrays"].to_torch_state_dict()["head.w"], got["head.w"])


def test_svd_reports_the_reconstruction_error_per_client_rank():
    s, rec, _, glob = strategy(lora_aggregation="svd")
    msgs = list(s.configure_train(1, ArrayRecord(glob), ConfigRecord(), Nodes()))
    assert all(any(".lora_A." in k for k in m.content["arrays"].keys()) for m in msgs)  # A travels under svd
    s.aggregate_train(1, [trained(m, 1.0) for m in msgs])
    err = rec.rows[1]["reconstruction_error"]
    assert set(err) == {"2", "4"} and err["4"] == pytest.approx(0.0, abs=1e-6) and 0 < err["2"] < 1
