"""Loader for HAPT continuous streams: the official ``RawData/`` folder or ``hapt_raw.npz``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.streams import cut_windows, label_windows, resample_stream, window_starts
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

CLASSES = (
    "WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
    "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND",
)
"""HAPT activity ids 1..12 (``activity_labels.txt`` of the HAPT distribution)."""
RATE_HZ = 50.0
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
NPZ_KEYS = ("acc", "gyro", "label", "subject", "experiment")
_RAW_FILE = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$")


@dataclass
class SensorStream:
    """One recording session: samples in time order at the collection's rate."""

    experiment: int
    subject: int
    acc: np.ndarray
    """``(T, 3)`` accelerometer, g."""
    gyro: np.ndarray
    """``(T, 3)`` gyroscope, rad/s."""
    label: np.ndarray
    """``(T,)`` 0-based class index, ``-1`` where unlabelled."""

    def __len__(self) -> int:
        return int(self.acc.shape[0])


@dataclass
class HaptStreams:
    """All HAPT recordings, ordered by experiment id (time order per subject is kept)."""

    streams: list[SensorStream]
    classes: tuple[str, ...]
    rate_hz: float
    source: str
    units: tuple[str, str] = ("g", "rad/s")
    name: str = "hapt"

    @property
    def subjects(self) -> list[int]:
        return sorted({s.subject for s in self.streams})

    def for_subject(self, subject: int) -> list[SensorStream]:
        """The subject's recordings in time (experiment) order."""
        return [s for s in self.streams if s.subject == subject]

    def windows(
        self,
        window: int = 128,
        step: int = 64,
        rate_hz: float | None = None,
        keep_transitions: bool = False,
        min_coverage: float = 1.0,
        nan_policy: str = "error",
    ) -> WindowDataset:
        """Cut labelled windows from every stream.

        Parameters
        ----------
        window, step : int
            Window length and hop in samples, at ``rate_hz`` when given.
        rate_hz : float, optional
            Resample each stream to this rate before cutting.
        keep_transitions : bool
            Keep postural-transition classes (``*_TO_*``); by default their windows are dropped
            and the class list holds only the six basic activities.
        min_coverage : float
            Fraction of a window its majority activity must cover (``1.0``: one activity only).
            Windows that do not reach it, or whose majority is unlabelled, are dropped.
        nan_policy : {"error", "drop"}
            For windows holding NaN/Inf.

        Returns
        -------
        WindowDataset
            Channels ``acc_x.. gyro_x..``; ``extras["t_start"]`` (seconds from the start of the
            recording) and ``extras["experiment"]``, rows in experiment then time order.
        """
        rate = float(rate_hz or self.rate_hz)
        Xs, ys, subs, t0s, exps = [], [], [], [], []
        for s in self.streams:
            sig, lab = resample_stream(np.concatenate([s.acc, s.gyro], axis=1), s.label, self.rate_hz, rate)
            starts = window_starts(len(sig), window, step)
            y, keep = label_windows(lab, starts, window, len(self.classes), min_coverage)
            starts, y = starts[keep], y[keep]
            Xs.append(cut_windows(sig, starts, window))
            ys.append(y)
            subs.append(np.full(len(y), s.subject))
            t0s.append(starts / rate)
            exps.append(np.full(len(y), s.experiment))
        y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
        classes = list(self.classes)
        if not keep_transitions:
            basic = [i for i, c in enumerate(classes) if "_to_" not in c.lower()]
            remap = np.full(len(classes), -1)
            remap[basic] = np.arange(len(basic))
            y = remap[y]
            classes = [classes[i] for i in basic]
        keep = y >= 0
        if not keep.any():
            raise DataError(
                f"{self.source}: no window of {window} samples is covered by one labelled activity "
                f"(min_coverage={min_coverage}); use shorter windows or a lower min_coverage."
            )
        X, subject, t_start, experiment = (np.concatenate(parts)[keep] for parts in (Xs, subs, t0s, exps))
        y = y[keep]
        finite = np.isfinite(X).reshape(len(X), -1).all(axis=1)
        X, y, subject, dropped = check_arrays(
            X, y, source=self.source, classes=classes, subject=subject, nan_policy=nan_policy
        )
        if dropped:
            t_start, experiment = t_start[finite], experiment[finite]
        return WindowDataset(
            X=X, y=y, subject=subject, channels=CHANNELS, units=(self.units[0],) * 3 + (self.units[1],) * 3,
            rate_hz=rate, classes=tuple(classes), name=self.name,
            extras={"t_start": t_start.astype(np.float64), "experiment": experiment.astype(np.int64)},
        )


