"""Event windows over a :class:`HomeRecording`: the unit a smart-home activity classifier sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedhar.data.smarthome.events import HomeRecording
from fedhar.exceptions import ConfigError

UNLABELLED = ("drop", "other")
OTHER = "other"


@dataclass
class EventWindows:
    """Windows ``[start, end)`` of event indices into ``recording``, each with the label at its last event."""

    recording: HomeRecording
    start: np.ndarray
    """``(N,)`` int index of each window's first event (inclusive)."""
    end: np.ndarray
    """``(N,)`` int index one past each window's last event."""
    label: np.ndarray
    """``(N,)`` canonical label at the last event (``"other"`` where unlabelled and kept)."""
    time: np.ndarray
    """``(N,)`` datetime64[s] of the last event."""

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def home(self) -> str:
        return self.recording.home

    def subset(self, idx: np.ndarray) -> "EventWindows":
        """The windows at ``idx`` (integer indices or a boolean mask), sharing the same recording."""
        idx = np.asarray(idx)
        return EventWindows(self.recording, self.start[idx], self.end[idx], self.label[idx], self.time[idx])

    def day(self) -> np.ndarray:
        """``(N,)`` datetime64[D] calendar day of each window's last event."""
        return self.time.astype("datetime64[D]")

    def sizes(self) -> np.ndarray:
        """``(N,)`` number of events per window."""
        return self.end - self.start


def event_windows(
    rec: HomeRecording,
    k: int = 10,
    *,
    span_seconds: float | None = None,
    max_events: int = 50,
    stride: int = 1,
    unlabelled: str = "drop",
) -> EventWindows:
    """Cut ``rec`` into windows that each end at one event.

    Parameters
    ----------
    rec : HomeRecording
        Time-sorted events.
    k : int
        Events per window (count mode). The first window ends at event ``k - 1``; ignored with ``span_seconds``.
    span_seconds : float, optional
        Time mode: a window holds every event in ``[t_last - span_seconds, t_last]``, at most the
        ``max_events`` latest ones, and at least the last event itself; the first window ends at event 0.
    max_events : int
        Cap on events per window in time mode, so chatty sensors (bed mats firing thousands of times) do not
        produce huge windows.
    stride : int
        Step, in events, between consecutive window ends.
    unlabelled : {"drop", "other"}
        Label rule: a window is labelled with the activity in progress at the time of its last event
        (:meth:`HomeRecording.activity_at`), because that is the moment an online recogniser must decide.
        ``"drop"`` removes windows whose last event lies outside every annotated activity; ``"other"``
        keeps them labelled ``"other"``.

    Returns
    -------
    EventWindows
        In event order.

    Raises
    ------
    ConfigError
        When ``k``, ``stride``, ``span_seconds``, ``max_events`` or ``unlabelled`` is invalid.
    """
    _positive_int(stride, "stride")
    if unlabelled not in UNLABELLED:
        raise ConfigError(f"`unlabelled` must be one of {UNLABELLED}; got {unlabelled!r}.")
    n = len(rec)
    if span_seconds is None:
        _positive_int(k, "k")
        last = np.arange(k - 1, n, stride, dtype=np.int64)
        first = last - (k - 1)
    else:
        if isinstance(span_seconds, bool) or not isinstance(span_seconds, (int, float)) or not (
            np.isfinite(span_seconds) and span_seconds >= 0
        ):
            raise ConfigError(f"`span_seconds` must be a finite number >= 0; got {span_seconds!r}.")
        _positive_int(max_events, "max_events")
        last = np.arange(0, n, stride, dtype=np.int64)
        span = np.timedelta64(int(np.floor(span_seconds)), "s")  # event times have 1 s resolution
        first = np.searchsorted(rec.time, rec.time[last] - span, side="left").astype(np.int64)
        first = np.maximum(first, last + 1 - max_events)
    time = rec.time[last]
    label = rec.activity_at(time) if len(last) else np.array([], dtype=str)
    if unlabelled == "drop":
        keep = label != ""
        first, last, label, time = first[keep], last[keep], label[keep], time[keep]
    else:
        label = np.where(label == "", OTHER, label)
    return EventWindows(rec, first, last + 1, label.astype(str), time)


def _positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer; got {value!r}.")
