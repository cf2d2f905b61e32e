"""Loader for windowed NumPy archives (``uci_har.npz``, ``wisdm.npz``, ``hhar_sa_part.npz``...).

Schema (see ``shared/data/README.md``): ``X`` (N, C, T) and ``y`` (N,) are required (``y`` may be
left out for windows that are only predicted: ``require_labels=False``, the one class :data:`UNLABELLED`);
``subject``, ``channels``, ``units``, ``classes``, ``rate_hz``, ``official_test``, ``device``
and ``placement`` are optional. Other 1-D arrays with one row per window go to ``extras``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

UNLABELLED = "(no label)"
"""The single class of an archive loaded without ``y`` (``require_labels=False``): nothing to score."""

_META = ("X", "y", "subject", "channels", "units", "classes", "rate_hz", "device", "placement")


def load_npz(
    path: str | Path, *, rate_hz: float | None = None, name: str | None = None, nan_policy: str = "error",
    require_labels: bool = True,
) -> WindowDataset:
    """Load a windowed archive.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` file (read with ``allow_pickle=False``).
    rate_hz : float, optional
        Sampling rate, required when the archive has no ``rate_hz`` key; overrides it otherwise.
    name : str, optional
        Dataset name; default the file stem.
    nan_policy : {"error", "drop"}
        For windows holding NaN/Inf values.
    require_labels : bool
        False lets an archive without ``y`` load (for ``fedhar predict``): every window gets the one
        class :data:`UNLABELLED`. Training never sets it, so unlabelled data cannot be trained on.

    Returns
    -------
    WindowDataset
        Missing metadata defaults to channels ``ch0..``, units ``unknown``, classes
        ``class_0..`` and subject 0.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as a NumPy archive ({exc}).") from None
    with z:
        keys = list(z.files)
        unlabelled = "y" not in keys and not require_labels
        for key in ("X",) if unlabelled else ("X", "y"):
            if key not in keys:
                hint = " It looks like a HAPT raw-stream archive: load it with format='hapt'." if "acc" in keys else ""
                raise DataError(f"{path}: missing required key `{key}`; keys present: {', '.join(keys)}.{hint}")
        X = z["X"]
        n = X.shape[0] if X.ndim else 0
        y = np.zeros(n, dtype=np.int64) if unlabelled else z["y"]
        subject = z["subject"] if "subject" in keys else np.zeros(len(y), dtype=np.int64)
        if unlabelled:
            classes = [UNLABELLED]
        elif "classes" in keys:
            classes = [str(c) for c in z["classes"]]
        else:
            classes = [f"class_{i}" for i in range(int(np.max(y)) + 1 if np.size(y) else 0)]
        if rate_hz is None:
            if "rate_hz" not in keys:
                raise DataError(
                    f"{path}: missing key `rate_hz` (sampling rate in Hz); keys present: {', '.join(keys)}. "
                    "Add it to the archive or pass the option rate_hz=<Hz> (`data.options.rate_hz`)."
                )
            rate_hz = float(z["rate_hz"])
        per_window = {}
        for key in keys:
            if key in _META:
                continue
            arr = z[key]
            if arr.ndim >= 1 and arr.shape[0] == n and n > 0:
                per_window[key] = arr
            else:
                warnings.warn(f"{path}: ignoring key `{key}` with shape {arr.shape} (not one row per window).",
                              stacklevel=2)
        optional = {k: z[k] for k in ("channels", "units", "device", "placement") if k in keys}
    X_raw = X
    X, y, subject, dropped = check_arrays(X, y, source=str(path), classes=classes, subject=subject,
                                          nan_policy=nan_policy)
    if dropped:
        finite = np.isfinite(X_raw).reshape(len(X_raw), -1).all(axis=1)
        per_window = {k: v[finite] for k, v in per_window.items()}
        optional.update({k: optional[k][finite] for k in ("device", "placement") if k in optional})
    c = X.shape[1]
    channels = [str(ch) for ch in optional.get("channels", [f"ch{i}" for i in range(c)])]
    units = [str(u) for u in optional.get("units", ["unknown"] * c)]
    for key, vals in (("channels", channels), ("units", units)):
        if len(vals) != c:
            raise DataError(f"{path}: `{key}` has {len(vals)} entries but `X` has {c} channels.")
    return WindowDataset(
        X=X, y=y, subject=subject, channels=tuple(channels), units=tuple(units), rate_hz=float(rate_hz),
        classes=tuple(classes), name=name or path.stem, device=optional.get("device"),
        placement=optional.get("placement"), extras=per_window,
    )
