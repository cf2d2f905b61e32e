"""Loader for USC-HAD (Zhang & Sawchuk, UbiComp 2012) as published: ``USC-HAD.zip`` or its unpacked
folder, one MATLAB file per subject, activity and trial, ``USC-HAD/Subject<n>/a<activity>t<trial>.mat``.

Choices, stated once:

* Labels come from the FILE NAME (``a<k>``), subject from the folder name, trial from ``t<j>``.
  The ``.mat`` metadata is read only to report where it disagrees (three files in the release:
  Subject14/a3t2, Subject3/a8t5, Subject5/a8t3); ``activity_numbr``, a field-name typo in
  Subject13/a11t4, is read as ``activity_number``.
* ``sensor_readings`` (N x 6) gives ``acc_x..`` in g and ``gyro_x..``, converted from deg/s to
  rad/s. 100 Hz. Axes as the release: x along gravity, y the walking direction.
* Values outside the nominal range of the MotionNode (±6 g, ±500 deg/s; gyro values up to
  about 814 deg/s occur) are kept; ``fedhar data info usc_had`` counts them.
* Class names (activity order, those present): walking forward, left and right are one class
  ``walking`` by default; the loader option ``walking_directions: true`` (``data.options``) keeps
  ``walking_forward``, ``walking_left`` and ``walking_right``. It is a loader option because
  ``data.labels`` can merge classes but not split them. The vocabulary maps ``walking_forward``
  to walking and has no canonical name for left/right, so they stay classes of their own.
  The others keep the release's names, which the vocabulary maps: walking_upstairs and
  walking_downstairs (canonical already), running_forward -> running, jumping_up -> jumping,
  sitting, standing, sleeping -> lying, elevator_up, elevator_down.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.loaders.recordings import PublishedFiles, Recording, RecordingSet
from fedhar.exceptions import DataError

log = logging.getLogger(__name__)

ACTIVITIES = (
    "walking_forward", "walking_left", "walking_right", "walking_upstairs", "walking_downstairs", "running_forward",
    "jumping_up", "sitting", "standing", "sleeping", "elevator_up", "elevator_down",
)
"""Activities 1..12 of the release's Readme, in snake case."""
RATE_HZ = 100.0
ZIP_NAME = "USC-HAD.zip"
MEMBER = re.compile(r"(?:^|/)Subject(\d+)/a(\d+)t(\d+)\.mat$")
"""Path of a trial file inside the layout: subject, activity, trial."""
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("g",) * 3 + ("rad/s",) * 3
NOMINAL_RANGE = {"acc": 6.0, "gyro": 500.0}
"""MotionNode ranges from the release's Readme: ±6 g, ±500 deg/s."""
_ACTIVITY_FIELDS = ("activity_number", "activity_numbr")
_EXPECTED = f"USC-HAD `USC-HAD/Subject<n>/a<activity>t<trial>.mat` ({ZIP_NAME} or its folder)"


@dataclass
class UscHadRecordings(RecordingSet):
    """USC-HAD trials, with what the release's own checks found."""

    disagreements: list[str] = field(default_factory=list)
    """Files whose metadata disagrees with the file or folder name (which wins)."""
    out_of_range: dict[str, int] = field(default_factory=dict)
    """Per sensor, samples with an axis outside :data:`NOMINAL_RANGE` (kept)."""
    max_abs: dict[str, float] = field(default_factory=dict)
    """Per sensor, the largest absolute value, in g and deg/s."""


def read_usc_had(path: str | Path, walking_directions: bool = False) -> UscHadRecordings:
    """Read every ``a<k>t<j>.mat`` of ``USC-HAD.zip``, its folder, or a folder holding either.

    Parameters
    ----------
    path : str or Path
        The zip, the unpacked ``USC-HAD`` folder, or the folder that holds one of them.
    walking_directions : bool
        Keep walking forward, left and right as three classes (default: one, ``walking``).

    Raises
    ------
    DataError
        No trial file, an activity number outside 1..12, a file MATLAB cannot read, or
        ``sensor_readings`` missing or not N x 6.
    """
    names = [("walking" if not walking_directions and i < 3 else a) for i, a in enumerate(ACTIVITIES)]
    with PublishedFiles(Path(path), MEMBER, _EXPECTED, ZIP_NAME) as files:
        found = sorted((int(m.group(1)), int(m.group(2)), int(m.group(3)), n) for n, m in files.matches)
        bad = next(((n, a) for _, a, _, n in found if not 1 <= a <= len(ACTIVITIES)), None)
        if bad:
            raise DataError(f"{files.where(bad[0])}: activity {bad[1]} in the file name is outside 1..{len(ACTIVITIES)}.")
        classes = tuple(dict.fromkeys(names[a - 1] for a in sorted({f[1] for f in found})))
        recordings, disagreements = [], []
        for subject, act, trial, name in found:
            readings, meta = _read_mat(files.read(name), files.where(name))
            disagreements += _disagreements(name, meta, {"subject": subject, "activity_number": act, "trial": trial})
            recordings.append(Recording(subject, classes.index(names[act - 1]), trial, readings, files.where(name)))
        source = str(files.path)
    if disagreements:
        log.debug("%s: metadata of %d file(s) disagrees with the file name (the name is used): %s",
                 source, len(disagreements), "; ".join(disagreements))
    out, peak = _range_counts(recordings)
    for r in recordings:  # deg/s -> rad/s once the raw values are counted
        r.signal[:, 3:] = np.deg2rad(r.signal[:, 3:])
    return UscHadRecordings(recordings, classes, CHANNELS, UNITS, RATE_HZ, source, "usc_had", disagreements, out, peak)


