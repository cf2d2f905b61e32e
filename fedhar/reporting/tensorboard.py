"""Optional TensorBoard logger (``loggers: [tensorboard]``): the scalars of ``metrics.csv`` as
TensorBoard events under ``<run>/tensorboard/``, one point per epoch or round.

Runs rewrite ``metrics.csv`` whole after every epoch/round and call :func:`write_scalars` with all
rows each time, and a resumed run calls it again with rows it already logged. So the last step
written is kept in ``<run>/tensorboard/written.json`` and only newer rows are written: each scalar
appears once per step however often, and across however many resumes, it is called. The events
are flushed before ``written.json`` is updated, so a crash in between can at worst repeat the rows
of that one call, never lose them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from fedhar.exceptions import ConfigError

FOLDER = "tensorboard"
STATE = "written.json"
INSTALL = ("`loggers: [tensorboard]` needs the tensorboard package, which is not installed; install it with "
           "pip install 'fedhar[tensorboard]', or remove tensorboard from the `loggers` key.")


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``, imported only when a run asks for it (an extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(INSTALL) from None
    return SummaryWriter


def scalar_items(row: Mapping[str, Any], step: str) -> dict[str, float]:
    """The values of ``row`` TensorBoard can plot: finite ints/floats (not bools), the step key aside."""
    out = {}
    for key, value in row.items():
        if key == step or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[str(key)] = float(value)
    return out


def _step_of(row: Mapping[str, Any], step: str) -> int | None:
    """The row's integer step, or None when the row has none (such rows are not logged)."""
    value = row.get(step)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def _read_state(path: Path) -> dict[str, int]:
    """Last step written per step key; a missing or unreadable file means nothing written yet."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.get("last", {}).items()} if isinstance(data, dict) else {}


def _write_state(path: Path, last: Mapping[str, int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"last": dict(last)}, indent=2))
    tmp.replace(path)


def write_scalars(run_dir: Path, rows: Sequence[Mapping[str, Any]], step: str) -> None:
    """Log the rows of ``rows`` newer than the last logged ``step`` (e.g. ``"epoch"``, ``"round"``)
    under ``run_dir/tensorboard``; each numeric column becomes a scalar tagged with its name.

    Raises
    ------
    ConfigError
        When the tensorboard package is missing (naming the install command and the ``loggers`` key).
    """
    writer_cls = summary_writer_class()
    folder = Path(run_dir) / FOLDER
    state_file = folder / STATE
    last = _read_state(state_file)
    done = last.get(step)
    new: dict[int, dict[str, float]] = {}  # rows sharing a step are merged: one point per tag and step
    for row in rows:
        s = _step_of(row, step)
        if s is not None and (done is None or s > done):
            new.setdefault(s, {}).update(scalar_items(row, step))
    if not new:
        return
    folder.mkdir(parents=True, exist_ok=True)
    writer = writer_cls(log_dir=str(folder))
    try:
        for s in sorted(new):
            for tag, value in new[s].items():
                writer.add_scalar(tag, value, global_step=s)
        writer.flush()
    finally:
        writer.close()
    last[step] = max(new)
    _write_state(state_file, last)
