"""Byzantine clients for robustness studies (``federated.attack``): who attacks, and what they send.

Pure functions, so that a client (which applies the attack in
:meth:`~fedhar.federated.task.FederatedTask.train_client`) and the server (which records each
round's attackers in the results) compute the same answer from the config and the run seed alone.

- ``label_flip``: the attacker trains on permuted labels (:func:`flip_labels`) and sends the honest
  update of that poisoned training.
- ``sign_flip``: sends ``global - scale * (new - global)``: its update reversed and magnified.
- ``gaussian``: sends ``global + N(0, scale^2)`` per entry: noise instead of an update.
- ``free_rider``: sends the global state back: it claims its examples but contributes nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.config import AttackKind, FederatedConfig
from fedhar.federated.task import derive_seed

UPDATE_ATTACKS = ("sign_flip", "gaussian", "free_rider")
"""Attacks that transform the state a client sends (label_flip poisons its training instead)."""


def attack_count(fraction: float, num_clients: int) -> int:
    """How many of ``num_clients`` attack: ``round(fraction * num_clients)`` (Python's rounding), at
    least 1 when ``fraction > 0``, at most every client."""
    if fraction <= 0:
        return 0
    return min(num_clients, max(1, round(fraction * num_clients)))


def attackers(cfg: FederatedConfig, seed: int, num_clients: int, server_round: int) -> list[int]:
    """The partition ids (sorted) that attack in ``server_round``.

    Drawn from the run ``seed`` alone, so every client and the server agree without talking: the
    same clients every round, or a fresh draw per round with ``attack.resample``. Empty when
    ``attack.kind`` is none or the round is not one of ``attack.rounds`` (empty: every round).
    """
    a = cfg.attack
    if num_clients < 1:
        raise FederationError(f"attackers need at least one client; got num_clients={num_clients}.")
    if a.kind == "none" or (a.rounds and server_round not in a.rounds):
        return []
    parts = (seed, "attack", server_round) if a.resample else (seed, "attack")
    rng = np.random.default_rng(derive_seed(*parts))
    chosen = rng.choice(num_clients, size=attack_count(a.fraction, num_clients), replace=False)
    return sorted(int(p) for p in chosen)


def _tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))


def poison_update(kind: AttackKind, global_state: dict, new_state: dict, scale: float, seed: int) -> dict:
    """What an attacker of an update attack sends instead of ``new_state`` (a new dict, in
    ``new_state``'s key order; neither input is modified).

    ``sign_flip``: ``global - scale * (new - global)``; ``gaussian``: ``global + N(0, scale^2)`` per
    entry, seeded by ``seed`` and the key; ``free_rider``: a copy of the global state. Keys whose
    value did not change in local training (personal parts, which go back as the global values)
    and non-float tensors are sent as they are, so only what the client trained carries the attack.
    """
    if kind not in UPDATE_ATTACKS:
        raise ConfigError(f"`federated.attack.kind: {kind}` is not an update attack; expected one of "
                          f"{', '.join(UPDATE_ATTACKS)} (label_flip poisons the training labels instead).")
    if scale <= 0:
        raise ConfigError(f"`federated.attack.scale` must be positive; got {scale}.")
    missing = [k for k in new_state if k not in global_state]
    if missing:
        raise FederationError(f"cannot poison the update: the global state lacks {', '.join(missing[:5])}.")
    out: dict[str, torch.Tensor] = {}
    for key, value in new_state.items():
        new, old = _tensor(value), _tensor(global_state[key])
        if kind == "free_rider":
            out[key] = old.clone()
        elif not new.is_floating_point() or torch.equal(new, old.to(new.dtype)):
            out[key] = new.clone()
        elif kind == "sign_flip":
            base = old.to(new.dtype)
            out[key] = base - scale * (new - base)
        else:  # gaussian
            gen = torch.Generator().manual_seed(derive_seed(seed, "gaussian", key))
            noise = torch.randn(new.shape, generator=gen, dtype=torch.float32) * scale
            out[key] = (old.to(torch.float32) + noise).to(new.dtype)
    return out


def flip_labels(y: np.ndarray, num_classes: int, seed: int | None = None) -> np.ndarray:
    """``y`` with every class id mapped to another one (a new array; ``y`` is kept).

    The map is one cycle through all ``num_classes`` classes: with ``seed=None`` the shift
    ``c -> (c + 1) mod K``, otherwise the cycle visits the classes in a seeded order. Either way it
    is a permutation with no fixed point, so every label changes and no class disappears; the
    attacking clients use the run seed, so they all flip alike in every round.
    """
    if num_classes < 2:
        raise ConfigError(f"`federated.attack.kind: label_flip` needs at least 2 classes; the data has {num_classes}.")
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise FederationError(f"label_flip: labels must be class ids in 0..{num_classes - 1}; got {y.min()}..{y.max()}.")
    order = np.arange(num_classes) if seed is None else np.random.default_rng(seed).permutation(num_classes)
    mapping = np.empty(num_classes, dtype=np.int64)
    mapping[order] = np.roll(order, -1)  # order[i] -> order[i + 1]
    return mapping[y].astype(y.dtype, copy=False)

