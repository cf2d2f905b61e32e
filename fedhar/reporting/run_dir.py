"""Run folders: every run writes ``config.yaml``, ``results.json``, ``metrics.csv`` and plots."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

import fedhar


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(fedhar.__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_run_dir(out: str | os.PathLike | None, name: str) -> Path:
    """``out`` or ``runs/<name>-<timestamp>``, created."""
    path = Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomic JSON write (a crash never leaves half a results file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=2))
    tmp.replace(path)


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """The resolved config, stamped with fedhar's version and git hash for reproduction."""
    meta = {"fedhar_version": fedhar.__version__, "git": git_hash()}
    text = yaml.safe_dump(dict(config), sort_keys=False)
    header = "".join(f"# {k}: {v}\n" for k, v in meta.items())
    (run_dir / "config.yaml").write_text(header + text)


def write_metrics_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    rows = list(rows)
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys and not isinstance(r[k], (list, dict)))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})