def load_usc_had(
    path: str | Path,
    *,
    window: int | None = None,
    step: int | None = None,
    rate_hz: float | None = None,
    walking_directions: bool = False,
    nan_policy: str = "error",
) -> WindowDataset:
    """Read USC-HAD and cut windows per trial file.

    Parameters
    ----------
    path : str or Path
        As :func:`read_usc_had`.
    window, step : int, optional
        Window length and hop in samples at the output rate; default 2.56 s (256 samples at
        100 Hz) and half a window.
    rate_hz : float, optional
        Resample each recording to this rate before cutting (e.g. 50 to pool with phone data).
    walking_directions : bool
        Keep ``walking_forward``, ``walking_left``, ``walking_right`` apart (default: ``walking``).
    nan_policy : {"error", "drop"}
        For windows holding NaN/Inf.

    Returns
    -------
    WindowDataset
        Channels ``acc_*`` (g) and ``gyro_*`` (rad/s); extras ``t_start``, ``trial``, ``recording``.
    """
    return read_usc_had(path, walking_directions).windows(window, step, rate_hz, nan_policy)


def describe_usc_had(path: str | Path) -> list[str]:
    """Lines for ``fedhar data info``: samples per published activity, values outside the nominal
    range, and the files whose metadata disagrees with their name."""
    recs = read_usc_had(path, walking_directions=True)
    counts = recs.samples_per_class()
    n = sum(counts.values())
    lines = [
        f"recordings: {len(recs.recordings)} .mat files, {n} samples at {RATE_HZ:g} Hz",
        "samples per activity: " + " | ".join(f"{c} {k}" for c, k in counts.items()),
        f"outside the nominal range (±{NOMINAL_RANGE['acc']:g} g, ±{NOMINAL_RANGE['gyro']:g} deg/s), kept: "
        f"{recs.out_of_range['acc']} acc and {recs.out_of_range['gyro']} gyro samples of {n} "
        f"(largest |acc| {recs.max_abs['acc']:.2f} g, |gyro| {recs.max_abs['gyro']:.0f} deg/s)",
        f"metadata disagreeing with the file name (labels come from the name): {len(recs.disagreements)}",
        *(f"  {d}" for d in recs.disagreements),
    ]
    return lines


def _read_mat(data: bytes, where: str) -> tuple[np.ndarray, dict[str, str]]:
    """``sensor_readings`` as ``(N, 6)`` float32 (gyro still in deg/s) and the string metadata."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        mat = loadmat(io.BytesIO(data))
    except (MatReadError, ValueError, TypeError, OSError, IndexError, KeyError, NotImplementedError) as exc:
        # scipy reports garbage in many ways (an IndexError for a short file)
        raise DataError(f"{where}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc}).") from None
    if "sensor_readings" not in mat:
        keys = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataError(f"{where}: no `sensor_readings` variable (variables: {keys}); expected a USC-HAD trial file.")
    readings = np.asarray(mat["sensor_readings"])
    if readings.ndim != 2 or readings.shape[1] != 6 or not np.issubdtype(readings.dtype, np.number):
        raise DataError(f"{where}: `sensor_readings` must be a numeric N x 6 array (acc xyz in g, gyro xyz in "
                        f"deg/s); got shape {readings.shape}, dtype {readings.dtype}.")
    meta = {k: _text(v) for k, v in mat.items() if not k.startswith("__") and k != "sensor_readings"}
    return readings.astype(np.float32), meta


def _text(value: np.ndarray) -> str:
    """A MATLAB string field (``array(['164cm'])``) as text."""
    flat = np.ravel(value)
    return str(flat[0]).strip() if flat.size else ""


def _disagreements(name: str, meta: dict[str, str], truth: dict[str, int]) -> list[str]:
    """One line per metadata field whose number differs from the file or folder name."""
    fields = {"subject": "subject", "trial": "trial"}
    fields["activity_number"] = next((f for f in _ACTIVITY_FIELDS if f in meta), "activity_number")
    out = []
    for key, meta_key in fields.items():
        value = meta.get(meta_key, "")
        if value.isdigit() and int(value) != truth[key]:
            out.append(f"{name}: `{meta_key}` is {value} but its path says {truth[key]}")
    return out


def _range_counts(recordings: list[Recording]) -> tuple[dict[str, int], dict[str, float]]:
    """Samples with an axis outside :data:`NOMINAL_RANGE`, and the peak, per sensor (raw g and deg/s)."""
    out, peak = dict.fromkeys(NOMINAL_RANGE, 0), dict.fromkeys(NOMINAL_RANGE, 0.0)
    for r in recordings:
        for sensor, cols in (("acc", slice(0, 3)), ("gyro", slice(3, 6))):
            mag = np.abs(r.signal[:, cols])
            out[sensor] += int((mag > NOMINAL_RANGE[sensor]).any(axis=1).sum())
            peak[sensor] = max(peak[sensor], float(mag.max(initial=0.0)))
    return out, peak
