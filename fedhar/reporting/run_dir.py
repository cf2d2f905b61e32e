"""Run folders: every run writes ``config.yaml``, ``results.json``, ``metrics.csv``, ``report.md`` and plots.

:class:`RunFolder` is the one object that owns a run's folder for every study and for ``train`` /
``simulate``: the resolved config and its hash, resume of finished cells (the saved config is the
truth on resume), the result files, and the run's status (``running``, ``complete``, ``failed``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

import fedhar
from fedhar.config import ExperimentConfig, config_to_dict, load_config
from fedhar.exceptions import ConfigError


def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(fedhar.__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_path(out: str | os.PathLike | None, name: str) -> Path:
    """``out``, or a new ``runs/<name>-<timestamp>`` when none is given."""
    return Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


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
    """Atomic JSON write (a crash never leaves half a results file); the folder is made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
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


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested mappings."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return [k for key in dict.fromkeys([*a, *b]) for k in _diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix.rstrip(".")]


def config_hash(cfg: ExperimentConfig) -> str:
    """A short hash of the resolved config: two runs with the same hash ran the same experiment."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def same_config(path: Path, cfg: ExperimentConfig) -> None:
    """Refuse to continue the run in ``path`` with a config other than its saved one, naming the keys."""
    differ = _diff(config_to_dict(load_config(Path(path) / RunFolder.CONFIG)), config_to_dict(cfg))
    if differ:
        raise ConfigError(f"--resume {path}: the config differs from the run's saved {RunFolder.CONFIG} in "
                          f"{', '.join(f'`{k}`' for k in differ)}; the saved config is the truth on resume, "
                          f"so drop the changes (or start a new run folder).")


class RunFolder:
    """One run's folder.

    Use :meth:`open`, which refuses to write into a folder that already holds a run unless
    ``resume`` (continue it; a config that differs from the saved one is refused, naming the keys)
    or ``force`` (start it anew). ``with folder:`` marks the run failed in ``results.json`` if the
    body raises. ``results`` holds what a resumed run had already written; ``done``/``record``
    keep finished cells so a resume skips them.
    """

    CONFIG = "config.yaml"
    RESULTS = "results.json"

    def __init__(self, path: Path, cfg: ExperimentConfig, results: dict | None = None, resumed: bool = False) -> None:
        self.path = path
        self.resumed = resumed
        """True when this session continues a run (its finished work is in ``results`` and the folder)."""
        self.hash = config_hash(cfg)
        self.loggers: list[str] = list(getattr(cfg, "loggers", None) or [])
        """Extra metric loggers of the run's config (``tensorboard``), fed by :meth:`write_metrics`."""
        self.results: dict = results if results is not None else {}
        self.started = time.perf_counter()
        self.seconds_before = float(self.results.get("seconds", 0.0) or 0.0)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, cfg: ExperimentConfig, out: str | os.PathLike | None = None, resume: bool = False,
             force: bool = False, kind: str | None = None) -> "RunFolder":
        path = run_path(out, cfg.name)
        saved = path / cls.CONFIG
        if resume and force:
            raise ConfigError("--resume and --force contradict each other: resume keeps the run, force discards it.")
        results: dict = {}
        if saved.exists() and not force:
            if not resume:
                raise ConfigError(f"{path} already holds a run ({cls.CONFIG} is there): pass --force to start it anew, "
                                  f"--resume to continue it (studies and simulate), or choose another --out folder.")
            same_config(path, cfg)
            res = path / cls.RESULTS
            results = json.loads(res.read_text()) if res.exists() else {}
        elif resume and not saved.exists():
            raise ConfigError(f"--resume {path}: no {cls.CONFIG} there, so there is no run to continue.")
        if force and saved.exists():  # only a folder that holds a run is wiped, never any --out folder
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        folder = cls(path, cfg, results, resumed=resume)
        write_config(path, config_to_dict(cfg))
        folder.results.update(name=cfg.name, seed=cfg.seed, config_hash=folder.hash, status="running",
                              complete=False, **({"kind": kind, "study": kind} if kind else {}))
        folder.results.pop("error", None)
        folder.save()
        return folder

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self.fail(exc)
        return False

    def fail(self, exc: BaseException) -> None:
        """Mark the run failed in ``results.json``; finished cells stay, so ``--resume`` goes on from them."""
        self.results.update(status="failed", complete=False,
                            error="".join(traceback.format_exception_only(type(exc), exc)).strip())
        self.save()

    def complete(self, **extra: Any) -> dict:
        """Mark the run complete and save; returns the results with ``run_dir``."""
        self.results.update(status="complete", complete=True, **extra)
        self.save()
        return {**self.results, "run_dir": str(self.path)}

    # ------------------------------------------------------------------ cells
    @property
    def seconds(self) -> float:
        """Wall time over every session of this run (resumes add up)."""
        return self.seconds_before + time.perf_counter() - self.started

    def done(self, *key: str) -> bool:
        return "/".join(map(str, key)) in self.results.get("cells", {})

    def cell(self, *key: str) -> Any:
        return self.results.get("cells", {}).get("/".join(map(str, key)))

    def record(self, *key: str, value: Any = True) -> None:
        """Store a finished cell and save at once, so a crash after this line loses nothing."""
        self.results.setdefault("cells", {})["/".join(map(str, key))] = value
        self.save()

    # ------------------------------------------------------------------ files
    def file(self, name: str) -> Path:
        return self.path / name

    def save(self) -> None:
        self.results["seconds"] = self.seconds
        write_json(self.path / self.RESULTS, self.results)

    def warn(self, message: str) -> None:
        """Log ``message`` as a warning and record it (once) in ``results["warnings"]``, saved at once:
        what a run adjusted on its own must show in its results, not only in a log."""
        logging.getLogger(__name__).warning(message)
        warnings: list[str] = self.results.setdefault("warnings", [])
        if message not in warnings:
            warnings.append(message)
        self.save()

    def write_metrics(self, rows: Iterable[Mapping[str, Any]], name: str = "metrics.csv") -> None:
        """``rows`` to ``name``; also as TensorBoard scalars when the config's ``loggers`` ask for it
        and the rows are per epoch or per round."""
        rows = list(rows)
        write_metrics_csv(self.path / name, rows)
        if "tensorboard" in self.loggers and rows:
            step = next((k for k in ("epoch", "round") if all(k in r for r in rows)), None)
            if step is not None:
                from fedhar.reporting.tensorboard import write_scalars

                write_scalars(self.path, rows, step=step)

    def write_report(self, text: str, name: str = "report.md") -> None:
        (self.path / name).write_text(text)

    def plot(self, name: str, draw: Callable[..., Any], *args: Any, **kwargs: Any) -> Path | None:
        """``draw(path, *args, **kwargs)`` (every ``*_png`` in :mod:`fedhar.reporting.plots`) into the
        folder; a plot that fails is logged, never fatal."""
        path = self.path / name
        try:
            draw(path, *args, **kwargs)
        except Exception as exc:  # a broken plot must not lose a finished study
            logging.getLogger(__name__).warning("plot %s failed: %s", name, exc)
            return None
        return path


def resolve_config(config: str | None, overrides: Iterable[str], out: str | None, resume: bool) -> ExperimentConfig:
    """The config a command runs: on ``--resume`` the run folder's saved config, unless a config or
    ``--set`` is also given (then it must resolve to the same config, which :meth:`RunFolder.open` checks)."""
    overrides = list(overrides)
    if resume:
        if not out:
            raise ConfigError("--resume needs --out RUN_DIR: the folder of the run to continue.")
        saved = Path(out) / RunFolder.CONFIG
        if not saved.exists():
            raise ConfigError(f"--resume {out}: no {RunFolder.CONFIG} there, so there is no run to continue.")
        if config is None:
            return load_config(saved, overrides)
    if config is None:
        raise ConfigError("a config file is needed, except with --resume (which runs the run folder's saved config.yaml).")
    return load_config(config, overrides)
