"""Personal state: the parts of a model a client keeps to itself (FedPer's local head, a
personalised adapter). Stored on the client as safetensors, written atomically, never sent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from fedhar.exceptions import ConfigError, ModelError
from fedhar.models.config import PARTS
from fedhar.models.har_model import part_of


def personal_keys(state_keys: Iterable[str], parts: Iterable[str]) -> list[str]:
    """State keys that belong to ``parts`` (e.g. ``["head"]``)."""
    parts = set(parts)
    bad = sorted(parts - set(PARTS))
    if bad:
        raise ConfigError(f"personal parts must be among {', '.join(PARTS)}; got {bad}.")
    return [k for k in state_keys if part_of(k) in parts]


def save_personal(path: str | Path, state: Mapping[str, torch.Tensor]) -> Path:
    """Write ``state`` to ``path`` (safetensors) via a temporary file, so a crash leaves the old one."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)
    return path


def load_personal(path: str | Path) -> dict[str, torch.Tensor] | None:
    """The personal state saved at ``path``, or None when the client has none yet."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: cannot read the personal state ({exc}); delete it to start the client afresh.") from None


def put_context_record(context, key: str, arrays: Mapping[str, np.ndarray], text: str) -> None:
    """Keep ``arrays`` (an ``ArrayRecord``) and ``text`` (a ``ConfigRecord``) under ``key`` in
    Flower's ``context.state``, which Flower keeps per node across rounds."""
    from flwr.app import Array, ArrayRecord, ConfigRecord

    context.state[f"{key}.arrays"] = ArrayRecord(array_dict={k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()})
    context.state[f"{key}.meta"] = ConfigRecord({"json": text})


def get_context_record(context, key: str) -> tuple[dict[str, np.ndarray], str] | None:
    """``(arrays, text)`` that :func:`put_context_record` kept under ``key``; None if never stored."""
    if f"{key}.meta" not in context.state:
        return None
    arrays = {k: v.numpy() for k, v in context.state[f"{key}.arrays"].items()}
    return arrays, str(context.state[f"{key}.meta"]["json"])
