"""Differential privacy for a federation, built from Flower's own pieces (``flwr[dp]``).

``federated.privacy.mode`` picks where the noise comes from:

- ``central_server``: ``DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping`` clips every update
  on the server and adds Gaussian noise to their mean;
- ``central_client``: ``DifferentialPrivacyClientSide{Fixed,Adaptive}Clipping`` on the server adds
  the noise, ``fixedclipping_mod`` / ``adaptiveclipping_mod`` clip on the clients;
- ``local``: ``LocalDpMod`` on every client clips and noises its own update; no server wrapper.

With fixed clipping Flower's ``RdpAccountant`` counts epsilon with no sampling amplification: each
round is one Gaussian release of the sampled clients' mean (``fraction_train`` below 1 samples a fixed
number of them), charged as if every client took part, so the epsilon is an upper bound that
sampling does not lower. Its analysis holds for
FedAvg's plain mean with equal client weights; the server gives every accepted update weight 1
(:data:`DP_WEIGHT_KEY`) rather than trusting a weight a client sends. The adaptive wrappers and
local DP have no accountant; their results say so instead of printing an epsilon.

DP noise is drawn from fresh OS entropy (:func:`fresh_entropy`): fedhar seeds numpy's global
generator from the run seed for training, and noise predictable from a seed in config.yaml would
protect nothing. Private runs therefore do not repeat bit for bit.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.mod import LocalDpMod, adaptiveclipping_mod, fixedclipping_mod
from flwr.serverapp import NeighboringRelation, PrivacyConfig as FlowerPrivacyConfig, SamplingMethod
from flwr.serverapp.strategy import (DifferentialPrivacyClientSideAdaptiveClipping,
                                     DifferentialPrivacyClientSideFixedClipping,
                                     DifferentialPrivacyServerSideAdaptiveClipping,
                                     DifferentialPrivacyServerSideFixedClipping)

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.config import FederatedConfig, PrivacyConfig

CENTRAL = ("central_server", "central_client")
DP_WEIGHT_KEY = "dp-weight"
"""The reply metric the inner FedAvg weights by under central DP; the server sets it to 1 on every
accepted update, since Flower's accountant assumes the plain mean of the clipped updates."""
ACCOUNTANT = "Flower RdpAccountant (Renyi DP; no sampling amplification; add-or-remove-one client)"

_WRAPPERS: dict[tuple[str, str], type] = {
    ("central_server", "fixed"): DifferentialPrivacyServerSideFixedClipping,
    ("central_server", "adaptive"): DifferentialPrivacyServerSideAdaptiveClipping,
    ("central_client", "fixed"): DifferentialPrivacyClientSideFixedClipping,
    ("central_client", "adaptive"): DifferentialPrivacyClientSideAdaptiveClipping,
}


def fresh_entropy() -> None:
    """Reseed numpy's global generator (Flower's DP noise source) from the OS, so that the noise
    never follows from the run seed that training put there."""
    np.random.seed()


def is_central(p: PrivacyConfig) -> bool:
    return p.mode in CENTRAL


# ------------------------------------------------------------------ calibration
def epsilon_after(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon at ``delta`` after ``rounds`` un-amplified Gaussian releases (RDP, add-or-remove-one)."""
    from dp_accounting import dp_event, rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(noise_multiplier), rounds))
    return float(accountant.get_epsilon(delta))


def calibrate_noise(target_epsilon: float, rounds: int, delta: float, tol: float = 1e-4) -> float:
    """The smallest noise multiplier (within ``tol``) whose ``rounds`` releases spend at most
    ``target_epsilon`` at ``delta``: dp-accounting's calibration on the accountant Flower uses."""
    from dp_accounting import dp_event, mechanism_calibration, rdp

    if target_epsilon <= 0 or rounds <= 0 or not 0 < delta < 1:
        raise ConfigError(f"calibrate_noise needs target_epsilon > 0, rounds > 0 and delta in (0, 1); got "
                          f"{target_epsilon}, {rounds}, {delta}.")
    z = float(mechanism_calibration.calibrate_dp_mechanism(
        rdp.RdpAccountant, lambda s: dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(s), rounds),
        target_epsilon, delta, tol=tol))
    while epsilon_after(z, rounds, delta) > target_epsilon:  # stay on the safe side of the tolerance
        z += tol
    return z


def noise_multiplier(fcfg: FederatedConfig) -> tuple[float, bool]:
    """(noise multiplier, calibrated?): the given one, or one calibrated for ``target_epsilon`` over
    the run's ``federated.rounds``."""
    p = fcfg.privacy
    if p.target_epsilon is not None:
        return calibrate_noise(p.target_epsilon, fcfg.rounds, p.delta), True
    return float(p.noise_multiplier or 0.0), False


