"""A study's per-seed rows aggregated into cells with mean, std, n and a 95% interval, pooled over
a study's units, with one paired "best or tie" verdict per group; and the report and plot of that.

A study describes its rows once, as a :class:`SeedTable` (which columns name a cell, which name the
thing compared, which split the verdicts, which are repeated units inside a seed); the run folder
of a multi-seed run writes the aggregate beside the seed folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fedhar.reporting.stats import INTERVAL, TESTS, StatsConfig, describe_verdict, fmt, fmt_ci, summarize, verdict

SEED = "seed"


@dataclass(frozen=True)
class SeedTable:
    """How one seed's results become rows, and how rows are compared across seeds.

    Every other column whose values are numbers is a metric (mean, std, n, interval per cell).
    """

    keys: tuple[str, ...] = ()
    """Columns that name a cell (e.g. held-out dataset, variant, mode, budget)."""
    variant: tuple[str, ...] = ()
    """Columns that name what is compared (a subset of ``keys``); empty: nothing to compare inside a run."""
    groups: tuple[str, ...] = ()
    """One verdict per value of these columns (e.g. the label budget)."""
    units: tuple[str, ...] = ()
    """Repeated units inside a seed (e.g. held-out dataset, client): paired with the seed, and pooled over."""
    metric: str = "macro_f1"
    """The metric verdicts compare."""
    higher_is_better: bool = True


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def variant_label(row: Mapping[str, Any], cols: Sequence[str]) -> str:
    """``pretrained LLM (full)``: the first column, the others in parentheses (``none`` left out)."""
    first, *rest = [row.get(c) for c in cols] or [""]
    extra = [str(v) for v in rest if v not in (None, "", "none")]
    return f"{first} ({', '.join(extra)})" if extra else str(first)


def metric_columns(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k, v in r.items() if k not in keys and k != SEED and k not in cols and _is_number(v))
    return cols


def key_columns(rows: Sequence[Mapping[str, Any]], table: SeedTable) -> tuple[str, ...]:
    """The table's keys, or else every column whose values are text."""
    if table.keys:
        return table.keys
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k, v in r.items() if k != SEED and isinstance(v, str) and k not in cols)
    return tuple(cols)


def _cells(rows: list[dict], keys: Sequence[str], metrics: Sequence[str], confidence: float) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    cells = []
    for key, mine in groups.items():
        out = {}
        for m in metrics:
            values = {str(r[SEED]): r.get(m) for r in mine if m in r}
            if not values:
                continue
            out[m] = {**summarize(list(values.values()), confidence), "values": values}
        cells.append({**dict(zip(keys, key)), "metrics": out})
    return cells


def _pool(rows: list[dict], keys: Sequence[str], units: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """Per seed, the mean over ``units`` of each cell (a unit without the cell is left out)."""
    rest = [k for k in keys if k not in units]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r[SEED], *[r.get(k) for k in rest]), []).append(r)
    pooled = []
    for (seed, *key), mine in groups.items():
        row: dict = {SEED: seed, **dict(zip(rest, key)), "units": len(mine)}
        for m in metrics:
            vals = [r.get(m) for r in mine if _is_number(r.get(m)) and np.isfinite(r.get(m))]
            row[m] = float(np.mean(vals)) if vals else None
        pooled.append(row)
    return pooled


def aggregate(per_seed: Mapping[int, Sequence[Mapping[str, Any]]], table: SeedTable,
              stats: StatsConfig | None = None) -> dict:
    """Cells with ``mean``, ``std``, ``n``, ``ci95`` and the per-seed ``values`` of every metric;
    the same pooled over ``table.units``; and a verdict per group on ``table.metric``."""
    stats = stats or StatsConfig()
    rows = [{**r, SEED: s} for s, rs in per_seed.items() for r in rs]
    keys = key_columns(rows, table)
    metrics = metric_columns(rows, keys)
    out: dict = {"seeds": sorted(per_seed), "interval": INTERVAL, "test": TESTS[stats.test], "alpha": stats.alpha,
                 "metric": table.metric, "keys": list(keys), "units": list(table.units), "variant": list(table.variant),
                 "groups": list(table.groups), "cells": _cells(rows, keys, metrics, stats.confidence)}
    pooled_rows = _pool(rows, keys, table.units, metrics) if table.units else rows
    pooled_keys = [k for k in keys if k not in table.units]
    out["pooled"] = _cells(pooled_rows, pooled_keys, metrics, stats.confidence) if table.units else out["cells"]
    out["verdicts"] = verdicts(rows, table, stats) if table.variant else []
    return out


def verdicts(rows: Sequence[Mapping[str, Any]], table: SeedTable, stats: StatsConfig) -> list[dict]:
    """One paired verdict per group: samples keyed by (seed, units) so pairs share seed and unit."""
    out = []
    for group in dict.fromkeys(tuple(r.get(g) for g in table.groups) for r in rows):
        samples: dict[str, dict] = {}
        for r in rows:
            if tuple(r.get(g) for g in table.groups) != group or not _is_number(r.get(table.metric)):
                continue
            pair = (r[SEED], *[r.get(u) for u in table.units])
            samples.setdefault(variant_label(r, table.variant), {})[pair] = float(r[table.metric])
        v = verdict(samples, stats.test, stats.alpha, table.higher_is_better)
        out.append({**dict(zip(table.groups, group)), **v})
    return out


