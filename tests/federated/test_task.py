"""The pure client task: order-independent seeds, FedProx's client-side proximal term, and the
task registry that ``federated.task`` names."""

import pytest
import torch

from fedhar.exceptions import ConfigError
from fedhar.federated.task import FederatedTask, get_task, pooled_normaliser, task_class


def _distance(a, b):
    return sum(float(((a[k] - b[k]) ** 2).sum()) for k in a)


def test_client_result_independent_of_execution_order(smoke_config):
    cfg = smoke_config()
    first = FederatedTask(cfg)
    state = first.initial_state()
    direct, _, _ = first.train_client(state, pid=2, server_round=3)
    other = FederatedTask(cfg)
    other.train_client(state, pid=1, server_round=3)  # another client ran first in this process
    after, _, _ = other.train_client(state, pid=2, server_round=3)
    assert all(torch.equal(direct[k], after[k]) for k in direct)
    again, _, _ = first.train_client(state, pid=2, server_round=4)  # a new round gets a new seed
    assert not all(torch.equal(direct[k], again[k]) for k in direct)


def test_proximal_term_keeps_update_near_global(smoke_config):
    cfg = smoke_config(federated={"local_epochs": 3}, train={"lr": 0.01})
    task = FederatedTask(cfg)
    state = task.initial_state()
    free, _, _ = task.train_client(state, pid=0, server_round=1, proximal_mu=0.0)
    prox, _, _ = task.train_client(state, pid=0, server_round=1, proximal_mu=50.0)
    assert _distance(prox, state) < 0.5 * _distance(free, state)


def test_pooled_normaliser_is_exact(smoke_config):
    task = FederatedTask(smoke_config())
    stats = [task.local_stats(pid) for pid in range(task.num_clients)]
    mean, std = pooled_normaliser(stats)
    X = torch.cat([torch.from_numpy(task.client_data(p)[0].X) for p in range(task.num_clients)]).double()
    assert torch.allclose(torch.from_numpy(mean).double(), X.mean(dim=(0, 2)), atol=1e-4)
    assert torch.allclose(torch.from_numpy(std).double(), X.std(dim=(0, 2), unbiased=False), atol=1e-4)


def test_federated_task_names_a_registered_class(smoke_config):
    assert type(get_task(smoke_config())) is FederatedTask  # federated.task: default
    # other layers register theirs as `fedhar.tasks` entry points (pyproject.toml), which Ray
    # workers and SuperNodes see without importing them first
    continual = task_class("continual")
    assert issubclass(continual, FederatedTask) and continual.__module__ == "fedhar.continual.federated"
    with pytest.raises(ConfigError, match=r"Unknown federated task `sideways` \(in `federated.task`\). Valid choices: continual, default"):
        get_task(smoke_config(federated={"task": "sideways"}))


def test_round_learning_rate_schedule_falls_over_the_rounds():
    """`federated.round_lr: cosine`: train.lr in round 1, the floor's share in the last round, falling between;
    constant leaves it alone; a floor outside (0, 1] is refused."""
    from fedhar.exceptions import ConfigError
    from fedhar.federated.config import FederatedConfig
    from fedhar.federated.task import round_lr_factor

    cos = FederatedConfig(rounds=5, round_lr="cosine", round_lr_floor=0.1)
    factors = [round_lr_factor(cos, r) for r in range(1, 6)]
    assert factors[0] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(factors, factors[1:])) and factors[2] == pytest.approx(0.55)
    assert {round_lr_factor(FederatedConfig(rounds=5), r) for r in range(1, 6)} == {1.0}
    with pytest.raises(ConfigError, match="round_lr_floor"):
        FederatedConfig(round_lr="cosine", round_lr_floor=0.0)
