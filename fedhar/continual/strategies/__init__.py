"""Continual-learning strategies around the one training loop, and their registry.

``build_strategy(name, options)`` builds one from a config mapping; ``options["detector"]`` may
be ``true`` (default detector), ``null``/``false`` (none) or a mapping of
:class:`~fedhar.continual.detector.ConfidenceDriftDetector` parameters.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from fedhar.continual.detector import ConfidenceDriftDetector
from fedhar.continual.strategies.adapters import RULES, AdapterLibrary, window_signature_features
from fedhar.continual.strategies.base import ExperienceLike, Naive, Strategy, state_nbytes, to_numpy_state
from fedhar.continual.strategies.ewc import EWC
from fedhar.continual.strategies.replay import Replay
from fedhar.exceptions import ConfigError
from fedhar.registry import Registry, check_options

STRATEGIES: Registry[type[Strategy]] = Registry("continual strategy")
for _cls in (Naive, Replay, EWC, AdapterLibrary):
    STRATEGIES.register(_cls.name, _cls)


def strategy_options(name: str) -> list[str]:
    """Valid option names of strategy ``name``."""
    cls = STRATEGIES.get(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def build_detector(spec: Any, where: str = "detector") -> ConfidenceDriftDetector | None:
    """``None``/``False`` -> no detector, ``True`` -> defaults, a mapping -> those parameters."""
    if spec is None or spec is False:
        return None
    if spec is True:
        return ConfidenceDriftDetector()
    if isinstance(spec, ConfidenceDriftDetector):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"`{where}` must be true, false, null or a mapping of detector parameters; got {spec!r}.")
    valid = [p for p in inspect.signature(ConfidenceDriftDetector.__init__).parameters if p != "self"]
    unknown = sorted(set(spec) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option `{where}.{unknown[0]}`. Valid detector options: {', '.join(valid)}.")
    try:
        return ConfidenceDriftDetector(**spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"`{where}`: {exc}") from None


def build_strategy(name: str, options: Mapping[str, Any] | None = None) -> Strategy:
    """Build the registered strategy ``name`` with ``options``; unknown names/options are ConfigErrors."""
    cls = STRATEGIES.get(name, where="continual.strategy")
    options = dict(options or {})
    check_options(options, strategy_options(name), f"continual strategy `{name}`")
    if "detector" in options:
        options["detector"] = build_detector(options["detector"], f"{name}.detector")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"continual strategy `{name}`: invalid options {options}: {exc}") from None


__all__ = [
    "AdapterLibrary", "EWC", "ExperienceLike", "Naive", "RULES", "Replay", "STRATEGIES", "Strategy",
    "build_detector", "build_strategy", "state_nbytes", "strategy_options", "to_numpy_state",
    "window_signature_features",
]
