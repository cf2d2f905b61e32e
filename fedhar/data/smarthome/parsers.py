"""Readers for the published smart-home layouts (Ordóñez 2013, van Kasteren 2008 and 2010).

Every reader returns a :class:`~fedhar.data.smarthome.events.HomeRecording`. Malformed lines raise
:class:`DataError` naming the file, the 1-based line number and the offending text, so a corrupt download
is found at once rather than as a silently shorter dataset.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from fedhar.data.smarthome.events import HomeRecording, SensorInfo, recording_from_intervals
from fedhar.data.smarthome.vocab import english_name, home_label, sensor_place, sensor_type
from fedhar.exceptions import ConfigError, DataError

log = logging.getLogger(__name__)

HOMES = ("ordonez_a", "ordonez_b", "kasteren2008", "kasteren2010_a", "kasteren2010_b", "kasteren2010_c")
"""Names accepted by :func:`read_home`."""

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_DMY = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2})")
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                             "nov", "dec"))}
_ORDONEZ_TYPES = {"pir": "motion"}  # the rest (magnetic, flush, pressure, electric) are kept, lower-cased
_ORDONEZ_PLACES = {"living": "living room"}

ORDONEZ_ERRATA: dict[tuple[str, int], tuple[str, str]] = {
    ("OrdonezA_ADLs.txt", 72): ("2011-12-01 16:29:59", "2011-12-01 19:29:59"),
    ("OrdonezA_ADLs.txt", 81): ("2011-12-01 10:20:59", "2011-12-02 12:20:59"),
    ("OrdonezA_ADLs.txt", 83): ("2011-12-01 11:35:49", "2011-12-02 12:35:49"),
}
"""(file, line) -> (published end, corrected end) for the three UCI rows whose end precedes their start.

