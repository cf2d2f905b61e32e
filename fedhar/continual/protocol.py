"""The evaluation protocol of a continual stream, kept apart from the strategies.

:func:`run_stream` trains a strategy through the experiences in order and, after each one,
evaluates **every** experience's test set (past, current and future: future ones give forward
transfer), filling ``R[i][j]`` for accuracy and macro-F1. Before any training it evaluates the
model as given on every experience: that row is the FWT baseline ``b[j]`` (Lopez-Paz & Ranzato
use a randomly initialised model; here the baseline is "the model before it trained on the
stream", e.g. the pretrained-backbone model with its untrained adapter, or a model pre-trained
centrally, whatever the caller passes in). Macro-F1 on experience ``j`` counts only the classes
present in ``j``'s test set, so a phase is never scored on classes it does not have.

Drift detection: with a detector (argument, or the strategy's own), at every boundary
``i -> i+1`` the protocol simulates the deployed stream: experience ``i``'s test windows, shuffled,
are split in halves, the first half fits the detector's reference confidences, the second half is
the pre-change stream; experience ``i+1``'s training windows (shuffled) follow as the post-change
stream, in chunks, until the first alarm after the change. The model is the one trained through
``i`` (prepared by ``before_eval`` on the reference half). The detection delay is the number of
post-change windows consumed up to and including the alarm
(:func:`~fedhar.continual.detector.stream_detection`).
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, Sequence

import numpy as np

from fedhar.continual.detector import ConfidenceDriftDetector, stream_detection, window_confidence
from fedhar.continual.metrics import AccuracyMatrix
from fedhar.continual.strategies.base import ExperienceLike, Strategy
from fedhar.data.dataset import WindowDataset
from fedhar.training.config import TrainConfig
from fedhar.training.loop import evaluate


def step_seed(seed: int, i: int) -> int:
    """Seed of experience ``i``'s training, independent of the other experiences."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(i)]).generate_state(1)[0] & 0x7FFFFFFF)


def _present_labels(test: WindowDataset) -> list[int]:
    return sorted(int(c) for c in np.unique(test.y))


def evaluate_experience(model, strategy: Strategy, test: WindowDataset, cfg: TrainConfig,
                        labels: Sequence[int] | None = None) -> dict:
    """``before_eval`` then :func:`evaluate`; NaN scores for an empty test set."""
    if len(test) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "windows": 0, "choice": None}
    strategy.before_eval(model, test.X, cfg)
    m = evaluate(model, test, cfg, labels=labels if labels is not None else _present_labels(test))
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "windows": len(test), "choice": strategy.eval_info()}


def simulate_detection(model, strategy: Strategy, detector: ConfidenceDriftDetector, current: ExperienceLike,
                       upcoming: ExperienceLike, cfg: TrainConfig, seed: int, max_post: int | None = None) -> dict:
    """One boundary of the detection simulation (module doc); returns stream_detection's dict."""
    rng = np.random.default_rng(seed)
    test = current.test.X[rng.permutation(len(current.test))]
    half = len(test) // 2
    ref, pre = test[:half], test[half:]
    post = upcoming.train.X[rng.permutation(len(upcoming.train))]
    if max_post is not None:
        post = post[:max_post]
    if half < 2 or len(post) == 0:
        return {"change_at": len(pre), "windows": 0, "fired_at": None, "delay": None, "detected": False,
                "false_alarms": 0, "skipped": "too few windows"}
    strategy.before_eval(model, ref, cfg)
    detector.reset(window_confidence(model, ref, cfg))

    def chunks() -> Iterator[np.ndarray]:
        yield window_confidence(model, pre, cfg)
        for s in range(0, len(post), cfg.eval_batch_size):
            yield window_confidence(model, post[s : s + cfg.eval_batch_size], cfg)

    out = stream_detection(detector, chunks(), change_at=len(pre), stop_on_detection=True)
    out["reference_windows"] = int(half)
    return out


