"""Tiered clients (`federated.tiers`): each trains its tier's rank on its tier's blocks, under
`shared_a` never trains A and sends only B, and reports compute seconds, upload bytes and tier."""

import pytest
import torch

from fedhar.federated.lora_aggregation import block_index, shared_a_matrix
from fedhar.federated.task import FederatedTask
from fedhar.federated.tiered import state_bytes

FLEET = [{"base": "flagship", "rank": 4, "blocks": 2, "clients": [0, 1]},
         {"base": "watch", "blocks": 1, "clients": [2, 3]}]


def _lora(state, part):
    return {k: v for k, v in state.items() if f".lora_{part}." in k}


@pytest.fixture
def shared(smoke_config):
    task = FederatedTask(smoke_config(federated={"tiers": FLEET}))
    return task, task.initial_state()


def test_shared_a_clients_train_their_rank_and_depth_and_send_only_b(shared):
    task, glob = shared
    assert task.fleet.rule == "shared_a" and task.num_clients == 4
    sent = {}
    for pid, rank, blocks in ((0, 4, 2), (2, 2, 1)):
        view = task.fleet.slice_for(glob, pid)
        assert not _lora(view, "A") and all(v.shape[1] == rank for v in _lora(view, "B").values())
        reply, metrics, n = task.train_client(view, pid, server_round=1)
        assert set(reply) == set(view) and n > 0
        assert {block_index(k) for k in _lora(reply, "B")} == set(range(blocks))
        assert metrics["compute-seconds"] > 0 and metrics["upload-bytes"] == state_bytes(reply)
        assert metrics["tier-index"] == (0 if pid == 0 else 1)
        assert any(not torch.equal(reply[k], view[k]) for k in _lora(view, "B"))  # B trained
        model = task.client_model(pid)
        for k, a in _lora(model.trainable_state(), "A").items():  # A is the shared one, untouched
            module = k.split(".lora_A.")[0]
            assert torch.equal(a, shared_a_matrix(0, module, a.shape[1], 4)[:rank])
        sent[pid] = metrics["upload-bytes"]
    assert sent[2] < sent[0]
    metrics, n = task.evaluate_client(task.fleet.slice_for(glob, 2), 2)
    assert n > 0 and 0 <= metrics["macro_f1"] <= 1


def test_global_state_starts_from_the_shared_a(shared):
    task, glob = shared
    for k, a in _lora(glob, "A").items():
        assert torch.equal(a, shared_a_matrix(0, k.split(".lora_A.")[0], a.shape[1], 4))


def test_zero_pad_clients_send_a_and_b_at_their_rank(smoke_config):
    task = FederatedTask(smoke_config(federated={"tiers": FLEET, "lora_aggregation": "zero_pad"}))
    view = task.fleet.slice_for(task.initial_state(), 3)
    reply, metrics, _ = task.train_client(view, 3, server_round=1)
    assert set(reply) == set(view) and all(v.shape[0] == 2 for v in _lora(reply, "A").values())
    assert any(not torch.equal(reply[k], view[k]) for k in _lora(view, "A"))  # A trains here


def test_homogeneous_clients_report_no_device_metrics(smoke_config):
    task = FederatedTask(smoke_config())
    assert task.fleet is None and task.client_model(0) is task.model
    _, metrics, _ = task.train_client(task.initial_state(), 0, server_round=1)
    assert not {"compute-seconds", "upload-bytes", "tier-index"} & set(metrics)
