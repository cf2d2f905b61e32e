"""Checks every loader runs on raw arrays before they become a ``WindowDataset``."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from fedhar.exceptions import DataError

log = logging.getLogger(__name__)

NAN_POLICIES = ("error", "drop")


def check_arrays(
    X,
    y,
    *,
    source: str,
    classes: Sequence[str] | None = None,
    subject=None,
    nan_policy: str = "error",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Validate windows, labels and subjects read from ``source``.

    Parameters
    ----------
    X : array_like
        Windows, must be rank 3 ``(N, C, T)``.
    y : array_like
        Integer class index per window, shape ``(N,)``.
    source : str
        File (or archive member) the arrays came from; named in every error.
    classes : sequence of str, optional
        Class names; labels must index into them. Without it labels must be ``>= 0``.
    subject : array_like, optional
        Subject id per window, shape ``(N,)``.
    nan_policy : {"error", "drop"}
        What to do with windows holding NaN/Inf values.

    Returns
    -------
    X, y, subject, n_dropped
        ``y`` and ``subject`` as int64; ``n_dropped`` windows removed for NaN/Inf
        (always 0 with ``nan_policy="error"``), logged as a warning.

    Raises
    ------
    DataError
        Wrong rank, mismatched lengths, non-integer or out-of-range labels, NaN/Inf values.
    """
    if nan_policy not in NAN_POLICIES:
        raise DataError(f"{source}: `nan_policy` must be one of {', '.join(NAN_POLICIES)}; got {nan_policy!r}.")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 3:
        raise DataError(
            f"{source}: windows `X` must have rank 3 (N, C, T), channels first; got shape {X.shape}. "
            "Transpose (N, T, C) arrays with X.transpose(0, 2, 1)."
        )
    n = X.shape[0]
    if y.ndim != 1:
        raise DataError(f"{source}: labels `y` must be 1-D with one label per window; got shape {y.shape}.")
    if len(y) != n:
        raise DataError(f"{source}: `X` has {n} windows but `y` has {len(y)} labels; they must match.")
    if subject is not None:
        subject = np.asarray(subject)
        if subject.shape != (n,):
            raise DataError(
                f"{source}: `X` has {n} windows but `subject` has shape {subject.shape}; expected ({n},)."
            )
        subject = _as_int(subject, "subject", source)
    y = _as_int(y, "y", source)
    upper = len(classes) if classes is not None else None
    bad = (y < 0) if upper is None else ((y < 0) | (y >= upper))
    if bad.any():
        values = np.unique(y[bad])[:10].tolist()
        allowed = f"0..{upper - 1} ({', '.join(classes)})" if upper is not None else ">= 0"
        raise DataError(
            f"{source}: {int(bad.sum())} labels are outside the class list: values {values}, "
            f"first at index {int(np.flatnonzero(bad)[0])}; labels must be in {allowed}."
        )
    n_dropped = 0
    if n and np.issubdtype(X.dtype, np.floating):
        finite = np.isfinite(X).reshape(n, -1).all(axis=1)
        if not finite.all():
            n_bad = int((~finite).sum())
            if nan_policy == "error":
                raise DataError(
                    f"{source}: {n_bad} of {n} windows contain NaN/Inf values (first at index "
                    f"{int(np.flatnonzero(~finite)[0])}). Clean the file, or drop them with "
                    "`data.nan_policy: drop` (option nan_policy='drop')."
                )
            log.warning("%s: dropped %d of %d windows with NaN/Inf", source, n_bad, n)
            X, y = X[finite], y[finite]
            subject = None if subject is None else subject[finite]
            n_dropped = n_bad
    return X, y, subject, n_dropped


def _as_int(arr: np.ndarray, key: str, source: str) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.bool_):
        if np.issubdtype(arr.dtype, np.floating) and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise DataError(f"{source}: `{key}` must hold integers; found non-integer or NaN values.")
        return arr.astype(np.int64)
    raise DataError(f"{source}: `{key}` must hold integers; got dtype {arr.dtype}.")