# ---------------------------------------------------------------------------------------------- files
def csv_rows(cells: Sequence[Mapping[str, Any]]) -> list[dict]:
    """metrics.csv of an aggregate: the keys, then ``<metric>_mean/_std/_n/_ci_low/_ci_high``."""
    out = []
    for c in cells:
        row = {k: v for k, v in c.items() if k != "metrics"}
        for m, s in c["metrics"].items():
            lo, hi = s["ci95"] or (None, None)
            row.update({f"{m}_mean": s["mean"], f"{m}_std": s["std"], f"{m}_n": s["n"], f"{m}_ci_low": lo, f"{m}_ci_high": hi})
        out.append(row)
    return out


def _group_text(cell: Mapping[str, Any], cols: Sequence[str]) -> str:
    return ", ".join(str(cell.get(g)) for g in cols)


def pivot_markdown(cells: Sequence[Mapping[str, Any]], table: SeedTable, metric: str, where: str = "") -> list[str]:
    """Variants down, groups across, ``mean ± std`` in each cell (bold: the declared best)."""
    cols = list(dict.fromkeys(_group_text(c, table.groups) for c in cells)) if table.groups else [metric]
    names = list(dict.fromkeys(variant_label(c, table.variant) for c in cells))
    grid = {(variant_label(c, table.variant), _group_text(c, table.groups) if table.groups else metric): c["metrics"].get(metric)
            for c in cells}
    lines = [f"| {' / '.join(table.variant) or 'run'}{where} | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(fmt(grid.get((name, col))) if (name, col) in grid else "" for col in cols) + " |")
    return lines


def aggregate_markdown(name: str, agg: Mapping[str, Any], table: SeedTable, seed_dirs: Mapping[str, str]) -> str:
    """report.md of a multi-seed run: verdicts, the pooled table, per-unit tables, every cell."""
    metric = agg["metric"]
    seeds = ", ".join(map(str, agg["seeds"]))
    lines = [f"# {name}: {len(agg['seeds'])} seeds ({seeds})", "",
             f"Each cell: {metric} as mean ± std over seeds (std with ddof=1); intervals are the {agg['interval']}. "
             f"Comparisons are paired on the same seed" + (f" and {', '.join(agg['units'])}" if agg["units"] else "")
             + f": the leader is called best only when the {agg['test']} against the runner-up gives p < {agg['alpha']}; "
             "otherwise the variants it does not beat are listed as a tie.", "",
             "Seed runs: " + ", ".join(f"[seed {s}]({d}/)" for s, d in seed_dirs.items()) + ".", ""]
    if agg["verdicts"]:
        lines += [f"## Verdicts on {metric}", ""]
        for v in agg["verdicts"]:
            where = _group_text(v, table.groups)
            lines.append(f"- {where + ': ' if where else ''}{describe_verdict(v)}")
        lines.append("")
    pooled_over = f" (mean over {', '.join(agg['units'])} per seed)" if agg["units"] else ""
    if table.variant:
        lines += [f"## {metric}{pooled_over}", ""] + pivot_markdown(agg["pooled"], table, metric) + [""]
        for unit in dict.fromkeys(tuple(c.get(u) for u in agg["units"]) for c in agg["cells"]) if agg["units"] else []:
            mine = [c for c in agg["cells"] if tuple(c.get(u) for u in agg["units"]) == unit]
            lines += [f"### {', '.join(map(str, unit))}", ""] + pivot_markdown(mine, table, metric) + [""]
    lines += ["## Every cell", ""]
    keys = agg["keys"]
    shown = [m for m in dict.fromkeys(m for c in agg["cells"] for m in c["metrics"])
             if m in (metric, "accuracy", "seconds", "steps") or not keys][:8]
    lines += ["| " + " | ".join(keys + [f"{m} (mean ± std)" for m in shown] + [f"{metric} 95% CI", "n"]) + " |",
              "|" + "---|" * (len(keys) + len(shown) + 2)]
    for c in agg["cells"]:
        main = c["metrics"].get(metric)
        lines.append("| " + " | ".join([str(c.get(k)) for k in keys] + [fmt(c["metrics"].get(m)) for m in shown]
                                       + [fmt_ci(main), str(main["n"] if main else 0)]) + " |")
    return "\n".join(lines) + "\n"


def errorbar_series(agg: Mapping[str, Any], table: SeedTable) -> dict[str, list[tuple[str, float, float]]]:
    """``{variant: [(group, mean, std), ...]}`` of the pooled cells, for :func:`errorbars_png`."""
    series: dict[str, list] = {}
    for c in agg["pooled"]:
        s = c["metrics"].get(agg["metric"])
        if not s or s["mean"] is None:
            continue
        x = _group_text(c, table.groups) if table.groups else agg["metric"]
        series.setdefault(variant_label(c, table.variant) if table.variant else "run", []).append((x, s["mean"], s["std"] or 0.0))
    return series