def run_stream(
    model,
    strategy: Strategy,
    experiences: Sequence[ExperienceLike],
    cfg: TrainConfig,
    seed: int = 0,
    on_step: Callable[[dict], None] | None = None,
    *,
    detector: ConfidenceDriftDetector | None = None,
    max_post_windows: int | None = None,
) -> dict:
    """Train ``strategy`` through ``experiences`` and evaluate the accuracy matrix (module doc).

    Parameters
    ----------
    model : HARModel
        Trained in place (its state after the call is the strategy's final model).
    strategy : Strategy
    experiences : sequence of ExperienceLike
        In stream order.
    cfg : TrainConfig
    seed : int
        Experience ``i`` trains with :func:`step_seed` ``(seed, i)``.
    on_step : callable, optional
        Called with ``{"experience", "accuracy", "macro_f1", "history", "seconds"}`` after each
        experience is trained and evaluated.
    detector : ConfidenceDriftDetector, optional
        Simulate detection at every boundary (default: the strategy's detector, if any).
    max_post_windows : int, optional
        At most this many post-change windows per boundary in the detection simulation.

    Returns
    -------
    dict
        ``strategy``, ``options``, ``experiences`` (names), ``accuracy`` and ``macro_f1``
        (:func:`~fedhar.continual.metrics.continual_metrics` plus ``baseline``), ``memory``,
        ``seconds``, ``train_seconds``, ``history`` (fit rows), ``choices`` (per ``[i][j]``:
        what ``before_eval`` chose, e.g. the adapter), ``detection`` (per boundary) and
        ``decisions`` (the adapter library's domain decisions, else empty).
    """
    t_start = time.perf_counter()
    experiences = list(experiences)
    T = len(experiences)
    matrix = AccuracyMatrix(T)
    labels = [_present_labels(e.test) for e in experiences]  # macro-F1 over the classes a phase has
    detector = detector if detector is not None else strategy.detector
    history: list[dict] = []
    choices: list[list] = []
    detection: list[dict] = []
    train_seconds = 0.0
    for j, exp in enumerate(experiences):
        matrix.record_baseline(j, evaluate_experience(model, strategy, exp.test, cfg, labels[j]))
    for i, exp in enumerate(experiences):
        t0 = time.perf_counter()
        rows = strategy.train_experience(model, exp, cfg, step_seed(seed, i))
        train_seconds += time.perf_counter() - t0
        history.extend(rows)
        row_choices = []
        for j, other in enumerate(experiences):
            m = evaluate_experience(model, strategy, other.test, cfg, labels[j])
            matrix.record(i, j, m)
            row_choices.append(m["choice"])
        choices.append(row_choices)
        if on_step:
            on_step({"experience": i, "accuracy": matrix.R["accuracy"][i].tolist(),
                     "macro_f1": matrix.R["macro_f1"][i].tolist(), "history": rows,
                     "seconds": time.perf_counter() - t0})
        if detector is not None and i + 1 < T:
            res = simulate_detection(model, strategy, detector, exp, experiences[i + 1], cfg,
                                     step_seed(seed + 1, i), max_post_windows)
            detection.append({"after_experience": i, "next_experience": i + 1, **res})
    summary = matrix.summary()
    delays = [d["delay"] for d in detection if d.get("delay") is not None]
    return {
        "strategy": strategy.name,
        "options": strategy.options(),
        "experiences": [str(e.name) for e in experiences],
        "accuracy": summary["accuracy"],
        "macro_f1": summary["macro_f1"],
        "memory": strategy.memory(),
        "seconds": time.perf_counter() - t_start,
        "train_seconds": train_seconds,
        "history": history,
        "choices": choices,
        "detection": detection,
        "detection_summary": {
            "boundaries": len(detection),
            "detected": sum(bool(d.get("detected")) for d in detection),
            "mean_delay": float(np.mean(delays)) if delays else None,
            "false_alarms": int(sum(d.get("false_alarms", 0) for d in detection)),
        } if detector is not None else None,
        "decisions": [dict(d) for d in getattr(strategy, "decisions", [])],
    }
