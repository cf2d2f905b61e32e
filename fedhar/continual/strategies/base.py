"""The strategy interface: what a continual strategy adds around the one training loop.

A strategy never runs its own loop. :meth:`Strategy.train_experience` is

1. ``begin_experience`` -> the training set and loss penalties for this experience (replay mixes
   in its buffer, EWC adds its quadratic penalty, the adapter library loads an adapter);
2. :func:`fedhar.training.loop.fit` on them;
3. ``end_experience`` (fill the buffer, compute the Fisher, store the adapter).

A Flower client that sees one phase over several rounds calls ``begin_experience`` + its round's
``fit`` every round and ``finish_experience`` (``end_experience`` + bookkeeping) once, when the
phase ends (:mod:`fedhar.continual.federated`); ``train_experience`` does all three for the
simulation, where one experience is trained once.

Evaluation is separate (:mod:`fedhar.continual.protocol`); a strategy only gets
``before_eval(model, X, cfg)`` to prepare the model for a test stream (the adapter library
picks an adapter there).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from fedhar.continual.detector import ConfidenceDriftDetector, window_confidence
from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, DataError
from fedhar.training.config import TrainConfig
from fedhar.training.loop import Penalty, fit


@runtime_checkable
class ExperienceLike(Protocol):
    """One phase of a stream: what :mod:`fedhar.drift` produces (any object with these attributes).

    All experiences of a stream share the same channels and class list.
    """

    index: int
    name: str
    train: WindowDataset
    test: WindowDataset
    info: dict


def to_numpy_state(state: dict) -> dict[str, np.ndarray]:
    """A ``{name: tensor}`` state as float32/int numpy copies (what strategies keep and persist)."""
    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu()
            v = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        out[k] = np.array(v, copy=True)
    return out


def state_nbytes(state: dict) -> int:
    return int(sum(np.asarray(v).nbytes for v in state.values()))


class Strategy:
    """Base class: naive behaviour, bookkeeping (seen classes, experiences), optional detector.

    Parameters
    ----------
    detector : ConfidenceDriftDetector, optional
        Drift detector this strategy keeps (its state persists with the strategy's).
    """

    name = "strategy"

    def __init__(self, detector: ConfidenceDriftDetector | None = None) -> None:
        self.detector = detector
        self.seen_classes: set[int] = set()
        self.experiences: list[dict] = []

    def options(self) -> dict:
        """Constructor options (reported with results, checked when state is loaded)."""
        return {}

    # ------------------------------------------------------------------ training
    def begin_experience(self, model, exp: ExperienceLike, cfg: TrainConfig, seed: int) -> tuple[WindowDataset, list[Penalty]]:
        """Prepare ``model``; return the windows to fit on and the loss penalties."""
        return exp.train, []

    def end_experience(self, model, exp: ExperienceLike, cfg: TrainConfig, seed: int) -> None:
        """After fitting on ``exp``: update what the strategy keeps."""

    def train_experience(self, model, exp: ExperienceLike, cfg: TrainConfig, seed: int) -> list[dict]:
        """begin -> :func:`fit` -> end; returns fit's per-epoch rows tagged with the experience."""
        self._check(model, exp)
        train, penalties = self.begin_experience(model, exp, cfg, seed)
        history = []
        if len(train):
            history = fit(model, train, cfg, seed=seed, penalties=penalties, desc=f"{self.name} {exp.name}")
        self.finish_experience(model, exp, cfg, seed, len(train))
        for row in history:
            row.update({"experience": int(exp.index), "fit_windows": len(train)})
        return history

    def finish_experience(self, model, exp: ExperienceLike, cfg: TrainConfig, seed: int, fit_windows: int) -> None:
        """``end_experience`` and the bookkeeping (seen classes, experiences) once ``exp`` is learned."""
        self.end_experience(model, exp, cfg, seed)
        self.seen_classes |= {int(c) for c in np.unique(exp.train.y)}
        self.experiences.append({"index": int(exp.index), "name": str(exp.name), "windows": len(exp.train),
                                 "fit_windows": int(fit_windows)})

    @staticmethod
    def _check(model, exp: ExperienceLike) -> None:
        for attr in ("channels", "classes"):
            have, want = tuple(getattr(exp.train, attr)), tuple(getattr(model, attr))
            if have != want:
                raise DataError(
                    f"experience `{exp.name}`: its {attr} {list(have)} differ from the model's {list(want)}; "
                    "every experience of a stream must share the model's channels and class list."
                )

    # ------------------------------------------------------------------ evaluation
    def before_eval(self, model, X: np.ndarray, cfg: TrainConfig) -> None:
        """Prepare ``model`` for the test windows ``X`` (default: nothing)."""

    def eval_info(self) -> dict | None:
        """What ``before_eval`` decided last (e.g. the adapter chosen), for reports; default None."""
        return None

    # ------------------------------------------------------------------ drift detector
    def calibrate_detector(self, model, X: np.ndarray, cfg: TrainConfig) -> None:
        """Reset the detector's reference to the model's confidences on ``X`` (current phase)."""
        if self.detector is not None:
            self.detector.reset(window_confidence(model, X, cfg))

    def observe(self, model, X: np.ndarray, cfg: TrainConfig) -> bool:
        """Feed the confidences on the incoming windows ``X`` (time order) to the detector."""
        if self.detector is None:
            return False
        return self.detector.update(window_confidence(model, X, cfg))

    # ------------------------------------------------------------------ memory and state
    def memory(self) -> dict:
        """Bytes the strategy keeps on the device besides the model."""
        return {"buffer_windows": 0, "buffer_bytes": 0, "adapter_bytes": 0, "extra_bytes": 0}

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        """Nested dict of numpy arrays and JSON values; see :mod:`fedhar.continual.state`."""
        return {
            "name": self.name,
            "options": self.options(),
            "seen_classes": sorted(self.seen_classes),
            "experiences": [dict(e) for e in self.experiences],
            "detector": None if self.detector is None else self.detector.state_dict(),
            "strategy": self._state(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ConfigError(
                f"saved continual state belongs to strategy `{state.get('name')}`, but this run uses `{self.name}`."
            )
        self.seen_classes = {int(c) for c in state["seen_classes"]}
        self.experiences = [dict(e) for e in state["experiences"]]
        if state["detector"] is None:
            self.detector = None
        else:
            self.detector = ConfidenceDriftDetector.from_state(state["detector"])
        self._load_state(state["strategy"])

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


class Naive(Strategy):
    """Fine-tune on each experience's windows only (the lower bound: forgets freely)."""

    name = "naive"

