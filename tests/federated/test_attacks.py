"""``federated.attack``: who attacks (seeded, per round) and each attack's signature, on hand-made
states and through :meth:`FederatedTask.train_client` with the tiny config."""

import numpy as np
import pytest
import torch

from fedhar.exceptions import ConfigError
from fedhar.federated import task as task_module
from fedhar.federated.attacks import attack_count, attackers, flip_labels, poison_update
from fedhar.federated.config import AttackConfig, FederatedConfig
from fedhar.federated.task import FederatedTask, derive_seed


def fcfg(**attack) -> FederatedConfig:
    return FederatedConfig(attack=AttackConfig(**{"kind": "sign_flip", "fraction": 0.2, **attack}))


# ------------------------------------------------------------------ who attacks
@pytest.mark.parametrize("fraction, n, expected", [(0.2, 10, 2), (0.3, 10, 3), (0.1, 4, 1), (0.25, 100, 25), (0.9, 3, 3)])
def test_attacker_count(fraction, n, expected):
    chosen = attackers(fcfg(fraction=fraction), seed=0, num_clients=n, server_round=1)
    assert len(chosen) == expected == attack_count(fraction, n)
    assert chosen == sorted(set(chosen)) and all(0 <= p < n for p in chosen)


def test_no_attackers_without_an_attack_or_outside_its_rounds():
    assert attackers(FederatedConfig(), seed=0, num_clients=10, server_round=1) == []
    cfg = fcfg(rounds=[2, 3])
    assert attackers(cfg, 0, 10, 1) == [] and attackers(cfg, 0, 10, 4) == []
    assert len(attackers(cfg, 0, 10, 2)) == 2 and attackers(cfg, 0, 10, 2) == attackers(cfg, 0, 10, 3)


def test_attackers_are_seeded_and_fixed_unless_resampled():
    cfg = fcfg(fraction=0.3)
    first = attackers(cfg, seed=7, num_clients=20, server_round=1)
    assert all(attackers(cfg, 7, 20, r) == first for r in range(1, 11))  # the same clients every round
    assert len({tuple(attackers(cfg, s, 20, 1)) for s in range(8)}) > 1  # another run seed, other clients
    resampled = fcfg(fraction=0.3, resample=True)
    draws = [tuple(attackers(resampled, 7, 20, r)) for r in range(1, 11)]
    assert len(set(draws)) > 1 and all(len(d) == 6 for d in draws)
    assert draws == [tuple(attackers(resampled, 7, 20, r)) for r in range(1, 11)]  # pure: same answer again


# ------------------------------------------------------------------ what they send
def hand_made():
    glob = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([0.5, -0.5]),
            "steps": torch.tensor([3]), "same": torch.tensor([9.0, 9.0])}
    new = {"w": glob["w"] + torch.tensor([[0.5, -1.0], [0.25, 2.0]]), "b": glob["b"] + 1.0,
           "steps": torch.tensor([4]), "same": glob["same"].clone()}
    return glob, new


def test_sign_flip_sends_global_minus_scaled_update():
    glob, new = hand_made()
    kept = {k: v.clone() for k, v in new.items()}
    out = poison_update("sign_flip", glob, new, scale=3.0, seed=0)
    assert torch.equal(out["w"], torch.tensor([[-0.5, 5.0], [2.25, -2.0]]))  # global - 3 x delta, exactly
    assert torch.equal(out["b"], torch.tensor([-2.5, -3.5]))
    assert torch.equal(out["steps"], new["steps"]) and torch.equal(out["same"], glob["same"])
    assert all(torch.equal(new[k], kept[k]) for k in new) and list(out) == list(new)  # input kept, order kept


def test_gaussian_sends_seeded_noise_around_the_global_state():
    glob = {"w": torch.full((200, 500), 0.3), "same": torch.zeros(10), "steps": torch.tensor([1])}
    new = {"w": glob["w"] + 0.01, "same": torch.zeros(10), "steps": torch.tensor([2])}
    out = poison_update("gaussian", glob, new, scale=2.0, seed=5)
    noise = (out["w"] - glob["w"]).double()
    assert abs(float(noise.std()) - 2.0) < 0.02 and abs(float(noise.mean())) < 0.02  # 100k draws: se ~0.006
    assert torch.equal(out["same"], glob["same"]) and torch.equal(out["steps"], new["steps"])
    assert torch.equal(poison_update("gaussian", glob, new, 2.0, seed=5)["w"], out["w"])
    assert not torch.equal(poison_update("gaussian", glob, new, 2.0, seed=6)["w"], out["w"])