def read_hapt_streams(path: str | Path) -> HaptStreams:
    """Read HAPT streams from ``hapt_raw.npz``, a ``RawData/`` folder, or the folder holding it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected HAPT `RawData/` or `hapt_raw.npz`).")
    if path.is_file():
        return _read_npz(path)
    if not (path / "labels.txt").is_file() and (path / "RawData" / "labels.txt").is_file():
        return _read_raw_folder(path / "RawData", path)
    return _read_raw_folder(path, path.parent)


def load_hapt(
    path: str | Path,
    *,
    window: int = 128,
    step: int = 64,
    rate_hz: float | None = None,
    keep_transitions: bool = False,
    min_coverage: float = 1.0,
    nan_policy: str = "error",
) -> WindowDataset:
    """Read HAPT streams and cut windows; parameters as in :meth:`HaptStreams.windows`."""
    return read_hapt_streams(path).windows(window, step, rate_hz, keep_transitions, min_coverage, nan_policy)


def _read_npz(path: Path) -> HaptStreams:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in NPZ_KEYS if k not in z.files]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {', '.join(f'`{k}`' for k in missing)} for a HAPT raw-stream archive; "
                f"keys present: {', '.join(z.files)}."
            )
        acc, gyro = z["acc"].astype(np.float32), z["gyro"].astype(np.float32)
        label, subject, exp = (z[k].astype(np.int64) for k in ("label", "subject", "experiment"))
        classes = tuple(str(c) for c in z["classes"]) if "classes" in z.files else CLASSES
        rate = float(z["rate_hz"]) if "rate_hz" in z.files else RATE_HZ
        units = (str(z["acc_unit"]) if "acc_unit" in z.files else "g",
                 str(z["gyro_unit"]) if "gyro_unit" in z.files else "rad/s")
    n = len(acc)
    for key, arr in (("acc", acc), ("gyro", gyro)):
        if arr.ndim != 2 or arr.shape != (n, 3):
            raise DataError(f"{path}: `{key}` must have shape ({n}, 3); got {arr.shape}.")
    for key, arr in (("label", label), ("subject", subject), ("experiment", exp)):
        if arr.shape != (n,):
            raise DataError(f"{path}: `{key}` must have shape ({n},) to match `acc`; got {arr.shape}.")
    bad = (label != -1) & ((label < 1) | (label > len(classes)))
    if bad.any():
        raise DataError(
            f"{path}: `label` values {np.unique(label[bad])[:10].tolist()} are outside -1 (unlabelled) "
            f"and 1..{len(classes)}."
        )
    bounds = np.flatnonzero(np.diff(exp) != 0) + 1
    streams = []
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n]):
        if len(np.unique(subject[lo:hi])) != 1:
            raise DataError(f"{path}: experiment {exp[lo]} mixes several subjects.")
        lab = np.where(label[lo:hi] > 0, label[lo:hi] - 1, -1)
        streams.append(SensorStream(int(exp[lo]), int(subject[lo]), acc[lo:hi], gyro[lo:hi], lab))
    streams.sort(key=lambda s: s.experiment)
    return HaptStreams(streams, classes, rate, str(path), units)


def _read_table(file: Path, ncols: int) -> np.ndarray:
    try:
        arr = np.loadtxt(file, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{file}: not a table of numbers ({exc}).") from None
    if arr.shape[1] != ncols:
        raise DataError(f"{file}: expected {ncols} columns per row; got {arr.shape[1]}.")
    return arr


def _read_raw_folder(raw: Path, top: Path) -> HaptStreams:
    labels_file = raw / "labels.txt"
    if not labels_file.is_file():
        present = sorted(p.name for p in raw.iterdir())[:10] if raw.is_dir() else []
        raise DataError(
            f"{labels_file}: file is missing; expected the HAPT `RawData/` folder "
            f"(entries present: {', '.join(present) or 'none'})."
        )
    files: dict[tuple[int, int], dict[str, Path]] = {}
    for f in raw.iterdir():
        m = _RAW_FILE.match(f.name)
        if m:
            files.setdefault((int(m.group(2)), int(m.group(3))), {})[m.group(1)] = f
    if not files:
        raise DataError(f"{raw}: no `acc_expXX_userYY.txt` files found.")
    classes = CLASSES
    if (top / "activity_labels.txt").is_file():
        from fedhar.data.loaders.uci_har import read_activity_labels

        ids, names = read_activity_labels((top / "activity_labels.txt").read_text(), str(top / "activity_labels.txt"))
        if ids != list(range(1, len(ids) + 1)):
            raise DataError(f"{top / 'activity_labels.txt'}: activity ids must be 1..N; got {ids}.")
        classes = tuple(names)
    rows = _read_table(labels_file, 5).astype(np.int64)
    streams = []
    for (exp, user), pair in sorted(files.items()):
        if set(pair) != {"acc", "gyro"}:
            missing = ({"acc", "gyro"} - set(pair)).pop()
            raise DataError(f"{raw}: `{missing}_exp{exp:02d}_user{user:02d}.txt` is missing for experiment {exp}.")
        acc = _read_table(pair["acc"], 3).astype(np.float32)
        gyro = _read_table(pair["gyro"], 3).astype(np.float32)
        if len(acc) != len(gyro):
            raise DataError(f"{pair['gyro']}: {len(gyro)} samples but {pair['acc'].name} has {len(acc)}.")
        label = np.full(len(acc), -1, dtype=np.int64)
        for line_no in np.flatnonzero(rows[:, 0] == exp):
            _, r_user, act, start, end = rows[line_no]
            where = f"{labels_file}: line {line_no + 1}"
            if r_user != user:
                raise DataError(f"{where}: user {r_user} but the files of experiment {exp} are for user {user}.")
            if not 1 <= act <= len(classes):
                raise DataError(f"{where}: activity id {act} is outside 1..{len(classes)}.")
            if not 1 <= start <= end <= len(acc):
                raise DataError(
                    f"{where}: samples {start}..{end} are outside 1..{len(acc)} (1-based, inclusive) of experiment {exp}."
                )
            label[start - 1 : end] = act - 1  # 1-based inclusive sample indices
        streams.append(SensorStream(exp, user, acc, gyro, label))
    orphan = sorted(set(rows[:, 0].tolist()) - {e for e, _ in files})
    if orphan:
        raise DataError(f"{labels_file}: labels for experiment(s) {orphan[:10]} without acc/gyro files in {raw}.")
    return HaptStreams(streams, classes, RATE_HZ, str(raw))
