"""Splits for smart-home windows: by calendar day (no future leakage) and across homes."""

from __future__ import annotations

import math
from typing import Iterable, Sequence, TypeVar, Union

import numpy as np

from fedhar.data.smarthome.events import HomeRecording
from fedhar.data.smarthome.windows import EventWindows
from fedhar.exceptions import ConfigError, DataError

T = TypeVar("T", bound=Union[HomeRecording, EventWindows])


def day_of(obj: EventWindows | HomeRecording | np.ndarray) -> np.ndarray:
    """datetime64[D] day of each window's last event, each recording event, or each given time."""
    if isinstance(obj, EventWindows):
        return obj.day()
    if isinstance(obj, HomeRecording):
        return obj.days()
    return np.asarray(obj, dtype="datetime64[s]").astype("datetime64[D]")


def chronological_split(windows: EventWindows, test_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Train/test window indices split by calendar day of the last event.

    Days are sorted; the last ``ceil(test_fraction * n_days)`` go to test (clamped so each side keeps at
    least one day), the rest to train. A random split would put neighbouring, near-identical windows on both
    sides; splitting by whole days keeps every test day after every training day.

    Returns
    -------
    train_idx, test_idx : np.ndarray
        Sorted int64 indices into ``windows``.

    Raises
    ------
    ConfigError
        When ``test_fraction`` is not in (0, 1).
    DataError
        When the windows span fewer than 2 days.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ConfigError(f"`test_fraction` must be a number in (0, 1); got {test_fraction!r}.")
    day = day_of(windows)
    days = np.unique(day)
    if len(days) < 2:
        raise DataError(
            f"{windows.home}: a chronological split needs windows on at least 2 days; found {len(days)}."
        )
    n_test = math.ceil(round(test_fraction * len(days), 9))  # round: 0.3 * 10 is 3.0000000000000004
    n_test = min(max(n_test, 1), len(days) - 1)
    first_test = days[len(days) - n_test]
    test = day >= first_test
    return np.flatnonzero(~test).astype(np.int64), np.flatnonzero(test).astype(np.int64)


def cross_home_split(items: Iterable[T], test_homes: str | Sequence[str]) -> tuple[list[T], list[T]]:
    """Split recordings (or window sets) by home: those in ``test_homes`` test, the others train.

    Returns
    -------
    train, test : list
        The given objects, in input order.

    Raises
    ------
    ConfigError
        When a test home is not among the items, a home appears twice, or no home is left on either side.
    """
    items = list(items)
    names = [it.home for it in items]
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise ConfigError(f"cross_home_split: homes given more than once: {dup}.")
    wanted = [test_homes] if isinstance(test_homes, str) else list(test_homes)
    unknown = [h for h in wanted if h not in names]
    if unknown:
        raise ConfigError(f"cross_home_split: unknown test home(s) {unknown}; available: {names}.")
    train = [it for it in items if it.home not in wanted]
    test = [it for it in items if it.home in wanted]
    if not train or not test:
        raise ConfigError(
            f"cross_home_split: need at least one training and one test home; got train={[i.home for i in train]}, "
            f"test={[i.home for i in test]}."
        )
    return train, test
