"""Hand-crafted window features for the classical (scikit-learn) smart-home baseline."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fedhar.data.smarthome.windows import EventWindows
from fedhar.exceptions import ConfigError

SECONDS_PER_DAY = 86400


def count_features(windows: EventWindows, sensor_ids: Sequence[str]) -> np.ndarray:
    """Per window: "on" events of each sensor, then sin and cos of the hour of day of the last event.

    A fixed ``sensor_ids`` order gives every home the same columns (ids a home lacks count zero), which is
    what a shared classifier needs. The hour is fractional (minutes and seconds included) and encoded on the
    unit circle so 23:59 and 00:00 are neighbours.

    Returns
    -------
    np.ndarray
        ``(N, len(sensor_ids) + 2)`` float64.

    Raises
    ------
    ConfigError
        When ``sensor_ids`` holds duplicates.
    """
    ids = [str(s) for s in sensor_ids]
    if len(set(ids)) != len(ids):
        dup = sorted({s for s in ids if ids.count(s) > 1})
        raise ConfigError(f"`sensor_ids` must be unique; duplicated: {dup}.")
    rec = windows.recording
    col = {s: i for i, s in enumerate(ids)}
    event_col = np.array([col.get(s, -1) for s in rec.sensor.tolist()], dtype=np.int64)
    hit = (rec.state == "on") & (event_col >= 0)
    onehot = np.zeros((len(rec) + 1, len(ids)), dtype=np.int64)
    rows = np.flatnonzero(hit)
    onehot[rows + 1, event_col[rows]] = 1
    cum = np.cumsum(onehot, axis=0)  # cum[i] = counts over events [0, i)
    counts = (cum[windows.end] - cum[windows.start]).astype(np.float64)
    t = windows.time.astype("datetime64[s]")
    sec = (t - t.astype("datetime64[D]")).astype(np.int64)
    angle = 2 * np.pi * sec / SECONDS_PER_DAY
    return np.column_stack([counts, np.sin(angle), np.cos(angle)]) if len(windows) else np.zeros((0, len(ids) + 2))
