"""Datasets published as one file per recording (MotionSense, USC-HAD): read the files alike from
the unpacked folder or its zip, and cut windows per recording with HAPT's stream helpers.

A recording holds one activity from start to end, so every window is labelled by the activity
that covers it, and no window spans two recordings (each is cut on its own, after resampling).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.streams import cut_windows, resample_stream, window_starts
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

DEFAULT_WINDOW_S = 2.56
"""Default window duration (128 samples at 50 Hz, as UCI-HAR and HAPT); the hop defaults to half a window."""


@dataclass
class Recording:
    """One published file: a single activity, in time order at the collection's rate."""

    subject: int
    activity: int
    """Index into the collection's ``classes``."""
    trial: int
    signal: np.ndarray
    """``(T, C)`` float32, channels as the collection's ``channels``."""
    where: str
    """File (or ``zip:member``) it came from, for messages."""

    def __len__(self) -> int:
        return int(self.signal.shape[0])


@dataclass
class RecordingSet:
    """All recordings of one collection, with what is needed to window them."""

    recordings: list[Recording]
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    units: tuple[str, ...]
    rate_hz: float
    source: str
    name: str

    @property
    def subjects(self) -> list[int]:
        return sorted({r.subject for r in self.recordings})

    def samples_per_class(self) -> dict[str, int]:
        """Samples (rows, at the native rate) per class, before windowing: comparable with the published counts."""
        counts = dict.fromkeys(self.classes, 0)
        for r in self.recordings:
            counts[self.classes[r.activity]] += len(r)
        return counts

    def windows(
        self, window: int | None = None, step: int | None = None, rate_hz: float | None = None,
        nan_policy: str = "error",
    ) -> WindowDataset:
        """Cut windows from every recording on its own.

        Parameters
        ----------
        window, step : int, optional
            Window length and hop in samples at the output rate; by default 2.56 s and half a window.
        rate_hz : float, optional
            Resample each recording to this rate before cutting (polyphase, as HAPT).
        nan_policy : {"error", "drop"}
            For windows holding NaN/Inf.

        Returns
        -------
        WindowDataset
            ``extras``: ``t_start`` (seconds from the start of the recording), ``trial`` and
            ``recording`` (index into ``recordings``: windows sharing it come from one file).

        Raises
        ------
        DataError
            A non-positive window or step, or no recording as long as one window.
        """
        rate = float(rate_hz or self.rate_hz)
        window = window if window is not None else int(round(DEFAULT_WINDOW_S * rate))
        step = step if step is not None else max(window // 2, 1)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("X", "y", "subject", "t_start", "trial", "recording")}
        for i, rec in enumerate(self.recordings):
            sig, _ = resample_stream(rec.signal, None, self.rate_hz, rate)
            starts = window_starts(len(sig), window, step)
            parts["X"].append(cut_windows(sig, starts, window))
            for key, value in (("y", rec.activity), ("subject", rec.subject), ("trial", rec.trial), ("recording", i)):
                parts[key].append(np.full(len(starts), value, dtype=np.int64))
            parts["t_start"].append(starts / rate)
        if not any(len(y) for y in parts["y"]):
            raise DataError(f"{self.source}: no recording is at least {window} samples long at {rate:g} Hz; "
                            "use shorter windows.")
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        finite = np.isfinite(cat["X"]).reshape(len(cat["X"]), -1).all(axis=1)
        X, y, subject, dropped = check_arrays(cat["X"], cat["y"], source=self.source, classes=self.classes,
                                              subject=cat["subject"], nan_policy=nan_policy)
        keep = finite if dropped else slice(None)
        return WindowDataset(
            X=X, y=y, subject=subject, channels=self.channels, units=self.units, rate_hz=rate, classes=self.classes,
            name=self.name,
            extras={"t_start": cat["t_start"][keep].astype(np.float64), "trial": cat["trial"][keep],
                    "recording": cat["recording"][keep]},
        )


class PublishedFiles:
    """The files of a published layout, read alike from its unpacked folder or its zip.

    ``path`` may be the zip, the unpacked folder, a folder holding it, or a folder holding only
    the zip (named ``zip_name``). ``matches`` lists ``(name, match)`` for each file whose path
    inside the layout matches ``pattern``; macOS resource forks (``__MACOSX/``, ``._*``) are skipped.
    """

    def __init__(self, path: Path, pattern: re.Pattern[str], expected: str, zip_name: str | None = None) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if not path.exists():
            raise DataError(f"{path}: no such file or folder (expected {expected}).")
        names = self._list(path, expected)
        if path.is_dir() and zip_name and not any(pattern.search(n) for n in names) and (path / zip_name).is_file():
            self.path = path / zip_name
            names = self._list(self.path, expected)
        self.names = names
        self.matches = [(n, m) for n in names if (m := pattern.search(n))]
        if not self.matches:
            raise DataError(f"{self.path}: no file in the layout of {expected} (entries: "
                            f"{', '.join(names[:6]) or 'none'}).")

    def _list(self, path: Path, expected: str) -> list[str]:
        if path.is_dir():
            names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(f"{path}: not a readable zip archive (expected {expected}).") from None
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
        return [n for n in names if "__MACOSX/" not in n and not n.rpartition("/")[2].startswith("._")]

    def where(self, name: str) -> str:
        """How messages name a file: ``archive.zip:member`` or the file's path."""
        return f"{self.path}:{name}" if self._zip is not None else str(self.path / name)

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def find(self, basename: str) -> str | None:
        """The first file named ``basename`` anywhere in the layout, or None."""
        return next((n for n in self.names if n.rpartition("/")[2] == basename), None)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "PublishedFiles":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
