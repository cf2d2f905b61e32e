"""Windows of smart-home sensor events as short texts: one line per event.

Why text: homes differ in their sensors and rooms, but every home's events can be written in the
same language, which is what lets one LLM (and one federation) serve homes with different layouts.

The format is a template (:class:`EventTextTemplate`). The default line is
``"{time} {place}: {sensor} {state}"``, e.g. ``"07:41 kitchen: fridge opened"``, with state words
chosen by sensor type (doors and cupboards open and close, motion sensors see motion or go quiet,
mats are pressed and released). Serialisation is a pure function of the window, so the same
window always gives the same text, and :func:`parse_line` reads the fields back from a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from fedhar.exceptions import ConfigError

FIELDS = ("time", "place", "sensor", "type", "state", "weekday")
"""Fields a line template may use."""

STATE_WORDS: dict[str, tuple[str, str]] = {
    "magnetic": ("opened", "closed"), "door": ("opened", "closed"), "cupboard": ("opened", "closed"),
    "contact": ("opened", "closed"), "reed": ("opened", "closed"),
    "pir": ("motion", "quiet"), "motion": ("motion", "quiet"),
    "pressure": ("pressed", "released"), "mat": ("pressed", "released"),
    "flush": ("flushed", "refilled"), "float": ("flushed", "refilled"),
    "electric": ("switched on", "switched off"), "appliance": ("switched on", "switched off"),
}
"""(on word, off word) per sensor type; any other type says ``on`` / ``off``."""
DEFAULT_WORDS = ("on", "off")


def state_word(sensor_type: str, state: str) -> str:
    on, off = STATE_WORDS.get(str(sensor_type).lower(), DEFAULT_WORDS)
    return on if state == "on" else off


def _clean(text: str) -> str:
    """Names as words: underscores and separators the templates use become spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[_:\n\r\t|]", " ", str(text))).strip().lower()


@dataclass
class EventTextTemplate:
    """How a window of events becomes text (the ``text:`` options of the smart-home data)."""

    line: str = field(default="{time} {place}: {sensor} {state}", metadata={"help": f"One line per event; fields: {', '.join(FIELDS)}."})
    time_format: str = field(default="%H:%M", metadata={"help": "strftime format of {time}."})
    header: str | None = field(default=None, metadata={"help": "Optional first line describing the home; fields {home}, {rooms}, {sensors}. Example: 'home with rooms {rooms} and sensors {sensors}'."})
    joiner: str = field(default="\n", metadata={"help": "Between lines."})

    def __post_init__(self) -> None:
        used = set(re.findall(r"{(\w+)}", self.line))
        if not used:
            raise ConfigError(f"`text.line` must use some of the fields {{{'}, {'.join(FIELDS)}}}; got {self.line!r}.")
        bad = sorted(used - set(FIELDS))
        if bad:
            raise ConfigError(f"`text.line` uses unknown field(s) {bad}; valid: {', '.join(FIELDS)}.")
        if self.header is not None:
            bad = sorted(set(re.findall(r"{(\w+)}", self.header)) - {"home", "rooms", "sensors"})
            if bad:
                raise ConfigError(f"`text.header` uses unknown field(s) {bad}; valid: home, rooms, sensors.")


def event_fields(rec, i: int, template: EventTextTemplate) -> dict[str, str]:
    """The template fields of event ``i`` of a :class:`~fedhar.data.smarthome.HomeRecording`."""
    info = rec.sensors[str(rec.sensor[i])]
    when = rec.time[i].astype("datetime64[s]").item()
    return {"time": when.strftime(template.time_format), "weekday": when.strftime("%A").lower(),
            "place": _clean(info.place), "sensor": _clean(info.name), "type": _clean(info.type),
            "state": state_word(info.type, str(rec.state[i]))}


def home_header(rec, template: EventTextTemplate) -> str | None:
    if template.header is None:
        return None
    rooms = sorted({_clean(s.place) for s in rec.sensors.values()})
    sensors = sorted({_clean(s.name) for s in rec.sensors.values()})
    return template.header.format(home=_clean(rec.home), rooms=", ".join(rooms), sensors=", ".join(sensors))


def serialize_window(rec, start: int, end: int, template: EventTextTemplate | None = None) -> str:
    """Events ``start:end`` of ``rec`` as text (a pure function: same window, same text)."""
    template = template or EventTextTemplate()
    lines = [template.line.format(**event_fields(rec, i, template)) for i in range(start, end)]
    header = home_header(rec, template)
    return template.joiner.join(([header] if header else []) + lines)


def serialize_windows(windows, template: EventTextTemplate | None = None) -> list[str]:
    """Every window of an :class:`~fedhar.data.smarthome.EventWindows` as text."""
    return [serialize_window(windows.recording, int(s), int(e), template) for s, e in zip(windows.start, windows.end)]


def _line_pattern(template: EventTextTemplate) -> re.Pattern:
    words = sorted({w for pair in STATE_WORDS.values() for w in pair} | set(DEFAULT_WORDS), key=len, reverse=True)
    parts, pos = [], 0
    for m in re.finditer(r"{(\w+)}", template.line):
        parts.append(re.escape(template.line[pos:m.start()]))
        name = m.group(1)
        parts.append(f"(?P<{name}>{'|'.join(map(re.escape, words))})" if name == "state" else f"(?P<{name}>.+?)")
        pos = m.end()
    parts.append(re.escape(template.line[pos:]))
    return re.compile("^" + "".join(parts) + "$")


def parse_line(line: str, template: EventTextTemplate | None = None) -> dict[str, str]:
    """The fields of one serialised event line (the inverse of the line template).

    Raises
    ------
    ValueError
        When ``line`` does not follow the template.
    """
    template = template or EventTextTemplate()
    m = _line_pattern(template).match(line)
    if m is None:
        raise ValueError(f"line {line!r} does not follow the template {template.line!r}.")
    return m.groupdict()


def hour_of(windows) -> np.ndarray:
    """Hour of day of each window's last event (for reports and baselines)."""
    t = np.asarray(windows.time).astype("datetime64[s]")
    return ((t - t.astype("datetime64[D]")).astype(np.int64) // 3600).astype(np.int64)
