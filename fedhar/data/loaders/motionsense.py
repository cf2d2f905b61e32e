"""Loader for MotionSense (Malekzadeh et al., IoTDI 2019) as published: ``A_DeviceMotion_data.zip``
or its unpacked folder, one CSV per activity trial and subject, ``A_DeviceMotion_data/<act>_<trial>/sub_<n>.csv``.

Choices, stated once:

* Activity from the folder name (``dws ups wlk jog sit std``, kept as class names; the vocabulary
  maps them to walking_downstairs, walking_upstairs, walking, jogging, sitting, standing), trial
  from the folder number, subject from the file name. Classes follow that order, those present only.
* Each CSV is one recording: windows never span two. Rows have no timestamps; they are taken as
  evenly spaced at 50 Hz (CoreMotion's rate).
* Channels (``acceleration``): ``total`` (default) gives ``acc_x..`` = gravity + userAcceleration,
  the raw accelerometer in g; ``body`` gives ``body_acc_x..`` = userAcceleration (gravity
  removed by CoreMotion); ``both`` gives ``total_acc_x..`` then ``body_acc_x..``, named as in
  UCI-HAR. The gyroscope is always ``gyro_x..`` from rotationRate, in rad/s. Attitude is not read.
* ``data_subjects_info.csv`` (in the layout, or beside the zip or folder) adds per-window
  ``extras`` ``age`` (years), ``height_cm``, ``weight_kg`` (float, NaN for a subject it lacks)
  and ``gender`` (0 female, 1 male, -1 unknown). Without the file these extras are absent.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders.recordings import PublishedFiles, Recording, RecordingSet
from fedhar.exceptions import DataError

log = logging.getLogger(__name__)

ACTIVITIES = ("dws", "ups", "wlk", "jog", "sit", "std")
"""Activity codes of the trial folders, in the authors' order."""
RATE_HZ = 50.0
ZIP_NAME = "A_DeviceMotion_data.zip"
FOLDER = "A_DeviceMotion_data"
SUBJECTS_FILE = "data_subjects_info.csv"
MEMBER = re.compile(r"(?:^|/)(dws|ups|wlk|jog|sit|std)_(\d+)/sub_(\d+)\.csv$")
"""Path of a trial CSV inside the layout: activity, trial, subject."""
ACCELERATION = ("total", "body", "both")
_XYZ = ("x", "y", "z")
_COLUMNS = {"gravity": "gravity", "user": "userAcceleration", "gyro": "rotationRate"}
_SUBJECT_COLUMNS = ("code", "weight", "height", "age", "gender")
_UNKNOWN = (np.nan, np.nan, np.nan, -1)
"""Extras of a subject ``data_subjects_info.csv`` lacks."""
_EXPECTED = f"MotionSense `{FOLDER}/<act>_<trial>/sub_<n>.csv` ({ZIP_NAME} or its folder)"


@dataclass
class MotionSenseRecordings(RecordingSet):
    """MotionSense trials, with the subjects' table when it was found."""

    subjects_info: dict[int, tuple[float, float, float, int]] | None = None
    """code -> (age, height cm, weight kg, gender)."""
    subjects_file: str | None = None

    def windows(self, window: int | None = None, step: int | None = None, rate_hz: float | None = None,
                nan_policy: str = "error") -> WindowDataset:
        """As :meth:`RecordingSet.windows`, plus the subjects' age, height, weight and gender as extras."""
        ds = super().windows(window, step, rate_hz, nan_policy)
        if self.subjects_info is None:
            return ds
        subjects, row = np.unique(ds.subject, return_inverse=True)
        table = np.array([self.subjects_info.get(int(s), _UNKNOWN) for s in subjects], dtype=np.float64)
        values = table.reshape(-1, 4)[row]
        extras = {key: values[:, i] for i, key in enumerate(("age", "height_cm", "weight_kg"))}
        extras["gender"] = values[:, 3].astype(np.int64)
        return ds.replace(extras={**ds.extras, **extras})


def read_motionsense(path: str | Path, acceleration: str = "total") -> MotionSenseRecordings:
    """Read every trial CSV of ``A_DeviceMotion_data.zip``, its folder, or a folder holding either.

    Parameters
    ----------
    path : str or Path
        The zip, the unpacked ``A_DeviceMotion_data`` folder, or the folder that holds one of them.
    acceleration : {"total", "body", "both"}
        Which acceleration channels to build (see the module notes).

    Raises
    ------
    DataError
        An unknown ``acceleration``, no trial CSV, a CSV without the DeviceMotion columns or
        with non-numeric rows, or a malformed ``data_subjects_info.csv``.
    """
    if acceleration not in ACCELERATION:
        raise DataError(f"MotionSense `acceleration` must be one of {', '.join(ACCELERATION)}; got {acceleration!r}.")
    path = Path(path)
    with PublishedFiles(path, MEMBER, _EXPECTED, ZIP_NAME) as files:
        found = sorted(((int(m.group(3)), int(m.group(2)), m.group(1), n) for n, m in files.matches))
        present = [a for a in ACTIVITIES if any(f[2] == a for f in found)]
        recordings = [
            Recording(subject, present.index(act), trial, _signal(files.read(name), files.where(name), acceleration),
                      files.where(name))
            for subject, trial, act, name in found
        ]
        info, info_where = _subjects_info(files)
        source = str(files.path)
    channels, units = _channels(acceleration)
    return MotionSenseRecordings(recordings, tuple(present), channels, units, RATE_HZ, source, "motionsense",
                                 info, info_where)


