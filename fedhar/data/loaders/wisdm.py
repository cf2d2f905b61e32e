"""Loader for the WISDM v1.1 raw accelerometer text file (``WISDM_ar_v1.1_raw.txt``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.streams import cut_windows, resample_stream, window_starts
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

log = logging.getLogger(__name__)

RATE_HZ = 20.0
CHANNELS = ("acc_x", "acc_y", "acc_z")
UNITS = ("m/s^2",) * 3


def parse_wisdm_raw(path: str | Path, *, strict: bool = True) -> tuple[list[tuple[int, str, int, float, float, float]], int]:
    """Parse records ``user,activity,timestamp,x,y,z;`` in file order.

    A line may hold several ``;``-terminated records; empty records are skipped. A malformed
    record raises :class:`DataError` naming the file and line, or with ``strict=False`` is
    skipped and counted.

    Returns
    -------
    records, n_skipped
        Parsed records and the number of lines with at least one malformed record.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected WISDM_ar_v1.1_raw.txt).")
    records: list[tuple[int, str, int, float, float, float]] = []
    bad_lines: list[int] = []
    with path.open(errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            line_bad = False
            for rec in line.strip().split(";"):
                rec = rec.strip().rstrip(",")
                if not rec:
                    continue
                parts = [p.strip() for p in rec.split(",")]
                try:
                    if len(parts) != 6 or not parts[1]:
                        raise ValueError(f"{len(parts)} fields")
                    records.append((int(parts[0]), parts[1], int(parts[2]),
                                    float(parts[3]), float(parts[4]), float(parts[5])))
                except ValueError as exc:
                    if strict:
                        raise DataError(
                            f"{path}: line {line_no}: malformed record {rec!r} ({exc}); expected "
                            "`user,activity,timestamp,x,y,z;`. Fix the line or load with strict=False "
                            "to skip malformed lines."
                        ) from None
                    line_bad = True
            if line_bad:
                bad_lines.append(line_no)
    if bad_lines:
        log.warning("%s: skipped malformed records on %d line(s), first at line %d",
                    path, len(bad_lines), bad_lines[0])
    if not records:
        raise DataError(f"{path}: no records found.")
    return records, len(bad_lines)


def load_wisdm_raw(
    path: str | Path,
    *,
    window: int = 128,
    step: int = 64,
    rate_hz: float | None = None,
    strict: bool = True,
    nan_policy: str = "error",
) -> WindowDataset:
    """Window the WISDM raw stream per user and contiguous activity segment.

    Parameters
    ----------
    path : str or Path
        ``WISDM_ar_v1.1_raw.txt``.
    window, step : int
        Window length and hop in samples (at ``rate_hz`` when given, else 20 Hz).
    rate_hz : float, optional
        Resample each segment to this rate before cutting.
    strict : bool
        Raise on a malformed record (default) or skip and count it.
    nan_policy : {"error", "drop"}
        For windows holding NaN/Inf values.

    Returns
    -------
    WindowDataset
        Channels ``acc_x, acc_y, acc_z`` in m/s^2; classes are the activity names sorted
        alphabetically; ``extras["t_start"]`` is the window start in seconds within the user's
        recording (file order) and ``extras["segment"]`` the segment index.
    """
    records, _ = parse_wisdm_raw(path, strict=strict)
    user = np.array([r[0] for r in records], dtype=np.int64)
    activity = np.array([r[1] for r in records])
    xyz = np.array([r[3:] for r in records], dtype=np.float32)
    classes = sorted(set(activity.tolist()))
    y_all = np.searchsorted(np.array(classes), activity)
    rate = float(rate_hz or RATE_HZ)
    change = np.flatnonzero((np.diff(user) != 0) | (np.diff(y_all) != 0)) + 1
    user_start = {}
    Xs, ys, subs, t0s, segs = [], [], [], [], []
    for seg, (lo, hi) in enumerate(zip(np.r_[0, change], np.r_[change, len(records)])):
        u = int(user[lo])
        offset = lo - user_start.setdefault(u, lo)  # samples since the user's first record
        sig, _ = resample_stream(xyz[lo:hi], None, RATE_HZ, rate)
        starts = window_starts(len(sig), window, step)
        Xs.append(cut_windows(sig, starts, window))
        ys.append(np.full(len(starts), y_all[lo]))
        subs.append(np.full(len(starts), u))
        t0s.append(offset / RATE_HZ + starts / rate)
        segs.append(np.full(len(starts), seg))
    X, y, subject = np.concatenate(Xs), np.concatenate(ys), np.concatenate(subs)
    if len(y) == 0:
        raise DataError(f"{path}: no activity segment is at least {window} samples long.")
    finite = np.isfinite(X).reshape(len(X), -1).all(axis=1)
    X, y, subject, dropped = check_arrays(X, y, source=str(path), classes=classes, subject=subject,
                                          nan_policy=nan_policy)
    keep = finite if dropped else slice(None)
    return WindowDataset(
        X=X, y=y, subject=subject, channels=CHANNELS, units=UNITS, rate_hz=rate, classes=tuple(classes),
        name="wisdm",
        extras={"t_start": np.concatenate(t0s)[keep], "segment": np.concatenate(segs)[keep].astype(np.int64)},
    )
