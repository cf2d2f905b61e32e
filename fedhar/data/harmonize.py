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

import re
import warnings
from typing import Mapping, Sequence

import numpy as np

from fedhar.data.dataset import WindowDataset, sensor_of
from fedhar.exceptions import ConfigError, DataError

G = 9.80665
"""Standard gravity, m/s^2 per g."""
_UNIT_ALIASES = {"g": "g", "m/s^2": "m/s^2", "m/s²": "m/s^2", "m/s2": "m/s^2", "ms^-2": "m/s^2"}
ACC_SENSORS = ("acc", "total_acc", "body_acc")
GYRO_SENSORS = ("gyro", "body_gyro")


_CHANNEL = re.compile(r"^\w+_(x|y|z|w|norm|mag)$")
_SENSOR_GUESS = {"a": "acc", "acc": "acc", "accel": "acc", "accelerometer": "acc", "g": "gyro", "gyr": "gyro",
                 "gyro": "gyro", "gyroscope": "gyro", "m": "mag", "mag": "mag", "magnetometer": "mag"}


def is_channel_name(name: str) -> bool:
    """Whether ``name`` has the form ``<sensor>_<axis>`` (axis x, y, z, w, norm or mag), e.g. ``acc_x``."""
    return bool(_CHANNEL.match(name)) and sensor_of(name) != name


def guess_channel_name(name: str) -> str:
    """A likely ``<sensor>_<axis>`` name for a channel such as ``ax`` or ``GyroZ`` (for hints only)."""
    m = re.match(r"^([A-Za-z]+?)[_\-. ]?([xyzXYZ])$", name.strip())
    if not m:
        return "<sensor>_<axis>"
    sensor = m.group(1).lower()
    return f"{_SENSOR_GUESS.get(sensor, sensor)}_{m.group(2).lower()}"


def channel_map_hint(channels: Sequence[str]) -> str:
    """``{ax: acc_x, ...}``: a ``channels:`` mapping to start from for ``channels``."""
    return "{" + ", ".join(f"{c}: {guess_channel_name(c)}" for c in channels) + "}"


def check_channel_map(mapping: Mapping[str, str | None], where: str = "data.channels") -> dict[str, str | None]:
    """Check a ``channels:`` mapping (the dataset's channel names -> ``<sensor>_<axis>`` names, or
    null to drop the channel) before any data is read.

    Raises
    ------
    ConfigError
        A value not of the form ``<sensor>_<axis>``, or two channels renamed to one name; the
        message names the key and the value.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"`{where}` must be a list of channels to keep or a mapping {{channel: <sensor>_<axis>}}; "
                          f"got {mapping!r}.")
    target: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"`{where}` has an empty channel name (mapped to {value!r}).")
        if value is None:
            continue
        if not isinstance(value, str) or not is_channel_name(value):
            raise ConfigError(
                f"`{where}.{key}: {value}`: `{value}` is not a channel name of the form `<sensor>_<axis>` "
                "(e.g. acc_x, gyro_z; axes x, y, z, w, norm, mag); use null to drop the channel."
            )
        if value in target:
            raise ConfigError(f"`{where}` renames both `{target[value]}` and `{key}` to `{value}`; each name once.")
        target[value] = key
    return dict(mapping)


def rename_channels(ds: WindowDataset, mapping: Mapping[str, str | None], where: str = "data.channels") -> WindowDataset:
    """``ds`` with channels renamed by ``mapping`` (exact names); a null value drops the channel.
    Unmapped channels keep their names.

    Raises
    ------
    ConfigError
        A key that is not a channel of ``ds``, a new name another channel already has, or every
        channel dropped (naming the key and the value).
    """
    for key, value in mapping.items():
        if key not in ds.channels:
            raise ConfigError(f"`{where}` maps `{key}` to `{value}`, but dataset `{ds.name}` has no channel `{key}` "
                              f"(its channels: {', '.join(ds.channels)}).")
    keep = [i for i, c in enumerate(ds.channels) if c not in mapping or mapping[c] is not None]
    if not keep:
        raise ConfigError(f"`{where}` drops every channel of dataset `{ds.name}`; map at least one to a name.")
    names = [mapping.get(ds.channels[i]) or ds.channels[i] for i in keep]
    seen: dict[str, str] = {}
    for i, name in zip(keep, names):
        channel = ds.channels[i]
        if name in seen:
            key, other = (channel, seen[name]) if channel in mapping else (seen[name], channel)
            raise ConfigError(f"`{where}` maps `{key}` to `{name}`, but channel `{other}` of dataset `{ds.name}` is "
                              f"also named `{name}` then; map or drop (null) that channel too.")
        seen[name] = channel
    return ds.replace(X=ds.X[:, keep], channels=tuple(names), units=tuple(ds.units[i] for i in keep))


def warn_channel_names(ds: WindowDataset, where: str = "data.channels") -> list[str]:
    """Warn when channel names are not ``<sensor>_<axis>``: each would become a one-axis sensor of
    its own, which the cross-dataset pool cannot use. Returns those channels (text windows: none)."""
    if np.issubdtype(ds.X.dtype, np.integer):  # token ids of text windows, one `token` channel
        return []
    odd = [c for c in ds.channels if not is_channel_name(c)]
    if odd:
        warnings.warn(
            f"dataset `{ds.name}`: channel(s) {', '.join(odd)} are not named `<sensor>_<axis>` (e.g. acc_x, gyro_z): "
            "each is read as a one-axis sensor of its own, and the cross-dataset pool (acc/gyro) cannot use them. "
            f"Rename them with `{where}` as a mapping, e.g. {channel_map_hint(odd)}.",
            stacklevel=3,
        )
    return odd


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
        odd = [c for c in ds.channels if not is_channel_name(c)]
        hint = (f" Channels not named `<sensor>_<axis>` can be renamed with a `channels:` mapping, e.g. "
                f"{channel_map_hint(odd)}." if odd else "")
        raise DataError(f"dataset `{ds.name}` has none of the sensors {list(channels)}; channels: "
                        f"{', '.join(ds.channels)}.{hint}")
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
