"""The one windowed-dataset type every loader returns and every model consumes.

Data contract: ``X`` is float32 ``(N, C, T)`` (channels first), or for text windows int64 token
ids ``(N, 1, L)`` with ``-1`` as padding and the single channel ``token`` (:mod:`fedhar.data.smarthome`); ``y`` int64 class indices into
``classes``, ``subject`` int64 per window. ``device`` and ``placement`` are optional per-window
string arrays. Channel names follow ``<sensor>_<axis>`` (``acc_x``, ``gyro_z``, ``body_acc_y``),
so the sensor of a channel is everything before the last underscore.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from fedhar.exceptions import DataError


def sensor_of(channel: str) -> str:
    """``body_acc_x`` -> ``body_acc``; a channel without an axis suffix is its own sensor."""
    head, _, tail = channel.rpartition("_")
    return head if head and tail in ("x", "y", "z", "w", "norm", "mag") else channel


@dataclass
class WindowDataset:
    """Windows of multichannel inertial signals with labels and provenance."""

    X: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]
    rate_hz: float
    classes: tuple[str, ...]
    name: str = "dataset"
    device: np.ndarray | None = None
    placement: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Other per-window arrays (e.g. ``official_test``); subset and concatenated with the rest."""

    def __post_init__(self) -> None:
        for key in ("X", "y", "subject"):
            setattr(self, key, np.asarray(getattr(self, key)))
        for key in ("channels", "units", "classes"):
            setattr(self, key, tuple(str(v) for v in getattr(self, key)))
        self.rate_hz = float(self.rate_hz)
        where = f"dataset `{self.name}`"
        if self.X.ndim != 3:
            raise DataError(f"{where}: windows `X` must have rank 3 (N, C, T); got shape {self.X.shape}.")
        if np.issubdtype(self.X.dtype, np.integer):
            self.X = self.X.astype(np.int64)  # token ids of text windows (see fedhar.data.smarthome), -1 = padding
        elif self.X.dtype != np.float32:
            self.X = self.X.astype(np.float32)
        n, c, _ = self.X.shape
        for key in ("y", "subject"):
            arr = getattr(self, key)
            if arr.shape != (n,):
                raise DataError(f"{where}: `{key}` must have shape ({n},) to match `X`; got {arr.shape}.")
            setattr(self, key, arr.astype(np.int64))
        for key in ("device", "placement"):
            arr = getattr(self, key)
            if arr is not None:
                arr = np.asarray(arr).astype(str)
                if arr.shape != (n,):
                    raise DataError(f"{where}: `{key}` must have shape ({n},); got {arr.shape}.")
                setattr(self, key, arr)
        for key, arr in self.extras.items():
            if np.asarray(arr).shape[:1] != (n,):
                raise DataError(f"{where}: extra array `{key}` must have {n} rows; got {np.asarray(arr).shape}.")
        if len(self.channels) != c:
            raise DataError(f"{where}: {len(self.channels)} channel names for {c} channels in `X`.")
        if len(self.units) != c:
            raise DataError(f"{where}: {len(self.units)} units for {c} channels in `X`.")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            bad = self.y[(self.y < 0) | (self.y >= len(self.classes))][0]
            raise DataError(
                f"{where}: label {int(bad)} is outside the class list (0..{len(self.classes) - 1}: "
                f"{', '.join(self.classes)})."
            )
        if self.rate_hz <= 0:
            raise DataError(f"{where}: sampling rate must be positive; got {self.rate_hz}.")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.X.shape[1])

    @property
    def window_length(self) -> int:
        return int(self.X.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sensors(self) -> tuple[str, ...]:
        """Sensor groups in channel order, e.g. ``('body_acc', 'body_gyro', 'total_acc')``."""
        out: list[str] = []
        for ch in self.channels:
            s = sensor_of(ch)
            if s not in out:
                out.append(s)
        return tuple(out)

    def replace(self, **changes) -> "WindowDataset":
        return dataclasses.replace(self, **changes)

    def subset(self, index: np.ndarray | Sequence[int]) -> "WindowDataset":
        """Rows ``index`` (a boolean mask or integer indices), all per-window arrays kept aligned."""
        idx = np.asarray(index)
        return self.replace(
            X=self.X[idx],
            y=self.y[idx],
            subject=self.subject[idx],
            device=None if self.device is None else self.device[idx],
            placement=None if self.placement is None else self.placement[idx],
            extras={k: np.asarray(v)[idx] for k, v in self.extras.items()},
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y, minlength=self.num_classes)

    def summary(self) -> dict:
        """Counts for ``fedhar data info`` and run logs."""
        return {
            "name": self.name,
            "windows": len(self),
            "channels": list(self.channels),
            "units": list(self.units),
            "window_length": self.window_length,
            "rate_hz": self.rate_hz,
            "classes": {c: int(n) for c, n in zip(self.classes, self.class_counts())},
            "subjects": int(len(np.unique(self.subject))),
        }

    # ------------------------------------------------------------ transforms
    def select_channels(self, names: Iterable[str]) -> "WindowDataset":
        """Keep channels (or whole sensors, e.g. ``'acc'``) in the given order."""
        wanted: list[int] = []
        for name in names:
            hits = [i for i, ch in enumerate(self.channels) if ch == name or sensor_of(ch) == name]
            if not hits:
                raise DataError(
                    f"dataset `{self.name}`: no channel or sensor `{name}`. "
                    f"Channels: {', '.join(self.channels)}."
                )
            wanted.extend(h for h in hits if h not in wanted)
        return self.replace(
            X=self.X[:, wanted],
            channels=tuple(self.channels[i] for i in wanted),
            units=tuple(self.units[i] for i in wanted),
        )

    def resample(self, rate_hz: float) -> "WindowDataset":
        """Resample every window to ``rate_hz`` (polyphase FIR, anti-aliased), keeping its duration."""
        if abs(rate_hz - self.rate_hz) < 1e-9:
            return self
        from fractions import Fraction

        from scipy.signal import resample_poly

        frac = Fraction(rate_hz / self.rate_hz).limit_denominator(1000)
        X = resample_poly(self.X, frac.numerator, frac.denominator, axis=2).astype(np.float32)
        return self.replace(X=X, rate_hz=float(rate_hz))

    def rewindow(self, length: int, step: int | None = None) -> "WindowDataset":
        """Cut every window into sub-windows of ``length`` samples every ``step`` samples."""
        step = step or length
        T = self.window_length
        if length > T or length <= 0 or step <= 0:
            raise DataError(
                f"dataset `{self.name}`: cannot cut windows of {length} samples (step {step}) "
                f"from windows of {T} samples."
            )
        starts = list(range(0, T - length + 1, step))
        parts = [self.X[:, :, s : s + length] for s in starts]
        X = np.stack(parts, axis=1).reshape(len(self) * len(starts), self.num_channels, length)
        rep = np.repeat(np.arange(len(self)), len(starts))
        out = self.subset(rep)
        return out.replace(X=X)


def concat(datasets: Sequence[WindowDataset], name: str | None = None) -> WindowDataset:
    """Concatenate datasets with the same channels, rate and window length.

    Class lists are merged (union, first-seen order) and labels re-indexed into it, so datasets
    with different label sets can be pooled after mapping to the canonical vocabulary.
    """
    if not datasets:
        raise DataError("concat: no datasets given.")
    first = datasets[0]
    for ds in datasets[1:]:
        for attr in ("channels", "rate_hz", "window_length"):
            if getattr(ds, attr) != getattr(first, attr):
                raise DataError(
                    f"concat: dataset `{ds.name}` has {attr} {getattr(ds, attr)!r} but "
                    f"`{first.name}` has {getattr(first, attr)!r}; harmonise them first."
                )
    classes: list[str] = []
    for ds in datasets:
        classes.extend(c for c in ds.classes if c not in classes)
    ys = [np.array([classes.index(c) for c in ds.classes], dtype=np.int64)[ds.y] for ds in datasets]

    def cat_opt(key: str, default: str) -> np.ndarray | None:
        if all(getattr(ds, key) is None for ds in datasets):
            return None
        return np.concatenate(
            [getattr(ds, key) if getattr(ds, key) is not None else np.full(len(ds), default) for ds in datasets]
        )

    extras_keys = set.intersection(*(set(ds.extras) for ds in datasets)) - {"dataset"}
    # Every window remembers its source dataset (clients can then be whole datasets).
    source = np.concatenate([np.asarray(ds.extras.get("dataset", np.full(len(ds), ds.name))).astype(str) for ds in datasets])
    return WindowDataset(
        X=np.concatenate([ds.X for ds in datasets]),
        y=np.concatenate(ys),
        subject=np.concatenate([ds.subject for ds in datasets]),
        channels=first.channels,
        units=first.units,
        rate_hz=first.rate_hz,
        classes=tuple(classes),
        name=name or "+".join(dict.fromkeys(ds.name for ds in datasets)),
        device=cat_opt("device", "unknown"),
        placement=cat_opt("placement", "unknown"),
        extras={"dataset": source, **{k: np.concatenate([np.asarray(ds.extras[k]) for ds in datasets]) for k in extras_keys}},
    )