The published ends keep the right minutes and seconds but carry the wrong day/hour; the correction puts
them just before the next annotated activity. Applied only when the line holds exactly the published end.
"""

Row = tuple[int, list[str], str]  # 1-based line number, stripped fields, raw line


# --------------------------------------------------------------------------- line helpers
def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"expected file {path} not found.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.splitlines()


def _rows(path: Path, lines: list[str], first: int, n_cols: int, split: Callable[[str], list[str]]) -> Iterator[Row]:
    """Non-blank lines from 0-based index ``first`` on, split into exactly ``n_cols`` stripped fields."""
    for i in range(first, len(lines)):
        raw = lines[i]
        if not raw.strip():
            continue
        fields = [f.strip() for f in split(raw.strip())]
        while fields and not fields[-1]:
            fields.pop()  # trailing tab(s)
        if len(fields) != n_cols:
            _fail(path, i + 1, raw, f"expected {n_cols} columns, found {len(fields)}")
        yield i + 1, fields, raw


def _fail(path: Path, lineno: int, raw: str, why: str) -> None:
    raise DataError(f"{path}, line {lineno}: {why}: {raw.strip()!r}")


def _stamp(text: str, path: Path, lineno: int, raw: str) -> datetime:
    m = _ISO.fullmatch(text)
    try:
        if m:
            return datetime(*map(int, m.groups()))
        m = _DMY.fullmatch(text)
        if m and m.group(2).lower() in _MONTHS:
            d, mon, y, hh, mm, ss = m.groups()
            return datetime(int(y), _MONTHS[mon.lower()], int(d), int(hh), int(mm), int(ss))
    except ValueError:
        pass
    _fail(path, lineno, raw, f"unparseable timestamp {text!r}")
    raise AssertionError  # unreachable


def _interval(fields: list[str], path: Path, lineno: int, raw: str) -> tuple[datetime, datetime]:
    t0, t1 = _stamp(fields[0], path, lineno, raw), _stamp(fields[1], path, lineno, raw)
    if t1 < t0:
        _fail(path, lineno, raw, "end time is before start time")
    return t0, t1


_TABS = re.compile(r" *\t[\t ]*").split  # runs of tabs (B_ADLs also has "\t \t")


def _tab(line: str) -> list[str]:
    return line.split("\t")


def _build(home: str, sensors: dict[str, SensorInfo], sens: list, acts: list, source: Path,
           labels: Mapping[str, str] | None) -> HomeRecording:
    s0, s1, sid = (list(c) for c in zip(*sens)) if sens else ([], [], [])
    a0, a1, raw = (list(c) for c in zip(*acts)) if acts else ([], [], [])
    return recording_from_intervals(
        home, sensors, np.array(s0, dtype="datetime64[s]"), np.array(s1, dtype="datetime64[s]"), sid,
        np.array(a0, dtype="datetime64[s]"), np.array(a1, dtype="datetime64[s]"), raw,
        labels=labels, source=str(source),
    )


def _activities(path: Path, rows: Iterator[Row], names: Mapping[str, str], labels: Mapping[str, str] | None) -> list:
    """``(start, end, raw label)`` per row; ``names`` maps an id column to its label (empty: the column is the label)."""
    out = []
    for lineno, f, raw in rows:
        t0, t1 = _interval(f, path, lineno, raw)
        if names:
            if f[2] not in names:
                _fail(path, lineno, raw, f"unknown activity id {f[2]!r} (known: {sorted(names, key=_num)})")
            label = names[f[2]]
        else:
            label = f[2]
        try:
            home_label(label, f"{path}, line {lineno}", labels)
        except DataError as exc:
            raise DataError(f"{exc.reason} Line text: {raw.strip()!r}") from None
        out.append((t0, t1, label))
    return out


def _num(key: str) -> tuple[int, str]:
    return (int(key), key) if key.isdigit() else (10**9, key)


# --------------------------------------------------------------------------- Ordóñez
def read_ordonez(folder: str | Path, home: str = "A", *, labels: Mapping[str, str] | None = None) -> HomeRecording:
    """UCI ADL binary-sensor home ``A`` or ``B``: ``Ordonez{home}_Sensors.txt`` and ``Ordonez{home}_ADLs.txt``.

    Sensor ids are ``f"{Location}_{Place}"`` because house B has three "Door" PIRs in different rooms.
    The three known reversed rows of ``OrdonezA_ADLs.txt`` are repaired (see :data:`ORDONEZ_ERRATA`).
    """
    h = str(home).upper()
    if h not in ("A", "B"):
        raise ConfigError(f"Ordóñez home must be 'A' or 'B'; got {home!r}.")
    folder = Path(folder)
    spath, apath = folder / f"Ordonez{h}_Sensors.txt", folder / f"Ordonez{h}_ADLs.txt"
    sensors: dict[str, SensorInfo] = {}
    sens = []
    for lineno, f, raw in _rows(spath, _lines(spath), 2, 5, _TABS):
        t0, t1 = _interval(f, spath, lineno, raw)
        loc, typ, place = f[2], f[3].lower(), f[4].lower()
        sid = f"{f[2]}_{f[4]}"
        if sid not in sensors:
            sensors[sid] = SensorInfo(sid, loc.lower(), _ORDONEZ_TYPES.get(typ, typ), _ORDONEZ_PLACES.get(place, place))
        sens.append((t0, t1, sid))
    alines = _lines(apath)
    for (name, lineno), (old, new) in ORDONEZ_ERRATA.items():
        if name == apath.name and lineno <= len(alines) and old in alines[lineno - 1]:
            alines[lineno - 1] = alines[lineno - 1].replace(old, new)
            log.info("%s, line %d: corrected reversed end time %s -> %s", apath, lineno, old, new)
    acts = _activities(apath, _rows(apath, alines, 2, 3, _TABS), {}, labels)
    return _build(f"ordonez_{h.lower()}", sensors, sens, acts, folder, labels)


# --------------------------------------------------------------------------- van Kasteren 2008
_SENSOR_ENTRY = re.compile(r"\[\s*(\d+)\]\s*'([^']*)'")
_ACT_ENTRY = re.compile(r"^\s*(\d+)\s*:\s*'([^']*)'")


def _header_end(path: Path, lines: list[str]) -> int:
    """0-based index of the first data line: the one after the ``Start time ...`` and dashes lines."""
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("start time") and "\t" in line:
            return i + 2
    raise DataError(f"{path}: no column-name line starting with 'Start time' (tab-separated) found.")


_LENGTH = re.compile(r"Length:\s*(\d+)")


def _footer(lines: list[str]) -> int | None:
    """Remove a trailing ``Length: N`` line (in place) and return N, or ``None`` when there is none."""
    while lines and not lines[-1].strip():
        lines.pop()
    m = _LENGTH.fullmatch(lines[-1].strip()) if lines else None
    if m:
        lines.pop()
        return int(m.group(1))
    return None


def read_kasteren2008(folder: str | Path, *, labels: Mapping[str, str] | None = None) -> HomeRecording:
    """van Kasteren 2008 house: ``kasterenSenseData.txt`` and ``kasterenActData.txt`` (id lists from the headers)."""
    folder = Path(folder)
    spath, apath = folder / "kasterenSenseData.txt", folder / "kasterenActData.txt"
    slines, alines = _lines(spath), _lines(apath)
    s_first, a_first = _header_end(spath, slines), _header_end(apath, alines)
    names = {m.group(1): m.group(2).strip() for line in slines[:s_first] for m in [_SENSOR_ENTRY.search(line)] if m}
    acts_by_id = {m.group(1): m.group(2).strip() for line in alines[:a_first] for m in [_ACT_ENTRY.match(line)] if m}
    if not names:
        raise DataError(f"{spath}: header lists no sensor ids (expected lines like \"[ 1]    'Microwave'\").")
    if not acts_by_id:
        raise DataError(f"{apath}: header lists no activity ids (expected lines like \"1: 'leave house'\").")
    sensors = {k: _kasteren_sensor(k, v) for k, v in names.items()}
    s_len, a_len = _footer(slines), _footer(alines)
    sens = []
    for lineno, f, raw in _rows(spath, slines, s_first, 4, _tab):
        t0, t1 = _interval(f, spath, lineno, raw)
        if f[2] not in sensors:
            _fail(spath, lineno, raw, f"unknown sensor id {f[2]!r} (header lists {sorted(sensors, key=_num)})")
        sens.append((t0, t1, f[2]))
    acts = _activities(apath, _rows(apath, alines, a_first, 3, _tab), acts_by_id, labels)
    for path, stated, found in ((spath, s_len, len(sens)), (apath, a_len, len(acts))):
        if stated is not None and stated != found:
            raise DataError(f"{path}: footer says 'Length: {stated}' but {found} rows were read (truncated file?).")
    return _build("kasteren2008", sensors, sens, acts, folder, labels)


def _kasteren_sensor(sid: str, raw_name: str) -> SensorInfo:
    name = english_name(raw_name)
    return SensorInfo(sid, name, sensor_type(name), sensor_place(name))


# --------------------------------------------------------------------------- van Kasteren 2010 (TL export)
def _id_map(path: Path, min_cols: int, required: bool = True) -> dict[str, str]:
    """``id -> name`` from ``id,name[,category]`` lines; ``#`` comments and blank lines skipped."""
    if not required and not path.is_file():
        return {}
    out: dict[str, str] = {}
    for i, raw in enumerate(_lines(path)):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < min_cols or not parts[0].isdigit():
            _fail(path, i + 1, raw, f"expected 'id,name{',category' if min_cols == 3 else ''}'")
        out[parts[0]] = ",".join(parts[1:-1] if min_cols == 3 else parts[1:])
    return out


