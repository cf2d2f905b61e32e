"""Canonical home-activity vocabulary, so labels from different smart-home datasets can be compared."""

from __future__ import annotations

import re
from typing import Mapping

from fedhar.exceptions import DataError

HOME_ACTIVITIES = (
    "sleeping", "toileting", "showering", "grooming", "preparing_breakfast", "preparing_lunch",
    "preparing_dinner", "snack_or_drink", "leaving", "relaxing",
)
"""Every canonical home activity, in the order class lists use."""

RAW_LABELS: dict[str, str] = {
    # Ordóñez A/B (UCI ADL binary sensors)
    "sleeping": "sleeping", "toileting": "toileting", "showering": "showering", "grooming": "grooming",
    "breakfast": "preparing_breakfast", "lunch": "preparing_lunch", "dinner": "preparing_dinner",
    "snack": "snack_or_drink", "spare time/tv": "relaxing", "leaving": "leaving",
    # van Kasteren 2008 (spaces) and 2010 TL export (hyphens)
    "leave house": "leaving", "use toilet": "toileting", "take shower": "showering", "brush teeth": "grooming",
    "go to bed": "sleeping", "prepare breakfast": "preparing_breakfast", "prep breakfast": "preparing_breakfast",
    "prepare dinner": "preparing_dinner", "prep dinner": "preparing_dinner", "get drink": "snack_or_drink",
}
"""Normalised raw label (see :func:`normalize_label`) -> canonical home activity."""

_SEP = re.compile(r"[\s_\-]+")


def normalize_label(raw: str) -> str:
    """Lower-case ``raw`` and fold runs of spaces, underscores and hyphens to one space.

    Why: the same activity is spelled ``leave house``, ``leave-house`` and ``Leave_House`` across releases.
    """
    return _SEP.sub(" ", raw.strip().lower()).strip()


def home_label(raw: str, source: str = "<labels>", extra: Mapping[str, str] | None = None) -> str:
    """Canonical activity name of ``raw``.

    Parameters
    ----------
    raw : str
        Label text as published.
    source : str
        File (or other origin) named in the error message.
    extra : mapping, optional
        Additional ``raw -> canonical`` entries (normalised the same way), checked first. Their values need
        not be in :data:`HOME_ACTIVITIES`, so user data may bring its own classes.

    Raises
    ------
    DataError
        When ``raw`` is neither a known label nor in ``extra``.
    """
    key = normalize_label(raw)
    if extra:
        for name, canon in extra.items():
            if normalize_label(name) == key:
                return canon
    if key in RAW_LABELS:
        return RAW_LABELS[key]
    if key.replace(" ", "_") in HOME_ACTIVITIES:
        return key.replace(" ", "_")
    raise DataError(
        f"{source}: unknown activity label {raw!r}. Known labels: {sorted(RAW_LABELS)}; pass `extra` "
        "(raw -> canonical name) to map it."
    )


# --------------------------------------------------------------------------- sensor names (van Kasteren)
DUTCH_WORDS: dict[str, str] = {
    "magnetron": "microwave", "keuken": "kitchen", "slaapkamer": "bedroom", "badkamer": "bathroom",
    "gootsteen": "sink", "kwik": "mercury switch", "rechts": "right", "links": "left",
    # run-together or misspelt English words in the published names
    "frontdoor": "front door", "washingmachine": "washing machine", "toiletflush": "toilet flush",
    "cutlary": "cutlery", "matt": "mat",
}
"""Word -> English display word, applied to van Kasteren sensor names (which give no type or room)."""

SENSOR_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pressure", ("pressure", "press bed", "mat ")),
    ("motion", ("pir",)),
    ("flush", ("flush",)),
    ("float", ("float",)),
    ("door", ("door", "window")),
    ("cupboard", ("cupboard", "cabinet", "drawer", "dresser")),
    ("appliance", ("microwave", "fridge", "refrigerator", "freezer", "dishwasher", "washing machine",
                   "toaster", "stove")),
    ("switch", ("mercury", "reed", "keys", "lift")),
)
"""Sensor type -> keywords in the English display name; the first matching row wins, else ``unknown``."""

SENSOR_PLACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hall", ("hall-",)),
    ("toilet", ("toilet",)),
    ("bathroom", ("bathroom", "bath ", "bathtub", "shower", "sink", "basin")),
    ("bedroom", ("bedroom", "bed ", "bed", "dresser")),
    ("entrance", ("front door", "keys")),
    ("living room", ("living", "couch", "balcony")),
    ("office", ("office", "server")),
    ("kitchen", ("kitchen", "microwave", "fridge", "refrigerator", "freezer", "cupboard", "cabinet", "dishwasher",
                 "toaster", "stove", "cutlery", "pans", "plates", "cups", "groceries", "washing machine", "table")),
)
"""Room -> keywords in the English display name; the first matching row wins, else ``unknown``."""


def english_name(raw: str) -> str:
    """Lower-case English display name of a published sensor name (Dutch words and typos translated)."""
    text = re.sub(r"\[.*?\]", " ", raw)  # drop bracketed originals, e.g. "window [raam]"
    words = [DUTCH_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(words)


def _first_match(name: str, table: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    padded = f" {name} "
    for value, keywords in table:
        if any(k in padded for k in keywords):
            return value
    return "unknown"


def sensor_type(name: str) -> str:
    """Sensor type (``door``, ``cupboard``, ``appliance``, ...) from an English display name."""
    return _first_match(name, SENSOR_TYPES)


def sensor_place(name: str) -> str:
    """Room (``kitchen``, ``bathroom``, ``toilet``, ...) from an English display name."""
    return _first_match(name, SENSOR_PLACES)
