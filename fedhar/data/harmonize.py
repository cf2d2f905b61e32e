"""Bring datasets to common channel names and units: ``acc_x..`` (g or m/s^2), ``gyro_x..`` (rad/s).

Limits, stated once here:

* ``acceleration="body"`` from total acceleration removes gravity with a 3rd-order 0.3 Hz
  Butterworth low-pass (zero-phase, as in UCI-HAR) applied to each window separately. UCI-HAR
  filtered whole recordings, so per-window estimates differ near window edges and for slow
  movements; treat the result as an approximation.
* ``acceleration="total"`` needs a total-acceleration signal: ``total_acc``, plain ``acc``
  (phone accelerometers measure gravity), or ``body_acc`` together with ``total_acc``. Gravity
  cannot be recovered from body acceleration alone, so that case raises.
* Sensors a dataset lacks (e.g. the gyroscope of WISDM/HHAR) are left out, never filled with zeros.
* ``standardized`` (z-scored) channels have lost their physical units: they are left as they
  are, with a warning, when a unit conversion is requested.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset, sensor_of
from fedhar.exceptions import DataError

G = 9.80665
"""Standard gravity, m/s^2 per g."""
_UNIT_ALIASES = {"g": "g", "m/s^2": "m/s^2", "m/s²": "m/s^2", "m/s2": "m/s^2", "ms^-2": "m/s^2"}
ACC_SENSORS = ("acc", "total_acc", "body_acc")
GYRO_SENSORS = ("gyro", "body_gyro")


def normalize_unit(unit: str) -> str:
    """Canonical spelling of an acceleration unit (``m/s²`` -> ``m/s^2``); others unchanged."""
    return _UNIT_ALIASES.get(unit.strip().lower().replace(" ", ""), unit)


def convert_acc_units(ds: WindowDataset, to: str = "g") -> WindowDataset:
    """Convert accelerometer channels between g and m/s^2 (factor :data:`G`).

    Channels in other units are untouched; ``standardized``/``unknown`` accelerometer channels
    are left as they are with a warning.
    """
    target = normalize_unit(to)
    if target not in ("g", "m/s^2"):
        raise DataError(f"acceleration unit must be 'g' or 'm/s^2'; got {to!r}.")
    X, units = ds.X.copy(), list(ds.units)
    skipped = []
    for i, (ch, unit) in enumerate(zip(ds.channels, ds.units)):
        if not sensor_of(ch).endswith("acc"):
            continue
        unit = normalize_unit(unit)
        if unit == target:
            units[i] = target
        elif unit in ("g", "m/s^2"):
            X[:, i] *= G if target == "m/s^2" else 1.0 / G
            units[i] = target
        else:
            skipped.append(f"{ch} ({unit})")
    if skipped:
        warnings.warn(
            f"dataset `{ds.name}`: cannot convert {', '.join(skipped)} to {target}; physical units are "
            "unknown (e.g. z-scored data), channels left unchanged.",
            stacklevel=2,
        )
    return ds.replace(X=X, units=tuple(units))


def _group(ds: WindowDataset, sensor: str) -> np.ndarray | None:
    """``(N, 3, T)`` x,y,z channels of ``sensor`` or None if absent/incomplete."""
    idx = [ds.channels.index(f"{sensor}_{ax}") for ax in "xyz" if f"{sensor}_{ax}" in ds.channels]
    return ds.X[:, idx] if len(idx) == 3 else None


def gravity_lowpass(x: np.ndarray, rate_hz: float, cutoff_hz: float = 0.3, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth low-pass along the last axis (the gravity estimate)."""
    from scipy.signal import butter, filtfilt

    if cutoff_hz >= rate_hz / 2:
        raise DataError(f"gravity cutoff {cutoff_hz} Hz must be below half the sampling rate ({rate_hz} Hz).")
    b, a = butter(order, cutoff_hz, btype="low", fs=rate_hz)
    padlen = min(3 * max(len(a), len(b)), x.shape[-1] - 1)
    return filtfilt(b, a, x, axis=-1, padlen=padlen).astype(np.float32)


def harmonize(
    ds: WindowDataset,
    acc_units: str | None = "g",
    acceleration: str = "total",
    channels: Sequence[str] = ("acc", "gyro"),
) -> WindowDataset:
    """Map UCI-style or plain channels to ``acc_x.. gyro_x..`` in common units.

    Parameters
    ----------
    ds : WindowDataset
        Source dataset.
    acc_units : {"g", "m/s^2", None}
        Accelerometer unit of the result; ``None`` keeps the source unit.
    acceleration : {"total", "body"}
        Keep gravity (``total``) or remove it (``body``); see the module notes for the limits.
    channels : sequence of {"acc", "gyro"}
        Sensors wanted, in output order. Those ``ds`` lacks are left out with a warning.

    Returns
    -------
    WindowDataset
        Only the canonical channels; check ``.sensors`` for what is present.
    """
    if acceleration not in ("total", "body"):
        raise DataError(f"`acceleration` must be 'total' or 'body'; got {acceleration!r}.")
    bad = [c for c in channels if c not in ("acc", "gyro")]
    if bad or not channels:
        raise DataError(f"`channels` must list sensors among 'acc', 'gyro'; got {list(channels)}.")
    parts, names, units = [], [], []
    acc_unit_of = {s: ds.units[ds.channels.index(f"{s}_x")] for s in ACC_SENSORS if _group(ds, s) is not None}
    missing = []
    for sensor in channels:
        if sensor == "acc":
            block, unit = _acceleration(ds, acceleration, acc_unit_of)
        else:
            src = next((s for s in GYRO_SENSORS if _group(ds, s) is not None), None)
            block = None if src is None else _group(ds, src)
            unit = None if src is None else ds.units[ds.channels.index(f"{src}_x")]
        if block is None:
            missing.append(sensor)
            continue
        parts.append(block)
        names += [f"{sensor}_{ax}" for ax in "xyz"]
        units += [unit] * 3
    if not parts:
        raise DataError(f"dataset `{ds.name}` has none of the sensors {list(channels)}; channels: {', '.join(ds.channels)}.")
    if missing:
        warnings.warn(
            f"dataset `{ds.name}` has no {' or '.join(missing)} channels; the result has sensors "
            f"{', '.join(n for n in channels if n not in missing)} only (nothing is filled in).",
            stacklevel=2,
        )
    out = ds.replace(X=np.concatenate(parts, axis=1), channels=tuple(names), units=tuple(units))
    return convert_acc_units(out, acc_units) if acc_units is not None else out


def _acceleration(ds: WindowDataset, mode: str, unit_of: dict[str, str]) -> tuple[np.ndarray | None, str | None]:
    total = next((s for s in ("total_acc", "acc") if s in unit_of), None)
    if mode == "total":
        if total is not None:
            return _group(ds, total), unit_of[total]
        if "body_acc" in unit_of:
            raise DataError(
                f"dataset `{ds.name}` has only body acceleration (gravity removed), which cannot be turned "
                "back into total acceleration; use acceleration='body'."
            )
        return None, None
    if "body_acc" in unit_of:
        return _group(ds, "body_acc"), unit_of["body_acc"]
    if total is None:
        return None, None
    if normalize_unit(unit_of[total]) not in ("g", "m/s^2"):
        warnings.warn(
            f"dataset `{ds.name}`: removing gravity from `{total}` in unit {unit_of[total]!r}; the "
            "per-window mean was already altered by standardisation, so the result is approximate.",
            stacklevel=3,
        )
    x = _group(ds, total)
    return (x - gravity_lowpass(x, ds.rate_hz)).astype(np.float32), unit_of[total]
