"""Continual-learning metrics on the accuracy matrix, named as in the literature.

``R[i][j]`` is the score (accuracy, or macro-F1) on phase ``j``'s test data after training
through phase ``i`` (0-based, ``T`` phases). Row ``i`` holds *every* phase, future ones too,
because forward transfer needs ``R[j-1][j]``.

Definitions (``T`` phases, last row ``T-1``):

* **ACC** (average accuracy; Lopez-Paz & Ranzato, 2017, "Gradient Episodic Memory for Continual
  Learning", NeurIPS): ``ACC = 1/T * sum_j R[T-1][j]``.
* **BWT** (backward transfer; Lopez-Paz & Ranzato, 2017):
  ``BWT = 1/(T-1) * sum_{j<T-1} (R[T-1][j] - R[j][j])``; negative is forgetting.
* **Forgetting** (Chaudhry et al., 2018, "Riemannian Walk for Incremental Learning", ECCV):
  ``F = 1/(T-1) * sum_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j])``: the drop from the best score
  ever reached on phase ``j`` to the final one.
* **FWT** (forward transfer; Lopez-Paz & Ranzato, 2017):
  ``FWT = 1/(T-1) * sum_{j>=1} (R[j-1][j] - b[j])`` where ``b[j]`` is a baseline score on phase
  ``j`` (Lopez-Paz & Ranzato use a randomly initialised model; :func:`fedhar.continual.run_stream`
  uses the model *before* training on the stream).

Missing entries: ``NaN`` in ``R`` (or ``b``) means "not evaluated" (e.g. a phase with an empty
test set). Every average is taken over the terms whose inputs are all finite; a metric with no
finite term is ``None``, and so are BWT, forgetting and FWT when ``T == 1`` (nothing to compare)
and FWT without a baseline. ``matrix`` is returned as lists with ``None`` for NaN, so it is valid
JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np


def _mean(terms: Sequence[float]) -> float | None:
    finite = [float(t) for t in terms if np.isfinite(t)]
    return float(np.mean(finite)) if finite else None


def _jsonable(a: np.ndarray) -> list:
    if a.ndim == 1:
        return [float(v) if np.isfinite(v) else None for v in a]
    return [_jsonable(row) for row in a]


def continual_metrics(R: Sequence[Sequence[float]] | np.ndarray, baseline: Sequence[float] | np.ndarray | None = None) -> dict:
    """ACC, BWT, forgetting and FWT of a ``(T, T)`` score matrix (definitions in the module doc).

    Parameters
    ----------
    R : array-like (T, T)
        ``R[i][j]``: score on phase ``j`` after training through phase ``i``; NaN = not evaluated.
    baseline : array-like (T,), optional
        ``b[j]``, the reference score on phase ``j`` for FWT; ``None`` gives ``fwt = None``.

    Returns
    -------
    dict
        ``acc``, ``bwt``, ``forgetting``, ``fwt`` (floats or None), ``T`` and ``matrix``
        (list of lists, None for NaN).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"continual_metrics: R must be a non-empty square (T, T) matrix; got shape {R.shape}.")
    T = R.shape[0]
    b = None
    if baseline is not None:
        b = np.asarray(baseline, dtype=np.float64)
        if b.shape != (T,):
            raise ValueError(f"continual_metrics: baseline must have shape ({T},); got {b.shape}.")
    last = R[T - 1]
    acc = _mean(last)
    if T == 1:
        bwt = forgetting = fwt = None
    else:
        bwt = _mean([last[j] - R[j, j] for j in range(T - 1)])
        terms = []
        for j in range(T - 1):
            past = R[: T - 1, j]
            past = past[np.isfinite(past)]
            terms.append(past.max() - last[j] if past.size else np.nan)
        forgetting = _mean(terms)
        fwt = None if b is None else _mean([R[j - 1, j] - b[j] for j in range(1, T)])
    return {"acc": acc, "bwt": bwt, "forgetting": forgetting, "fwt": fwt, "T": T, "matrix": _jsonable(R)}


@dataclass
class AccuracyMatrix:
    """Accumulates ``R`` for accuracy and macro-F1 (and the FWT baseline) as a stream is evaluated.

    ``record(i, j, m)`` stores ``m["accuracy"]`` and ``m["macro_f1"]`` at ``[i][j]``;
    ``record_baseline(j, m)`` stores the baseline scores of phase ``j``. Unrecorded entries stay
    NaN (see :func:`continual_metrics` for how they are treated).
    """

    T: int
    keys: tuple[str, ...] = ("accuracy", "macro_f1")
    R: dict[str, np.ndarray] = field(init=False)
    baseline: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        if self.T < 1:
            raise ValueError(f"AccuracyMatrix: T must be at least 1; got {self.T}.")
        self.R = {k: np.full((self.T, self.T), np.nan) for k in self.keys}
        self.baseline = {k: np.full(self.T, np.nan) for k in self.keys}

    def _check(self, *idx: int) -> None:
        for i in idx:
            if not 0 <= i < self.T:
                raise IndexError(f"AccuracyMatrix: phase index {i} outside 0..{self.T - 1}.")

    def record(self, i: int, j: int, metrics: Mapping[str, float]) -> None:
        self._check(i, j)
        for k in self.keys:
            v = metrics.get(k)
            self.R[k][i, j] = np.nan if v is None else float(v)

    def record_baseline(self, j: int, metrics: Mapping[str, float]) -> None:
        self._check(j)
        for k in self.keys:
            v = metrics.get(k)
            self.baseline[k][j] = np.nan if v is None else float(v)

    def summary(self) -> dict:
        """``{"accuracy": continual_metrics(...), "macro_f1": continual_metrics(...)}``.

        FWT is None when no baseline was recorded; phases without one are left out of it.
        """
        out = {}
        for k in self.keys:
            b = self.baseline[k]
            out[k] = continual_metrics(self.R[k], b if np.isfinite(b).any() else None)
            out[k]["baseline"] = _jsonable(b)
        return out
