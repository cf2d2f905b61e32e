"""A drift detector on the model's confidence: a Page-Hinkley test over a stream of windows.

The model's max-softmax probability per window is a label-free signal: after a domain shift
(new device, placement, missing sensor) the model is typically less sure of itself. The
detector is fitted on a *reference* batch of confidences (the current phase, held-out windows),
then consumes the per-window confidences of the incoming stream in time order.

Test (Page, 1954; Hinkley, 1971), with the reference mean ``mu`` and standard deviation
``sigma`` known, on standardised and clipped values ``z_t = clip((x_t - mu) / sigma, -c, c)``::

    g_t = -z_t - delta            (direction "decrease"; "increase" uses +z_t)
    m_t = sum_{s<=t} g_s,  M_t = min_{s<=t} m_s (M includes 0)
    alarm when m_t - M_t > lambda  and at least min_samples windows were seen since the last reset

``m_t - M_t`` is the Page-Hinkley statistic (equivalently a one-sided CUSUM,
``S_t = max(0, S_{t-1} + g_t)``). ``delta`` is the tolerated drop in units of the reference
standard deviation (smaller: more sensitive); ``lambda`` (``threshold``) trades detection delay
(about ``lambda / (shift - delta)`` windows for a shift of ``shift`` standard deviations) against
false alarms; ``clip`` keeps the occasional very unsure window from raising an alarm alone.
``direction="both"`` runs the two one-sided tests.

Without a reference (``reset(None)``), the first ``min_samples`` windows of the stream are the
reference (burn-in). After an alarm the statistic restarts from 0 (so a later shift can fire
again) but the reference is kept: a strategy that adapts to the new phase should call
``reset(new_reference)``.

Stream indices are 0-based over every window consumed since the detector was built (they do not
restart on reset), so ``detections`` can be compared with known change points directly.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from fedhar.exceptions import ConfigError

DIRECTIONS = ("decrease", "increase", "both")


def window_confidence(model, X: np.ndarray, cfg=None) -> np.ndarray:
    """Max-softmax probability of ``model`` on each window of ``X`` ``(N, C, T)``, shape ``(N,)``."""
    from fedhar.training.config import TrainConfig
    from fedhar.training.loop import predict_logits

    cfg = cfg or TrainConfig()
    if len(X) == 0:
        return np.zeros(0, dtype=np.float64)
    logits = predict_logits(model, X, cfg.eval_batch_size, cfg.precision).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p.max(axis=1) / p.sum(axis=1)).astype(np.float64)


class ConfidenceDriftDetector:
    """Page-Hinkley drift test on per-window confidences (see the module doc for the test).

    Parameters
    ----------
    delta : float
        Tolerated change, in reference standard deviations, before evidence accumulates.
    threshold : float
        Alarm threshold ``lambda`` on the Page-Hinkley statistic (standardised units).
    min_samples : int
        No alarm before this many windows since the last reset (and the burn-in length when
        there is no reference).
    direction : str
        ``decrease`` (default: confidence drops), ``increase`` or ``both``.
    clip : float
        Standardised values are clipped to ``[-clip, clip]``.
    """

    def __init__(self, delta: float = 0.5, threshold: float = 25.0, min_samples: int = 30,
                 direction: str = "decrease", clip: float = 3.0) -> None:
        if delta < 0 or threshold <= 0 or int(min_samples) < 1 or clip <= 0:
            raise ConfigError(
                "drift detector: need delta >= 0, threshold > 0, min_samples >= 1 and clip > 0; got "
                f"delta={delta}, threshold={threshold}, min_samples={min_samples}, clip={clip}."
            )
        if direction not in DIRECTIONS:
            raise ConfigError(f"drift detector: `direction` must be one of {', '.join(DIRECTIONS)}; got {direction!r}.")
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.min_samples = int(min_samples)
        self.direction = direction
        self.clip = float(clip)
        self.t = 0  # windows consumed since construction
        self.detections: list[int] = []
        self.reset(None)

    # ------------------------------------------------------------------ reference
    def reset(self, reference: np.ndarray | None = None) -> None:
        """Start over with a new reference batch of confidences (``None``: burn-in on the stream)."""
        self.mu: float | None = None
        self.sigma: float | None = None
        self._burn: list[float] = []
        self.since_reset = 0
        self.s_down = 0.0
        self.s_up = 0.0
        if reference is not None:
            self._set_reference(np.asarray(reference, dtype=np.float64).ravel())

    def _set_reference(self, ref: np.ndarray) -> None:
        ref = ref[np.isfinite(ref)]
        if ref.size < 2:
            raise ConfigError(f"drift detector: the reference needs at least 2 finite values; got {ref.size}.")
        self.mu = float(ref.mean())
        self.sigma = float(max(ref.std(ddof=1), 1e-3))

    @property
    def fitted(self) -> bool:
        return self.mu is not None

    @property
    def statistic(self) -> float:
        """Current Page-Hinkley statistic (the larger one-sided value for ``both``)."""
        return max(self.s_down if self.direction != "increase" else 0.0, self.s_up if self.direction != "decrease" else 0.0)

    # ------------------------------------------------------------------ stream
    def update(self, confidences: np.ndarray) -> bool:
        """Consume confidences in time order; ``True`` when an alarm fired within this batch.

        Each alarm's stream index is appended to ``detections``.
        """
        fired = False
        for x in np.asarray(confidences, dtype=np.float64).ravel():
            idx = self.t
            self.t += 1
            if not np.isfinite(x):
                continue
            if not self.fitted:
                self._burn.append(float(x))
                if len(self._burn) >= max(2, self.min_samples):
                    self._set_reference(np.asarray(self._burn))
                    self._burn = []
                continue
            self.since_reset += 1
            z = float(np.clip((x - self.mu) / self.sigma, -self.clip, self.clip))
            if self.direction != "increase":
                self.s_down = max(0.0, self.s_down - z - self.delta)
            if self.direction != "decrease":
                self.s_up = max(0.0, self.s_up + z - self.delta)
            if self.since_reset >= self.min_samples and self.statistic > self.threshold:
                self.detections.append(idx)
                fired = True
                self.s_down = self.s_up = 0.0
                self.since_reset = 0
        return fired

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {
            "delta": self.delta, "threshold": self.threshold, "min_samples": self.min_samples,
            "direction": self.direction, "clip": self.clip, "t": self.t, "detections": list(self.detections),
            "mu": self.mu, "sigma": self.sigma, "burn": list(self._burn), "since_reset": self.since_reset,
            "s_down": self.s_down, "s_up": self.s_up,
        }

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["delta"], state["threshold"], state["min_samples"], state["direction"], state["clip"])
        self.t = int(state["t"])
        self.detections = [int(i) for i in state["detections"]]
        self.mu = None if state["mu"] is None else float(state["mu"])
        self.sigma = None if state["sigma"] is None else float(state["sigma"])
        self._burn = [float(v) for v in state["burn"]]
        self.since_reset = int(state["since_reset"])
        self.s_down = float(state["s_down"])
        self.s_up = float(state["s_up"])

    @classmethod
    def from_state(cls, state: dict) -> "ConfidenceDriftDetector":
        det = cls()
        det.load_state_dict(state)
        return det


def stream_detection(detector: ConfidenceDriftDetector, confidences: np.ndarray | Iterable[np.ndarray],
                     change_at: int, stop_on_detection: bool = False) -> dict:
    """Feed a stream whose phase changes at position ``change_at``; report the detection delay.

    ``confidences`` is one array or an iterable of chunks in time order (chunks are pulled lazily,
    so with ``stop_on_detection`` the rest of the stream is never computed).

    Returns ``change_at`` (position in this stream), ``windows`` (consumed), ``fired_at`` (position
    of the first alarm at or after the change, None if none), ``delay`` (post-change windows
    consumed up to and including the alarm window: ``fired_at - change_at + 1``; None if missed),
    ``detected`` and ``false_alarms`` (alarms before the change).
    """
    start = detector.t
    before = len(detector.detections)
    chunks = [confidences] if isinstance(confidences, np.ndarray) else confidences
    consumed = 0
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype=np.float64).ravel()
        detector.update(chunk)
        consumed += len(chunk)
        if stop_on_detection and any(d - start >= change_at for d in detector.detections[before:]):
            break
    alarms = [d - start for d in detector.detections[before:]]
    true = [a for a in alarms if a >= change_at]
    fired = true[0] if true else None
    return {
        "change_at": int(change_at), "windows": int(consumed), "fired_at": fired,
        "delay": None if fired is None else int(fired - change_at + 1), "detected": fired is not None,
        "false_alarms": sum(a < change_at for a in alarms),
    }
