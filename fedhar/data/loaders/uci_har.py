"""Loader for the official UCI-HAR distribution: the ``UCI HAR Dataset`` folder or its zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.data.validate import check_arrays
from fedhar.exceptions import DataError

SIGNALS = ("body_acc", "body_gyro", "total_acc")
"""Channel groups in the order of ``uci_har.npz``; units g, rad/s, g."""
UNITS = {"body_acc": "g", "body_gyro": "rad/s", "total_acc": "g"}
RATE_HZ = 50.0
SPLITS = ("train", "test")


class _Files:
    """Read-only access to the dataset's text files inside a folder or a zip archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(f"{path}: not a readable zip archive.") from None
            names = [n for n in self._zip.namelist() if not n.startswith("__MACOSX")]
            hits = [n for n in names if n.endswith("train/y_train.txt")]
            if not hits:
                raise DataError(
                    f"{path}: no `train/y_train.txt` member; this is not the UCI HAR Dataset zip. "
                    f"First members: {', '.join(names[:8])}."
                )
            self.prefix = hits[0][: -len("train/y_train.txt")]
            self._names = set(names)
        else:
            root = path
            if not (root / "train").is_dir() and (root / "UCI HAR Dataset" / "train").is_dir():
                root = root / "UCI HAR Dataset"
            if not (root / "train").is_dir():
                present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
                raise DataError(
                    f"{path}: no `train/` folder; expected the `UCI HAR Dataset` folder "
                    f"(entries present: {', '.join(present) or 'none'})."
                )
            self.prefix = str(root) + "/"

    def where(self, rel: str) -> str:
        return f"{self.path}:{self.prefix}{rel}" if self._zip else self.prefix + rel

    def read(self, rel: str) -> str:
        if self._zip is not None:
            name = self.prefix + rel
            if name not in self._names:
                raise DataError(f"{self.path}: member `{name}` is missing from the zip.")
            return self._zip.read(name).decode("utf-8", errors="replace")
        file = Path(self.prefix + rel)
        if not file.is_file():
            present = sorted(p.name for p in file.parent.iterdir()) if file.parent.is_dir() else []
            raise DataError(f"{file}: file is missing (files in its folder: {', '.join(present) or 'none'}).")
        return file.read_text(errors="replace")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _matrix(text: str, where: str) -> np.ndarray:
    """Whitespace-separated numbers, one row per line, as a 2-D float32 array."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{where}: file is empty.")
    ncols = len(lines[0].split())
    try:
        values = np.array(" ".join(lines).split(), dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{where}: not a table of numbers ({exc}).") from None
    if values.size != len(lines) * ncols:
        widths = [len(ln.split()) for ln in lines]
        row = next(i for i, w in enumerate(widths) if w != ncols)
        raise DataError(f"{where}: line {row + 1} has {widths[row]} values; line 1 has {ncols}.")
    return values.reshape(len(lines), ncols)


def read_activity_labels(text: str, where: str) -> tuple[list[int], list[str]]:
    """``activity_labels.txt`` (``<id> <NAME>`` per line) -> ids and names sorted by id."""
    pairs = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{where}: line {i} should be `<id> <NAME>`; got {line.strip()!r}.")
        pairs.append((int(parts[0]), parts[1]))
    pairs.sort()
    return [p[0] for p in pairs], [p[1] for p in pairs]


def load_uci_har(path: str | Path, *, splits: tuple[str, ...] = SPLITS, nan_policy: str = "error") -> WindowDataset:
    """Load the raw inertial windows of UCI-HAR (9 channels, 128 samples at 50 Hz).

    Parameters
    ----------
    path : str or Path
        The ``UCI HAR Dataset`` folder, a folder holding it, or the published zip.
    splits : tuple of str
        Which official parts to read (``train``, ``test``).
    nan_policy : {"error", "drop"}
        See :func:`fedhar.data.validate.check_arrays`.

    Returns
    -------
    WindowDataset
        Channels ``body_acc_x.. body_gyro_x.. total_acc_x..``; ``extras["official_test"]`` marks
        the official test windows.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected the UCI HAR Dataset folder or zip).")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise DataError(f"option `splits` must be a non-empty subset of {SPLITS}; got {tuple(splits)}.")
    files = _Files(path)
    try:
        ids, classes = read_activity_labels(files.read("activity_labels.txt"), files.where("activity_labels.txt"))
        channels = [f"{sig}_{ax}" for sig in SIGNALS for ax in "xyz"]
        parts = []
        for split in splits:
            y_rel, s_rel = f"{split}/y_{split}.txt", f"{split}/subject_{split}.txt"
            y_raw = _matrix(files.read(y_rel), files.where(y_rel))[:, 0].astype(np.int64)
            subject = _matrix(files.read(s_rel), files.where(s_rel))[:, 0]
            signals = []
            for ch in channels:
                rel = f"{split}/Inertial Signals/{ch}_{split}.txt"
                m = _matrix(files.read(rel), files.where(rel))
                if signals and m.shape != signals[0].shape:
                    raise DataError(f"{files.where(rel)}: shape {m.shape} differs from {channels[0]} {signals[0].shape}.")
                signals.append(m)
            unknown_ids = sorted(set(np.unique(y_raw).tolist()) - set(ids))
            if unknown_ids:
                raise DataError(
                    f"{files.where(y_rel)}: activity ids {unknown_ids} are not in activity_labels.txt (ids {ids})."
                )
            y = np.searchsorted(np.array(ids), y_raw)
            X, y, subject, _ = check_arrays(
                np.stack(signals, axis=1), y, source=files.where(f"{split}/"), classes=classes,
                subject=subject, nan_policy=nan_policy,
            )
            parts.append((X, y, subject, np.full(len(y), split == "test")))
    finally:
        files.close()
    return WindowDataset(
        X=np.concatenate([p[0] for p in parts]),
        y=np.concatenate([p[1] for p in parts]),
        subject=np.concatenate([p[2] for p in parts]),
        channels=tuple(channels),
        units=tuple(UNITS[sig] for sig in SIGNALS for _ in "xyz"),
        rate_hz=RATE_HZ,
        classes=tuple(classes),
        name="uci_har",
        extras={"official_test": np.concatenate([p[3] for p in parts])},
    )