def test_free_rider_sends_a_copy_of_the_global_state():
    glob, new = hand_made()
    out = poison_update("free_rider", glob, new, scale=1.0, seed=0)
    assert all(torch.equal(out[k], glob[k]) for k in glob)
    out["w"] += 1.0
    assert torch.equal(glob["w"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # a copy, not the global tensors


def test_poison_update_refuses_what_is_not_an_update_attack():
    glob, new = hand_made()
    with pytest.raises(ConfigError, match=r"`federated.attack.kind: label_flip` is not an update attack"):
        poison_update("label_flip", glob, new, 1.0, 0)


def test_label_flip_changes_every_label_and_is_a_permutation():
    y = np.repeat(np.arange(6), 5)
    for seed in (None, 0, 1, 2):
        flipped = flip_labels(y, 6, seed)
        assert (flipped != y).all()
        mapping = {int(a): int(b) for a, b in zip(y, flipped)}
        assert sorted(mapping.values()) == list(range(6))  # a permutation: no class disappears
        assert np.array_equal(flip_labels(y, 6, seed), flipped)
    assert np.array_equal(flip_labels(y, 6), (y + 1) % 6)
    assert not np.array_equal(flip_labels(y, 6, 0), flip_labels(y, 6, 1))
    assert np.array_equal(y, np.repeat(np.arange(6), 5))  # the input is kept
    with pytest.raises(ConfigError, match="at least 2 classes"):
        flip_labels(np.zeros(3, dtype=np.int64), 1, 0)


# ------------------------------------------------------------------ through the client task
@pytest.fixture
def fake_fit(monkeypatch):
    """Local training replaced by a fixed step (+0.25 on every trainable parameter) that records
    the labels it was given: each attack's signature is then exact and the test takes no training."""
    seen = []

    def fit(model, train, cfg, **_):
        seen.append(train.y.copy())
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.25)
        return [{"train_loss": 0.0}]

    monkeypatch.setattr(task_module, "fit", fit)
    return seen


def _attacked_task(smoke_config, kind, server_round=1, **extra):
    task = FederatedTask(smoke_config(federated={"attack": {"kind": kind, "fraction": 0.5, "scale": 3.0, **extra}}))
    bad = attackers(task.cfg.federated, task.cfg.seed, task.num_clients, server_round)
    good = [p for p in range(task.num_clients) if p not in bad]
    return task, bad[0], good[0]


def test_label_flip_client_trains_on_a_flipped_copy(smoke_config, fake_fit):
    task, bad, good = _attacked_task(smoke_config, "label_flip")
    state = task.initial_state()
    cached = task.client_data(bad)[0].y.copy()
    _, m_bad, _ = task.train_client(state, bad, 1)
    _, m_good, _ = task.train_client(state, good, 1)
    assert np.array_equal(fake_fit[0], flip_labels(cached, task.client_data(bad)[0].num_classes,
                                                   derive_seed(task.cfg.seed, "label_flip")))
    assert (fake_fit[0] != cached).all()
    assert np.array_equal(task.client_data(bad)[0].y, cached)  # the cached windows are untouched
    assert np.array_equal(fake_fit[1], task.client_data(good)[0].y)  # an honest client trains on its labels
    assert (m_bad["attacker"], m_good["attacker"]) == (1.0, 0.0) and task._flip_seed is None


@pytest.mark.parametrize("kind", ["sign_flip", "gaussian", "free_rider"])
def test_update_attacks_through_train_client(smoke_config, fake_fit, kind):
    task, bad, good = _attacked_task(smoke_config, kind)
    state = task.initial_state()
    honest, m_good, _ = task.train_client(state, good, 1)
    sent, m_bad, n = task.train_client(state, bad, 1)
    trained = [k for k in state if not torch.equal(honest[k], state[k])]
    assert trained and all(torch.allclose(honest[k], state[k] + 0.25) for k in trained)
    assert all(torch.equal(sent[k], state[k]) for k in state if k not in trained)
    delta = torch.cat([(sent[k] - state[k]).flatten() for k in trained])
    if kind == "sign_flip":
        assert torch.allclose(delta, torch.full_like(delta, -0.75), atol=1e-5)
    elif kind == "gaussian":
        assert delta.numel() > 2000 and abs(float(delta.std()) - 3.0) < 0.3
    else:
        assert torch.equal(delta, torch.zeros_like(delta))
    assert (m_bad["attacker"], m_good["attacker"], n) == (1.0, 0.0, len(task.client_data(bad)[0]))
    assert np.array_equal(fake_fit[1], task.client_data(bad)[0].y)  # update attacks train on true labels


def test_sign_flip_after_real_local_training(smoke_config):
    """The attacker trains as an honest client would, then reverses and scales its real update."""
    honest_task = FederatedTask(smoke_config())
    task, bad, good = _attacked_task(smoke_config, "sign_flip", server_round=2, rounds=[2])
    state = honest_task.initial_state()
    honest, m, _ = honest_task.train_client(state, bad, 2)
    sent, m_bad, _ = task.train_client(state, bad, 2)
    assert m["attacker"] == 0.0 and m_bad["attacker"] == 1.0
    assert any(not torch.equal(honest[k], state[k]) for k in state)
    assert all(torch.allclose(sent[k], state[k] - 3.0 * (honest[k] - state[k]), atol=1e-5) for k in state)
    off_round, m_off, _ = task.train_client(state, bad, 1)  # not an attack round: honest
    honest_1, _, _ = honest_task.train_client(state, bad, 1)
    assert m_off["attacker"] == 0.0 and all(torch.allclose(off_round[k], honest_1[k]) for k in state)