def make_accountant(p: PrivacyConfig, population: int):
    """Flower's RDP accountant for ``population`` clients, crediting no amplification from sampling."""
    from flwr.serverapp import RdpAccountant

    return RdpAccountant(FlowerPrivacyConfig(target_delta=p.delta, population_size=population,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION,
                                             max_epsilon=p.max_epsilon))


# ------------------------------------------------------------------ server side
def dp_wrapper(fcfg: FederatedConfig, num_clients: int, num_sampled: int) -> tuple[type, dict[str, Any]]:
    """The Flower DP wrapper class of a central mode and its keyword arguments (besides the inner
    strategy); refuses a budget that no single round fits."""
    p = fcfg.privacy
    cls = _WRAPPERS[(p.mode, p.clipping)]
    z, _ = noise_multiplier(fcfg)
    if p.clipping == "adaptive":
        return cls, dict(noise_multiplier=z, num_sampled_clients=num_sampled, initial_clipping_norm=p.clipping_norm,
                         target_clipped_quantile=p.target_clipped_quantile, clip_norm_lr=p.clip_norm_lr)
    kwargs: dict[str, Any] = dict(noise_multiplier=z, clipping_norm=p.clipping_norm, num_sampled_clients=num_sampled)
    if z > 0:
        kwargs["accountant"] = make_accountant(p, num_clients)
        if p.max_epsilon is not None and (first := epsilon_after(z, 1, p.delta)) > p.max_epsilon:
            raise ConfigError(f"`federated.privacy.max_epsilon: {p.max_epsilon}` is below what one round spends "
                              f"(epsilon {first:.3g} at noise multiplier {z:.3g}, delta {p.delta:g}); raise it, or "
                              "raise the noise.")
    return cls, kwargs


def build_wrapper(cls: type, inner, kwargs: dict[str, Any]):
    """``cls(inner, **kwargs)``, with Flower's argument errors as a ConfigError naming the keys."""
    try:
        return cls(inner, **kwargs)
    except ValueError as exc:
        hint = ""
        if "clipped_count_stddev" in str(exc):
            n = kwargs["num_sampled_clients"]
            hint = (f" With {n} clients per round Flower's adaptive clipping spends part of the noise on the count "
                    f"of clipped updates and needs noise_multiplier < {n / 10:g} (2 x clients / 20); use more "
                    "clients, less noise, or `clipping: fixed`.")
        raise ConfigError(f"`federated.privacy` (noise_multiplier {kwargs['noise_multiplier']:g}, "
                          f"{kwargs['num_sampled_clients']} clients per round): Flower refused it: {exc}{hint}") from None


def round_privacy(strategy) -> dict[str, Any]:
    """What a round row records of a central DP strategy: cumulative epsilon and its delta (fixed
    clipping with the accountant) and the clipping norm in use (it moves under adaptive clipping)."""
    row: dict[str, Any] = {"clipping_norm": float(strategy.clipping_norm)}
    if getattr(strategy, "accountant", None) is not None:
        spent = strategy.accountant.get_privacy_spent()
        row.update(epsilon=float(spent.epsilon), delta=float(spent.delta))
    return row


def privacy_state(strategy) -> dict[str, Any] | None:
    """What a checkpoint keeps of a central DP strategy: the accountant's ledger and the clipping norm."""
    if not hasattr(strategy, "clipping_norm") or not hasattr(strategy, "noise_multiplier"):
        return None
    accountant = getattr(strategy, "accountant", None)
    return {"clipping_norm": float(strategy.clipping_norm),
            "accountant": accountant.state_dict() if accountant is not None else None}


def load_privacy_state(strategy, state: dict[str, Any] | None, rnd: int) -> None:
    """Restore :func:`privacy_state` after round ``rnd`` so that epsilon continues where it was; a
    checkpoint without it cannot continue an accounted run (epsilon would restart at 0)."""
    accountant = getattr(strategy, "accountant", None)
    if state is None:
        if accountant is not None and rnd > 0:
            raise FederationError(f"the checkpoint after round {rnd} holds no privacy-accountant state, so epsilon "
                                  "cannot continue from it; start the run afresh.")
        return
    if hasattr(strategy, "clipping_norm"):
        strategy.clipping_norm = float(state["clipping_norm"])
    if accountant is not None and state.get("accountant") is not None:
        try:
            accountant.load_state_dict(state["accountant"])
        except ValueError as exc:
            raise FederationError(f"the checkpoint's privacy accountant does not fit this run's "
                                  f"`federated.privacy` ({exc}).") from None


# ------------------------------------------------------------------ client side
def local_noise_std(p: PrivacyConfig) -> float:
    """LocalDpMod's noise: the classic Gaussian mechanism, sensitivity x sqrt(2 ln(1.25/delta)) / epsilon."""
    return p.local_sensitivity * math.sqrt(2 * math.log(1.25 / p.delta)) / p.local_epsilon


