"""Client-side continual state that persists across federated rounds: on disk or in Flower's Context.

What persists is ``strategy.state_dict()`` (replay buffer, adapter library, EWC Fisher and
anchor, drift-detector state, seen classes, experiences trained) plus an ``extra`` dict of the
caller's own (e.g. the current phase id, the round). Both are nested dicts/lists of JSON values
and numpy arrays (torch tensors are stored as arrays and come back as tensors).

Formats, both without pickle:

* **disk** (:func:`save_client_state` / :func:`load_client_state`): one ``.npz`` file; arrays under
  ``a0, a1, ...`` and the JSON skeleton (with ``{"__array__": "a0"}`` placeholders) as UTF-8
  bytes under ``__meta__``. It is written to a temporary file in the same folder, flushed, then
  ``os.replace``-d over the target, so a crash leaves the old or the new state, never half of one.
* **Flower** (:func:`put_context_state` / :func:`get_context_state`): ``context.state`` (a
  ``RecordDict``, which Flower keeps per node across rounds) gets ``<key>.arrays`` (an
  ``ArrayRecord``) and ``<key>.meta`` (a ``ConfigRecord`` holding the JSON skeleton).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedhar.continual.strategies.base import to_numpy_state
from fedhar.exceptions import DataError

FORMAT = "fedhar-continual-state"
VERSION = 1
META = "__meta__"
_ARRAY = "__array__"


def _pack(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        if obj.dtype == object:
            raise TypeError(f"continual state `{where}`: object arrays cannot be stored safely.")
        key = f"a{len(arrays)}"
        arrays[key] = to_numpy_state({key: obj})[key]  # a copy; bf16 tensors as float32
        return {_ARRAY: key, "torch": True} if isinstance(obj, torch.Tensor) else {_ARRAY: key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad or _ARRAY in obj:
            raise TypeError(f"continual state `{where}`: keys must be strings other than {_ARRAY!r}; got {bad or [_ARRAY]}.")
        return {k: _pack(v, arrays, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"continual state `{where}`: cannot store a {type(obj).__name__}.")


def _unpack(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if _ARRAY in obj:
            a = np.array(arrays[obj[_ARRAY]], copy=True)
            return torch.from_numpy(a) if obj.get("torch") else a
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def pack_state(strategy, extra: dict | None = None) -> tuple[dict[str, np.ndarray], str]:
    """``(arrays, json_text)`` for a strategy's state and ``extra``."""
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT, "version": VERSION,
            "strategy": _pack(strategy.state_dict(), arrays, "strategy"),
            "extra": _pack(dict(extra or {}), arrays, "extra")}
    return arrays, json.dumps(tree)


def unpack_state(strategy, arrays: dict[str, np.ndarray], text: str, where: str = "continual state") -> dict:
    """Load the packed state into ``strategy``; return ``extra``."""
    try:
        tree = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{where}: the metadata is not valid JSON ({exc}).") from None
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise DataError(f"{where}: not a fedhar continual state.")
    if tree.get("version") != VERSION:
        raise DataError(f"{where}: state format version {tree.get('version')}; this fedhar reads version {VERSION}.")
    try:
        state, extra = _unpack(tree["strategy"], arrays), _unpack(tree["extra"], arrays)
    except KeyError as exc:
        raise DataError(f"{where}: array {exc} is missing; the state is incomplete.") from None
    strategy.load_state_dict(state)
    return extra


# ------------------------------------------------------------------ disk
def save_client_state(path: str | Path, strategy, extra: dict | None = None) -> Path:
    """Write ``strategy``'s state and ``extra`` to ``path`` (one ``.npz``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, text = pack_state(strategy, extra)
    payload = {**arrays, META: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_client_state(path: str | Path, strategy) -> dict | None:
    """Load the state at ``path`` into ``strategy``; return ``extra``, or None when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"continual state {path}: cannot be read ({exc}); delete it to start the client afresh.") from None
    if META not in arrays:
        raise DataError(f"continual state {path}: no `{META}` entry; not a fedhar continual state.")
    text = arrays.pop(META).tobytes().decode("utf-8")
    return unpack_state(strategy, arrays, text, where=f"continual state {path}")


# ------------------------------------------------------------------ Flower Context
def put_context_state(context, strategy, extra: dict | None = None, key: str = "fedhar-continual") -> None:
    """Store the state in ``context.state`` (Flower keeps it for the node across rounds)."""
    from fedhar.federated.personal import put_context_record

    put_context_record(context, key, *pack_state(strategy, extra))


def get_context_state(context, strategy, key: str = "fedhar-continual") -> dict | None:
    """Load the state from ``context.state`` into ``strategy``; return ``extra`` (None if never stored)."""
    from fedhar.federated.personal import get_context_record

    record = get_context_record(context, key)
    return None if record is None else unpack_state(strategy, *record, where=f"Context state `{key}`")
