"""A study over several seeds: each seed a complete, resumable run in ``<run>/seed_<s>/``; the
parent folder holds the config with ``seeds``, and the aggregate (mean, std, n, 95% interval per
metric and cell, the per-seed values, and paired verdicts) in ``results.json``, ``metrics.csv``,
``report.md`` and ``errorbars.png``, rewritten after every finished seed.

``--resume`` keeps finished seeds as they are and continues an unfinished one from its finished
cells; ``--force`` starts every seed anew.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from fedhar.config import ExperimentConfig, derive
from fedhar.reporting import RunFolder
from fedhar.reporting.run_dir import same_config
from fedhar.reporting.plots import errorbars_png
from fedhar.reporting.seeds import aggregate, aggregate_markdown, csv_rows, errorbar_series

if TYPE_CHECKING:
    from fedhar.studies import Study

log = logging.getLogger(__name__)


def seed_dir(path: Path, seed: int) -> Path:
    return Path(path) / f"seed_{seed}"


def seed_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config of one seed's run: ``seed`` set, ``seeds`` dropped, nothing else changed."""
    return derive(cfg, {"seed": seed, "seeds": None}, source=f"seed {seed}")


def _saved(path: Path) -> dict:
    res = path / RunFolder.RESULTS
    try:
        return json.loads(res.read_text()) if res.exists() else {}
    except json.JSONDecodeError:
        return {}


def run_seeds(name: str, study: "Study", cfg: ExperimentConfig, path: Path, resume: bool = False, force: bool = False,
              **options: Any) -> dict:
    """Every seed of ``cfg.seeds`` in turn, then the aggregate; returns the parent's results."""
    from fedhar.studies import run_one

    seeds = list(cfg.seeds or [])
    with RunFolder.open(cfg, path, resume=resume, force=force, kind=name) as parent:
        parent.results.update(seeds=seeds, multi_seed=True)
        runs: dict = parent.results.setdefault("seed_runs", {})
        per_seed: dict[int, dict] = {}
        for i, seed in enumerate(seeds, 1):
            sub = seed_dir(path, seed)
            scfg = seed_config(cfg, seed)
            saved = _saved(sub)
            if saved.get("complete"):
                same_config(sub, study.prepared(scfg, sub))
                log.info("[seed %d: %d/%d] finished in an earlier session; kept (%s)", seed, i, len(seeds), sub)
                per_seed[seed] = saved
            else:
                log.info("[seed %d: %d/%d] running %s in %s", seed, i, len(seeds), name, sub)
                per_seed[seed] = run_one(name, study, scfg, sub,
                                         resume=(sub / RunFolder.CONFIG).exists(), **options)
            runs[str(seed)] = {"folder": sub.name, "status": "complete", "seconds": per_seed[seed].get("seconds")}
            write_aggregate(parent, study, per_seed, cfg)
        return parent.complete()


def write_aggregate(parent: RunFolder, study: "Study", per_seed: Mapping[int, dict], cfg: ExperimentConfig) -> dict:
    """The parent folder's aggregate over the seeds finished so far (results, csv, report, plot)."""
    rows = {s: study.seed_rows(r) for s, r in per_seed.items()}
    agg = aggregate(rows, study.table, cfg.stats)
    parent.results["aggregate"] = agg
    parent.save()
    parent.write_metrics(csv_rows(agg["cells"]))
    seed_dirs = {str(s): seed_dir(Path("."), s).name for s in per_seed}
    report = aggregate_markdown(cfg.name, agg, study.table, seed_dirs)
    extra = study.summarize(rows, cfg)
    if extra:
        report = report.rstrip("\n") + "\n\n" + extra
    parent.write_report(report)
    series = errorbar_series(agg, study.table)
    if series:
        parent.plot("errorbars.png", errorbars_png, series, agg["metric"],
                    f"{cfg.name}: {len(per_seed)} seed(s)")
    return agg
