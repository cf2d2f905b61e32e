"""The federated continual client runs the ordinary client's round: FedProx's proximal term,
fault injection and personal parts apply to it as to any client; what it cannot run is refused
by a config check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedhar.config import derive
from fedhar.continual.federated import ContinualFederatedTask
from fedhar.exceptions import ConfigError
from fedhar.federated.personal import load_personal
from fedhar.federated.task import InjectedFault, get_task

from continual_helpers import tiny_continual_config as _cfg


def _task(tmp_path, **federated) -> ContinualFederatedTask:
    """A two-client federated continual task on the tiny scenario, one round per phase."""
    cfg = _cfg(mode="federated", strategies=[{"name": "ewc", "fisher_samples": 16, "fisher_batch_size": 16}],
               federated={"clients": 2, "rounds_per_phase": 1, "stagger_rounds": 0, "state_dir": str(tmp_path / "clients")})
    cfg = derive(cfg, {"federated": {"task": "continual", "local_epochs": 2, **federated}, "train.lr": 0.01})
    task = get_task(cfg)
    assert isinstance(task, ContinualFederatedTask)  # federated.task picks the class (entry point)
    return task


def _distance(a, b):
    return sum(float(((a[k] - torch.as_tensor(np.asarray(b[k]))) ** 2).sum()) for k in a)


def test_proximal_term_keeps_the_continual_update_near_global(tmp_path):
    task = _task(tmp_path)
    state = task.initial_state()
    free, metrics, n = task.train_client(state, pid=0, server_round=1, proximal_mu=0.0)
    prox, _, _ = task.train_client(state, pid=0, server_round=1, proximal_mu=50.0)
    assert metrics["phase"] == 0 and n == len(task.experience(0, 0).train)
    assert _distance(prox, state) < 0.5 * _distance(free, state)


def test_end_of_phase_keeps_strategy_state_and_ewc_penalises_the_next_phase(tmp_path):
    task = _task(tmp_path)
    state = task.initial_state()
    task.train_client(state, pid=1, server_round=1)  # one round per phase: phase 0 ends here
    strategy, extra = task.load_client(1)
    assert [e["index"] for e in strategy.experiences] == [0] and strategy.fisher and len(extra["rows"]) == 1
    _, metrics, _ = task.train_client(state, pid=1, server_round=2)
    assert metrics["phase"] == 1
    strategy, extra = task.load_client(1)
    assert [e["index"] for e in strategy.experiences] == [0, 1] and [r["round"] for r in extra["rounds"]] == [1, 2]


@pytest.mark.parametrize("mode", ["raise", "nan", "shape"])
def test_faults_are_injected_in_continual_federated_mode(tmp_path, mode):
    task = _task(tmp_path, faults={"clients": [1], "rounds": [2], "mode": mode})
    state = task.initial_state()
    good, _, _ = task.train_client(state, pid=1, server_round=1)  # not a faulty round
    assert all(torch.isfinite(v).all() and v.shape == state[k].shape for k, v in good.items())
    if mode == "raise":
        with pytest.raises(InjectedFault, match="client 1 fails in round 2"):
            task.train_client(state, pid=1, server_round=2)
        assert [r["round"] for r in task.load_client(1)[1]["rounds"]] == [1]  # the failed round left no trace
        return
    bad, _, _ = task.train_client(state, pid=1, server_round=2)
    first = next(iter(bad))
    if mode == "nan":
        assert torch.isnan(bad[first]).all()
    else:
        assert bad[first].shape == (*state[first].shape, 2)


def test_personal_parts_stay_on_the_continual_client(tmp_path):
    task = _task(tmp_path, personal_parts=["head"], state_dir=str(tmp_path / "personal"))
    state = task.initial_state()
    head = [k for k in state if k in task.personal_keys]
    assert head and len(head) < len(state)
    new, _, _ = task.train_client(state, pid=0, server_round=1)
    assert all(torch.equal(new[k], state[k]) for k in head)  # the reply carries the global head back
    assert any(not torch.equal(new[k], state[k]) for k in state if "lora" in k)  # the shared parts trained
    saved = load_personal(task.personal_path(0))
    assert set(saved) == set(head) and any(not torch.equal(saved[k], state[k]) for k in head)
    # federated evaluation scores the client's own head, not the global one
    own, _ = task.evaluate_client(state, 0)
    glob = task.evaluate_state(state, task.client_data(0)[1])
    assert own["loss"] != pytest.approx(glob["loss"])
    # and the continual client's accuracy row was measured with its own head too
    assert len(task.load_client(0)[1]["rows"]["0"]) == task.phases


def test_config_checks_refuse_what_the_continual_task_cannot_run(tmp_path):
    with pytest.raises(ConfigError, match=r"`adapters` is not supported with `continual.mode: federated`"):
        _cfg(mode="federated", strategies=[{"name": "naive"}, {"name": "adapters"}])
    cfg = _cfg(mode="federated", strategies=[{"name": "naive"}, {"name": "replay"}])
    with pytest.raises(ConfigError, match=r"`federated.task: continual` trains one strategy; `continual.strategies` lists 2"):
        derive(cfg, {"federated.task": "continual", "continual.federated.state_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"needs `continual.federated.state_dir`"):
        derive(cfg, {"federated.task": "continual", "continual.strategies": [{"name": "naive"}]})


def test_partition_and_round_keys_are_refused_not_overridden_in_federated_mode():
    from fedhar.checks import run_checks

    cfg = _cfg(mode="federated", strategies=[{"name": "naive"}])
    run_checks(cfg, "continual")  # the defaults pass
    for key, value in (("federated.partition", "dataset"), ("federated.rounds", 9), ("federated.local_test_fraction", 0.0)):
        with pytest.raises(ConfigError, match=rf"`continual.mode: federated` sets `{key}` itself"):
            run_checks(derive(cfg, {key: value}), "continual")
    with pytest.raises(ConfigError, match=r"run `fedhar study continual"):
        run_checks(cfg, "simulate")