def read_kasteren2010(folder: str | Path, house: str = "A", *,
                      labels: Mapping[str, str] | None = None) -> HomeRecording:
    """TL export of van Kasteren 2010 house ``A``, ``B`` or ``C``.

    Sensor ids missing from ``sensorMap{X}-ids.txt`` (and from the optional
    ``sensorMap{X}-ids_supplement_pyadlml.txt``) are named ``sensor <id>`` with a logged warning.
    """
    h = str(house).upper()
    if h not in ("A", "B", "C"):
        raise ConfigError(f"van Kasteren 2010 house must be 'A', 'B' or 'C'; got {house!r}.")
    folder = Path(folder)
    spath, apath = folder / f"house{h}-ss.txt", folder / f"house{h}-as.txt"
    names = _id_map(folder / f"sensorMap{h}-ids.txt", 3)
    for sid, name in _id_map(folder / f"sensorMap{h}-ids_supplement_pyadlml.txt", 2, required=False).items():
        names.setdefault(sid, name)
    acts_by_id = _id_map(folder / f"actionMap{h}.txt", 2)
    sensors = {k: _kasteren_sensor(k, v) for k, v in names.items() if not v.lower().startswith("unknown")}
    sens, missing = [], set()
    for lineno, f, raw in _rows(spath, _lines(spath), 0, 3, _tab):
        t0, t1 = _interval(f, spath, lineno, raw)
        sid = f[2]
        if not sid.isdigit():
            _fail(spath, lineno, raw, f"sensor id {sid!r} is not an integer")
        if sid not in sensors:
            sensors[sid] = SensorInfo(sid, f"sensor {sid}", "unknown", "unknown")
            if sid not in names:
                missing.add(sid)
        sens.append((t0, t1, sid))
    if missing:
        log.warning("%s: sensor ids %s are not in the sensor map; named 'sensor <id>'.", spath,
                    sorted(missing, key=_num))
    acts = _activities(apath, _rows(apath, _lines(apath), 0, 3, _tab), acts_by_id, labels)
    return _build(f"kasteren2010_{h.lower()}", sensors, sens, acts, folder, labels)


# --------------------------------------------------------------------------- dispatch
def read_home(root: str | Path, name: str, *, labels: Mapping[str, str] | None = None) -> HomeRecording:
    """One of :data:`HOMES` from the ``smarthome`` folder ``root`` (``ordonez/``, ``kasteren2008/``, ``kasteren2010/``)."""
    if name not in HOMES:
        raise ConfigError(f"unknown smart-home dataset {name!r}; valid names: {', '.join(HOMES)}.")
    root = Path(root)
    if name.startswith("ordonez_"):
        return read_ordonez(root / "ordonez", name[-1].upper(), labels=labels)
    if name == "kasteren2008":
        return read_kasteren2008(root / "kasteren2008", labels=labels)
    return read_kasteren2010(root / "kasteren2010", name[-1].upper(), labels=labels)
