"""What the point studies (robustness, devices) share: each point one ordinary ``simulate`` run
folder under ``points/seed_<s>/``, resumed point by point, and mean ± std read from the aggregate."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fedhar.reporting.stats import fmt

if TYPE_CHECKING:
    from fedhar.config import ExperimentConfig
    from fedhar.reporting import RunFolder

log = logging.getLogger(__name__)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def run_point(pcfg: ExperimentConfig, folder: RunFolder, seed: int, name: str) -> tuple[dict, str]:
    """Run (or resume, when its folder holds a config) the point ``name`` of ``seed``; its results
    and its folder relative to the study's."""
    from fedhar.federated.run import run_federated

    where = folder.path / "points" / f"seed_{seed}" / slug(name)
    res = run_federated(pcfg, resume=str(where)) if (where / "config.yaml").exists() else run_federated(pcfg, out=str(where))
    return res, str(where.relative_to(folder.path))


def mean_std(cell: dict | None, metric: str = "macro_f1") -> tuple[float, float] | None:
    m = (cell or {}).get(metric)
    return None if not m or m.get("mean") is None else (m["mean"], m.get("std") or 0.0)


def fmt_ms(v: tuple[float, float] | None) -> str:
    return "–" if v is None else fmt({"mean": v[0], "std": v[1]})