def load_motionsense(
    path: str | Path,
    *,
    window: int | None = None,
    step: int | None = None,
    rate_hz: float | None = None,
    acceleration: str = "total",
    nan_policy: str = "error",
) -> WindowDataset:
    """Read MotionSense and cut windows per trial CSV.

    Parameters
    ----------
    path : str or Path
        As :func:`read_motionsense`.
    window, step : int, optional
        Window length and hop in samples at the output rate; default 2.56 s (128 samples at
        50 Hz) and half a window.
    rate_hz : float, optional
        Resample each recording to this rate before cutting.
    acceleration : {"total", "body", "both"}
        ``acc_*`` (gravity included, default), ``body_acc_*``, or ``total_acc_*`` and ``body_acc_*``.
    nan_policy : {"error", "drop"}
        For windows holding NaN/Inf.

    Returns
    -------
    WindowDataset
        Classes ``dws ups wlk jog sit std`` (those present); extras ``t_start``, ``trial``,
        ``recording`` and, with ``data_subjects_info.csv``, ``age``, ``height_cm``, ``weight_kg``, ``gender``.
    """
    return read_motionsense(path, acceleration).windows(window, step, rate_hz, nan_policy)


def describe_motionsense(path: str | Path) -> list[str]:
    """Lines for ``fedhar data info``: rows as published (comparable with the authors' counts) and the subjects' table."""
    recs = read_motionsense(path)
    counts = recs.samples_per_class()
    lines = [f"recordings: {len(recs.recordings)} CSVs, {sum(counts.values())} rows at {RATE_HZ:g} Hz "
             f"(no timestamps; evenly spaced assumed)",
             "rows per activity: " + " | ".join(f"{c} {n}" for c, n in counts.items())]
    if recs.subjects_info is None:
        lines.append(f"subject info: no {SUBJECTS_FILE} found (no age/height/weight/gender extras)")
    else:
        lines.append(f"subject info: {recs.subjects_file}, {len(recs.subjects_info)} subjects "
                     "(extras age, height_cm, weight_kg, gender)")
    return lines


def _channels(acceleration: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    sensors = {"total": ["acc"], "body": ["body_acc"], "both": ["total_acc", "body_acc"]}[acceleration] + ["gyro"]
    channels = tuple(f"{s}_{ax}" for s in sensors for ax in _XYZ)
    return channels, tuple("rad/s" if c.startswith("gyro") else "g" for c in channels)


def _signal(data: bytes, where: str, acceleration: str) -> np.ndarray:
    """``(T, C)`` float32 channels of one trial CSV, in the order of :func:`_channels`."""
    text = data.decode("utf-8-sig", errors="replace")
    header = [h.strip() for h in text.partition("\n")[0].split(",")]
    wanted = [f"{_COLUMNS[k]}.{ax}" for k in ("gravity", "user", "gyro") for ax in _XYZ]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; expected the MotionSense DeviceMotion "
                        f"header (attitude.*, gravity.*, rotationRate.*, userAcceleration.*).")
    try:
        arr = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, ndmin=2, dtype=np.float64,
                         usecols=[header.index(c) for c in wanted])
    except ValueError as exc:
        raise DataError(f"{where}: not a table of numbers below the header ({exc}).") from None
    gravity, user, gyro = arr[:, 0:3], arr[:, 3:6], arr[:, 6:9]
    acc = {"total": [gravity + user], "body": [user], "both": [gravity + user, user]}[acceleration]
    return np.concatenate([*acc, gyro], axis=1).astype(np.float32)


def _subjects_info(files: PublishedFiles) -> tuple[dict[int, tuple[float, float, float, int]] | None, str | None]:
    """``data_subjects_info.csv`` from inside the layout, else beside the zip or folder; (None, None) when absent."""
    member = files.find(SUBJECTS_FILE)
    if member is not None:
        return _parse_subjects(files.read(member), files.where(member)), files.where(member)
    candidate = files.path.parent / SUBJECTS_FILE
    if candidate.is_file():
        return _parse_subjects(candidate.read_bytes(), str(candidate)), str(candidate)
    log.info("%s: no %s found; subject metadata extras left out", files.path, SUBJECTS_FILE)
    return None, None


def _parse_subjects(data: bytes, where: str) -> dict[int, tuple[float, float, float, int]]:
    """code -> (age, height, weight, gender); the file starts with a UTF-8 BOM, read past it."""
    lines = [ln for ln in data.decode("utf-8-sig", errors="replace").splitlines() if ln.strip()]
    header = [h.strip().lower() for h in lines[0].split(",")] if lines else []
    missing = [c for c in _SUBJECT_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}; expected the header "
                        f"{','.join(_SUBJECT_COLUMNS)}.")
    try:
        arr = np.loadtxt(lines[1:], delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{where}: not a table of numbers below the header ({exc}).") from None
    col = {c: arr[:, header.index(c)] for c in _SUBJECT_COLUMNS} if arr.size else {c: np.zeros(0) for c in _SUBJECT_COLUMNS}
    return {int(code): (float(age), float(h), float(w), int(g))
            for code, age, h, w, g in zip(col["code"], col["age"], col["height"], col["weight"], col["gender"])}