def _after_training(call_next: Callable[[Message, Context], Message]) -> Callable[[Message, Context], Message]:
    def inner(msg: Message, context: Context) -> Message:
        out = call_next(msg, context)
        fresh_entropy()  # training seeded numpy from the run seed; the local noise must not follow it
        return out

    return inner


def client_mod(p: PrivacyConfig) -> Callable[[Message, Context, Callable], Message] | None:
    """The Flower mod a client's train handler runs under ``p``, or None."""
    if p.mode == "central_client":
        return fixedclipping_mod if p.clipping == "fixed" else adaptiveclipping_mod
    if p.mode == "local":
        local = LocalDpMod(p.clipping_norm, p.local_sensitivity, p.local_epsilon, p.delta)
        return lambda msg, context, call_next: local(msg, context, _after_training(call_next))
    return None


# ------------------------------------------------------------------ reporting
def round_columns(fcfg: FederatedConfig) -> tuple[str, ...]:
    """Privacy columns of metrics.csv and results.json's rounds."""
    p = fcfg.privacy
    if is_central(p):
        return ("epsilon", "delta", "clipping_norm", "skipped_reason")
    if p.mode == "local":
        return ("local_epsilon", "delta")
    return ()


def round_values(fcfg: FederatedConfig, row: dict) -> dict[str, Any]:
    p = fcfg.privacy
    if p.mode == "local":  # each aggregated round is one release per client, not composed here
        return {"local_epsilon": p.local_epsilon if row.get("clients") else None, "delta": p.delta}
    return {k: row.get(k) for k in round_columns(fcfg)}


def privacy_report(fcfg: FederatedConfig, strategy=None, rounds: list[dict] | None = None) -> dict[str, Any]:
    """results.json's ``privacy`` section: what was protected, how, and the epsilon spent."""
    p, rounds = fcfg.privacy, rounds or []
    if p.mode == "none":
        return {"mode": "none"}
    out: dict[str, Any] = {"mode": p.mode, "delta": p.delta, "stopped_by_budget": False}
    if p.mode == "local":
        done = sum(1 for r in rounds if r.get("clients"))
        out.update(local_epsilon=p.local_epsilon, local_sensitivity=p.local_sensitivity, clipping_norm=p.clipping_norm,
                   noise_std=local_noise_std(p), epsilon=None, basic_composition_bound=done * p.local_epsilon,
                   note=(f"Local DP (LocalDpMod): each client's update is clipped to {p.clipping_norm:g} and noised "
                         f"(std {local_noise_std(p):.4g}) before it leaves the client: one ({p.local_epsilon:g}, "
                         f"{p.delta:g})-DP release per client per round, by the classic Gaussian-mechanism bound, which "
                         "holds for local_epsilon <= 1 and a local_sensitivity that bounds how far two clipped updates "
                         f"differ (up to 2 x clipping_norm). No accountant composes the rounds: basic composition bounds "
                         f"a client that trained in all {done} aggregated rounds by epsilon {done * p.local_epsilon:g}, "
                         f"delta {done * p.delta:g}."))
        return out
    z = getattr(strategy, "noise_multiplier", None)
    source = "given"
    if p.target_epsilon is not None:
        source = f"calibrated for target_epsilon {p.target_epsilon:g} over {fcfg.rounds} rounds"
    elif p.clipping == "adaptive":
        source = (f"given {p.noise_multiplier:g}; Flower's adaptive clipping raises the update's noise to this so "
                  "that, with the noisy count of clipped updates, the release as a whole has the given multiplier")
    out.update(clipping=p.clipping, noise_multiplier=z, target_epsilon=p.target_epsilon, max_epsilon=p.max_epsilon,
               noise_multiplier_source=source,
               clipping_norm=getattr(strategy, "clipping_norm", p.clipping_norm),
               skipped_rounds=[r["round"] for r in rounds if r.get("skipped_reason")])
    accountant = getattr(strategy, "accountant", None)
    if accountant is not None:
        spent = accountant.get_privacy_spent()
        out.update(epsilon=float(spent.epsilon), releases=int(spent.num_releases),
                   accountant=f"{ACCOUNTANT}; population {accountant.config.population_size}")
    else:
        out.update(epsilon=None, note=("Flower's adaptive-clipping wrappers have no accountant: no epsilon is reported"
                                       if p.clipping == "adaptive" else
                                       "noise multiplier 0: updates are clipped but not noised; no privacy guarantee"))
    if (why := getattr(strategy, "stopped_by_budget", None)):
        out.update(stopped_by_budget=True, stop_reason=why)
    return out
