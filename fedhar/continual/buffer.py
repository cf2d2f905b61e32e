"""A bounded replay buffer filled by reservoir sampling (Vitter's algorithm R).

Every window ever offered has the same probability ``capacity / seen`` of being in the buffer,
whatever phase it came from, so the buffer is a uniform sample of the whole stream.

The bound is in windows *and* bytes: with ``capacity_bytes`` set, the effective capacity is
``min(capacity_windows, capacity_bytes // bytes_per_window)``, where ``bytes_per_window`` is what
one stored window costs (its ``X`` row, label and subject id). It is known once the first window
arrives (window shape and dtype fix it).
"""

from __future__ import annotations

import copy

import numpy as np

from fedhar.data.dataset import WindowDataset
from fedhar.exceptions import ConfigError, DataError


class ReservoirBuffer:
    """Reservoir of windows ``X`` ``(n, C, T)`` with labels ``y`` and ``subject`` ids.

    Parameters
    ----------
    capacity_windows : int
        Most windows kept.
    capacity_bytes : int, optional
        Most bytes kept (``nbytes``: X + y + subject arrays); lowers the window capacity.
    seed : int
        Seed of the reservoir draws (its generator state is part of :meth:`state_dict`).
    """

    def __init__(self, capacity_windows: int, capacity_bytes: int | None = None, seed: int = 0) -> None:
        if int(capacity_windows) < 0:
            raise ConfigError(f"replay buffer: `buffer_windows` must be >= 0; got {capacity_windows}.")
        if capacity_bytes is not None and int(capacity_bytes) < 0:
            raise ConfigError(f"replay buffer: `buffer_bytes` must be >= 0 or null; got {capacity_bytes}.")
        self.capacity_windows = int(capacity_windows)
        self.capacity_bytes = None if capacity_bytes is None else int(capacity_bytes)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.seen = 0
        self.X: np.ndarray | None = None
        self.y = np.zeros(0, dtype=np.int64)
        self.subject = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ sizes
    @property
    def bytes_per_window(self) -> int | None:
        if self.X is None:
            return None
        return int(np.prod(self.X.shape[1:])) * self.X.itemsize + self.y.itemsize + self.subject.itemsize

    @property
    def capacity(self) -> int:
        """Effective capacity in windows (the bytes bound applies once the window size is known)."""
        bpw = self.bytes_per_window
        if self.capacity_bytes is None or bpw is None:
            return self.capacity_windows
        return min(self.capacity_windows, self.capacity_bytes // bpw)

    def __len__(self) -> int:
        return int(len(self.y))

    @property
    def nbytes(self) -> int:
        """Bytes actually held: ``X``, ``y`` and ``subject`` arrays."""
        return int((0 if self.X is None else self.X.nbytes) + self.y.nbytes + self.subject.nbytes)

    # ------------------------------------------------------------------ filling
    def add(self, data: WindowDataset | tuple, y: np.ndarray | None = None, subject: np.ndarray | None = None) -> None:
        """Offer windows in stream order: a WindowDataset, ``(X, y[, subject])`` or ``add(X, y, subject)``."""
        if isinstance(data, WindowDataset):
            X, y, subject = data.X, data.y, data.subject
        elif isinstance(data, tuple):
            X, y, *rest = data
            subject = rest[0] if rest else subject
        else:
            X = data
        X = np.asarray(X, dtype=np.float32)
        if y is None:
            raise DataError("replay buffer: labels `y` are required.")
        y = np.asarray(y, dtype=np.int64)
        subject = np.zeros(len(y), dtype=np.int64) if subject is None else np.asarray(subject, dtype=np.int64)
        if X.ndim != 3 or y.shape != (len(X),) or subject.shape != (len(X),):
            raise DataError(
                f"replay buffer: expected X (N, C, T) with y and subject of length N; got X {X.shape}, "
                f"y {y.shape}, subject {subject.shape}."
            )
        if self.X is None:
            self.X = np.zeros((0, *X.shape[1:]), dtype=np.float32)
        elif X.shape[1:] != self.X.shape[1:]:
            raise DataError(f"replay buffer: windows of shape {X.shape[1:]} offered to a buffer of {self.X.shape[1:]}.")
        n, k = len(X), self.capacity
        if n == 0:
            return
        # Algorithm R: item t (0-based over the whole stream) fills slot t while t < k; after that
        # it replaces slot j ~ U{0..t} when j < k. The draws are vectorised; the replacements are
        # applied in stream order, so a later item overwrites an earlier one in the same slot.
        t = self.seen + np.arange(n)
        fill = t < k
        n_fill = int(fill.sum())
        if n_fill:
            self.X = np.concatenate([self.X, X[:n_fill]])
            self.y = np.concatenate([self.y, y[:n_fill]])
            self.subject = np.concatenate([self.subject, subject[:n_fill]])
        rest = t[n_fill:]
        if len(rest):
            j = self.rng.integers(0, rest + 1)
            source: dict[int, int] = {}
            for item, slot in enumerate(j.tolist()):
                if slot < k:
                    source[slot] = n_fill + item
            if source:
                slots = np.fromiter(source.keys(), dtype=np.int64)
                items = np.fromiter(source.values(), dtype=np.int64)
                self.X[slots] = X[items]
                self.y[slots] = y[items]
                self.subject[slots] = subject[items]
        self.seen += n

    def as_dataset(self, template: WindowDataset, name: str = "replay") -> WindowDataset:
        """The buffer as a WindowDataset with ``template``'s channels, units, rate and classes."""
        X = self.X if self.X is not None else np.zeros((0, template.num_channels, template.window_length), np.float32)
        return WindowDataset(X=X.copy(), y=self.y.copy(), subject=self.subject.copy(), channels=template.channels,
                             units=template.units, rate_hz=template.rate_hz, classes=template.classes, name=name)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """Arrays plus JSON-able scalars (the generator state included), for :mod:`fedhar.continual.state`."""
        return {
            "capacity_windows": self.capacity_windows,
            "capacity_bytes": self.capacity_bytes,
            "seed": self.seed,
            "seen": self.seen,
            "rng": copy.deepcopy(self.rng.bit_generator.state),
            "X": None if self.X is None else self.X.copy(),
            "y": self.y.copy(),
            "subject": self.subject.copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.capacity_windows = int(state["capacity_windows"])
        self.capacity_bytes = None if state["capacity_bytes"] is None else int(state["capacity_bytes"])
        self.seed = int(state["seed"])
        self.seen = int(state["seen"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.X = None if state["X"] is None else np.asarray(state["X"], dtype=np.float32).copy()
        self.y = np.asarray(state["y"], dtype=np.int64).copy()
        self.subject = np.asarray(state["subject"], dtype=np.int64).copy()
