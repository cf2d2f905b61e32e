"""Helpers for continuous recordings: resample a stream, cut windows, label each window."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from fedhar.exceptions import DataError


def resample_stream(
    x: np.ndarray, label: np.ndarray | None, rate_from: float, rate_to: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resample a ``(T, C)`` stream (polyphase, anti-aliased) and its per-sample labels.

    Labels are carried over by nearest sample in time, so label boundaries move by at most half
    a sample period of the new rate.
    """
    if abs(rate_from - rate_to) < 1e-9:
        return x, label
    from scipy.signal import resample_poly

    frac = Fraction(rate_to / rate_from).limit_denominator(1000)
    out = resample_poly(x, frac.numerator, frac.denominator, axis=0).astype(np.float32)
    if label is None:
        return out, None
    src = np.clip(np.round(np.arange(len(out)) * rate_from / rate_to).astype(np.int64), 0, len(label) - 1)
    return out, label[src]


def window_starts(n_samples: int, window: int, step: int) -> np.ndarray:
    """Start indices of all complete windows of ``window`` samples every ``step`` samples."""
    if window <= 0 or step <= 0:
        raise DataError(f"window ({window}) and step ({step}) must be positive numbers of samples.")
    if n_samples < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - window + 1, step, dtype=np.int64)


def cut_windows(x: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``(T, C)`` stream -> ``(N, C, window)`` float32 windows starting at ``starts``."""
    if len(starts) == 0:
        return np.zeros((0, x.shape[1], window), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # [T-w+1, C, w]
    return np.ascontiguousarray(view[starts], dtype=np.float32)


def label_windows(
    label: np.ndarray, starts: np.ndarray, window: int, num_classes: int, min_coverage: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Label each window by the activity covering it.

    Parameters
    ----------
    label : np.ndarray
        Per-sample class index, ``-1`` for unlabelled samples.
    starts, window
        Window start indices and length in samples.
    num_classes : int
        Number of classes (labels are ``0..num_classes-1``).
    min_coverage : float
        Fraction of the window the majority class must cover; ``1.0`` keeps only windows whose
        samples all carry the same label.

    Returns
    -------
    y, keep
        Majority class per window and the mask of windows that meet ``min_coverage``
        (unlabelled samples never count towards a class).
    """
    if not 0.0 < min_coverage <= 1.0:
        raise DataError(f"`min_coverage` must be in (0, 1]; got {min_coverage}.")
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    onehot = np.zeros((len(label) + 1, num_classes), dtype=np.int32)
    valid = label >= 0
    onehot[1:][np.flatnonzero(valid), label[valid]] = 1
    cum = np.cumsum(onehot, axis=0)  # [T+1, K]: samples of each class before index t
    counts = cum[starts + window] - cum[starts]
    y = counts.argmax(axis=1).astype(np.int64)
    cover = counts.max(axis=1) / float(window)
    return y, cover >= min_coverage - 1e-9
