"""Teacher logits computed once and kept on disk, so distillation never re-runs the teacher.

A 30-block LLM teacher costs ~20 windows/s at inference on two CPU cores: recomputing its logits
every epoch would cost more than training the student. The cache key is a hash of the teacher's
trainable state (its frozen weights are fixed by its name and config) and of the input windows,
so a changed teacher or changed data can never silently reuse stale logits.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


def fingerprint(*arrays: np.ndarray, extra: str = "") -> str:
    """A short content hash of arrays (shape, dtype and bytes) plus a free-text tag."""
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def model_fingerprint(model, tag: str = "") -> str:
    """Hash of a model's trainable state (HARModel) plus ``tag`` (e.g. the backbone config)."""
    state = model.trainable_state() if hasattr(model, "trainable_state") else model.state_dict()
    return fingerprint(*(v.detach().float().cpu().numpy() for v in state.values()), extra=tag + "|" + ",".join(state))


class TeacherLogitCache:
    """``get(key, compute)``: the logits stored under ``key``, computing and saving them once.

    ``calls`` counts how many times ``compute`` actually ran (tests and reports use it).
    With ``folder=None`` the cache lives in memory only.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.calls = 0

    def path(self, key: str) -> Path | None:
        return self.folder / f"teacher_logits_{key}.npy" if self.folder is not None else None

    def get(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self._memory:
            return self._memory[key]
        path = self.path(key)
        if path is not None and path.exists():
            logits = np.load(path, allow_pickle=False)
            log.info("teacher logits: reused %s", path)
        else:
            self.calls += 1
            logits = np.asarray(compute(), dtype=np.float32)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, logits)
                tmp.replace(path)
        self._memory[key] = logits
        return logits
