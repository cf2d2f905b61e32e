"""A common event-stream type for binary ambient-sensor homes, whatever file layout they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from fedhar.data.smarthome.vocab import home_label
from fedhar.exceptions import DataError

STATES = ("on", "off")


@dataclass(frozen=True)
class SensorInfo:
    """One binary sensor: ``name``, ``type`` and ``place`` are lower-case English words (or ``unknown``)."""

    id: str
    name: str
    type: str
    place: str


@dataclass
class HomeRecording:
    """All sensor events and annotated activity intervals of one home.

    Each sensor activation interval contributes an ``on`` event at its start and an ``off`` event at its end;
    events are sorted by time (stable, so an interval's ``on`` precedes its ``off`` when both share a second).
    The constructor checks shapes, order and ids and raises :class:`DataError` when they do not hold.
    """

    home: str
    sensors: dict[str, SensorInfo]
    time: np.ndarray
    """``(E,)`` datetime64[s], non-decreasing."""
    sensor: np.ndarray
    """``(E,)`` str sensor id per event."""
    state: np.ndarray
    """``(E,)`` ``"on"`` / ``"off"``."""
    act_start: np.ndarray
    """``(A,)`` datetime64[s] activity starts, non-decreasing."""
    act_end: np.ndarray
    act_label: np.ndarray
    """``(A,)`` canonical activity name (see :mod:`fedhar.data.smarthome.vocab`)."""
    act_raw: np.ndarray
    """``(A,)`` label text as published."""
    source: str = "<arrays>"

    def __post_init__(self) -> None:
        for key in ("time", "act_start", "act_end"):
            setattr(self, key, _as_seconds(getattr(self, key), key, self.source))
        for key in ("sensor", "state", "act_label", "act_raw"):
            setattr(self, key, _as_str(getattr(self, key)))
        where = f"{self.source} ({self.home})"
        _same_length(where, time=self.time, sensor=self.sensor, state=self.state)
        _same_length(where, act_start=self.act_start, act_end=self.act_end, act_label=self.act_label,
                     act_raw=self.act_raw)
        if len(self.time) > 1 and (np.diff(self.time) < np.timedelta64(0, "s")).any():
            raise DataError(f"{where}: event times must be sorted (non-decreasing).")
        if len(self.act_start) > 1 and (np.diff(self.act_start) < np.timedelta64(0, "s")).any():
            raise DataError(f"{where}: activity intervals must be sorted by start.")
        if (self.act_end < self.act_start).any():
            i = int(np.flatnonzero(self.act_end < self.act_start)[0])
            raise DataError(f"{where}: activity {i} ends ({self.act_end[i]}) before it starts ({self.act_start[i]}).")
        bad_state = sorted(set(self.state.tolist()) - set(STATES))
        if bad_state:
            raise DataError(f"{where}: `state` must be 'on' or 'off'; found {bad_state[:5]}.")
        unknown = sorted(set(self.sensor.tolist()) - set(self.sensors))
        if unknown:
            raise DataError(f"{where}: events name sensors missing from `sensors`: {unknown[:5]}.")

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def activity_at(self, times: np.ndarray) -> np.ndarray:
        """Canonical label in progress at each time (``start <= t <= end``); ``""`` when none.

        Where intervals overlap, the one that started latest wins (ties: the later row), since a short
        activity inside a long one (a toilet visit during sleep) is the more specific description.
        """
        t = _as_seconds(times, "times", self.source)
        out = np.full(t.shape, "", dtype=object)
        if t.size == 0 or self.act_start.size == 0:
            return np.full(t.shape, "", dtype=str)
        order = np.argsort(t, kind="stable")
        ts = t[order]
        lo = np.searchsorted(ts, self.act_start, side="left")
        hi = np.searchsorted(ts, self.act_end, side="right")
        lab = np.full(ts.shape, "", dtype=object)
        for a, b, name in zip(lo, hi, self.act_label):  # later starts overwrite earlier ones
            lab[a:b] = name
        out[order] = lab
        return out.astype(str)

    def days(self) -> np.ndarray:
        """``(E,)`` datetime64[D] calendar day of each event."""
        return self.time.astype("datetime64[D]")

    def activations(self) -> int:
        """Number of sensor activation intervals (``on`` events)."""
        return int((self.state == "on").sum())


def recording_from_intervals(
    home: str,
    sensors: Mapping[str, SensorInfo] | Iterable[SensorInfo | str],
    on_start: np.ndarray,
    on_end: np.ndarray,
    on_sensor: np.ndarray,
    act_start: np.ndarray,
    act_end: np.ndarray,
    act_raw: np.ndarray,
    *,
    labels: Mapping[str, str] | None = None,
    source: str = "<arrays>",
) -> HomeRecording:
    """Build a :class:`HomeRecording` from sensor activation intervals and activity intervals.

    Parameters
    ----------
    home : str
        Home name stored on the recording.
    sensors : mapping or iterable
        ``id -> SensorInfo``, or SensorInfo objects, or bare ids (name = id, type/place ``unknown``).
    on_start, on_end, on_sensor : array-like, shape (N,)
        One row per activation: start, end (datetime64 or ISO strings) and sensor id.
    act_start, act_end, act_raw : array-like, shape (A,)
        One row per activity instance; ``act_raw`` is mapped to the canonical vocabulary.
    labels : mapping, optional
        Extra ``raw -> canonical`` label entries (see :func:`~fedhar.data.smarthome.vocab.home_label`).
    source : str
        Origin named in error messages.

    Raises
    ------
    DataError
        On mismatched lengths, an interval that ends before it starts, an unknown sensor id or an unknown label.
    """
    table = _sensor_table(sensors)
    s0, s1 = _as_seconds(on_start, "on_start", source), _as_seconds(on_end, "on_end", source)
    sid = _as_str(on_sensor)
    _same_length(source, on_start=s0, on_end=s1, on_sensor=sid)
    if (s1 < s0).any():
        i = int(np.flatnonzero(s1 < s0)[0])
        raise DataError(f"{source}: activation {i} of sensor {sid[i]!r} ends ({s1[i]}) before it starts ({s0[i]}).")
    a0, a1 = _as_seconds(act_start, "act_start", source), _as_seconds(act_end, "act_end", source)
    raw = _as_str(act_raw)
    _same_length(source, act_start=a0, act_end=a1, act_raw=raw)
    time = np.stack([s0, s1], axis=1).reshape(-1)  # on_0, off_0, on_1, off_1, ...
    order = np.argsort(time, kind="stable")
    aorder = np.argsort(a0, kind="stable")
    canon = np.array([home_label(r, source, labels) for r in raw[aorder]], dtype=str) if raw.size else raw
    return HomeRecording(
        home=home, sensors=table, time=time[order], sensor=np.repeat(sid, 2)[order],
        state=np.tile(np.array(STATES), len(sid))[order], act_start=a0[aorder], act_end=a1[aorder],
        act_label=canon, act_raw=raw[aorder], source=source,
    )


def _sensor_table(sensors: Mapping[str, SensorInfo] | Iterable[SensorInfo | str]) -> dict[str, SensorInfo]:
    if isinstance(sensors, Mapping):
        return dict(sensors)
    table: dict[str, SensorInfo] = {}
    for s in sensors:
        info = s if isinstance(s, SensorInfo) else SensorInfo(str(s), str(s), "unknown", "unknown")
        table[info.id] = info
    return table


def _as_str(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=str).reshape(-1)


def _as_seconds(values: np.ndarray, key: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype="datetime64[s]").reshape(-1)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: `{key}` must hold datetimes (datetime64 or ISO strings): {exc}") from None
    if np.isnat(arr).any():
        raise DataError(f"{source}: `{key}` holds NaT (missing) times.")
    return arr


def _same_length(source: str, **arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{source}: arrays must have the same length; got {lengths}.")
