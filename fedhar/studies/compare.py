"""``fedhar compare``: finished run folders of any study, made on any day, in one table.

Each run folder is read as it was saved (``config.yaml`` and ``results.json``, nothing is run):
a multi-seed run gives one row set per seed folder, a single run gives one seed. The rows go
through the study's :class:`~fedhar.reporting.seeds.SeedTable` into :func:`aggregate`, and the
quantity compared is each pooled cell (mean over the table's units per seed) of one metric,
as mean ± std over seeds. Cells of different runs meet when their key columns are equal.

With a baseline, every other run gets the paired difference against it on the same
(seed, unit) pairs, with the p-value of :func:`paired_test`; with several runs, each cell says
which run leads and whether it is significantly best against the runner-up (:func:`verdict`).
The config keys that differ between the runs are shown beside them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fedhar.config import read_yaml
from fedhar.exceptions import ConfigError
from fedhar.reporting.run_dir import run_path, write_json, write_metrics_csv
from fedhar.reporting.seeds import SeedTable, aggregate
from fedhar.reporting.stats import TESTS, StatsConfig, describe_verdict, fmt, paired_test, verdict

RESULTS, CONFIG = "results.json", "config.yaml"
KIND_TO_STUDY = {"lodo": "cross_dataset", "continual-federated": "continual", "smarthome_federated": "smarthome"}
"""Older run folders name their study only by ``kind``, which some studies overwrote."""
IGNORED_KEYS = ("name", "seed", "seeds")
"""Config keys never shown as differences (the seeds have their own column)."""
MAX_KEY_COLUMNS = 4
"""More differing config keys than this go into one ``differs`` column as ``key=value``."""
LOWER_IS_BETTER = ("loss", "seconds", "forgetting", "mse", "error", "delay", "bytes", "memory")
"""A ``--metric`` other than the study's own is lower-is-better when its name holds one of these."""
ABSENT = "—"


# ---------------------------------------------------------------------------------------------- runs
@dataclass
class Run:
    """One finished run folder, read back: its seeds' rows, its config and its study."""

    path: Path
    study: str
    config: dict
    per_seed: dict[int, list[dict]]
    label: str = ""
    baseline: bool = False
    flat: dict = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.per_seed)

    @property
    def table(self) -> SeedTable:
        from fedhar.studies import STUDIES

        return STUDIES.get(self.study).table


def study_name(results: Mapping[str, Any]) -> str | None:
    """The study that made ``results``: ``study``, or else the older ``kind`` mapped to its study."""
    if results.get("study"):
        return str(results["study"])
    kind = results.get("kind")
    return KIND_TO_STUDY.get(kind, kind) if kind else None


def _resume_hint(study: str | None, path: Path) -> str:
    if study == "train":
        return f"finish it with `fedhar train --out {path} --resume`"
    if study == "simulate":
        return f"finish it with `fedhar simulate --resume {path}`"
    if study == "pretrain":
        return f"`fedhar pretrain` cannot resume: run it again with `--out {path} --force`"
    return f"finish it with `fedhar study {study or 'NAME'} --out {path} --resume`"


def _read_json(path: Path, what: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: {path.name} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                          f"the run folder is damaged.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path.name} does not hold a run's results (expected a JSON object).")
    return data


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG
    if not path.exists():
        raise ConfigError(f"{folder}: no {CONFIG} there, so the run's config is unknown.")
    return read_yaml(path)


def _is_complete(results: Mapping[str, Any]) -> bool:
    if "complete" not in results and "status" not in results:  # folders older than the run status
        return True
    return bool(results.get("complete")) or results.get("status") == "complete"


def _check_finished(results: Mapping[str, Any], folder: Path, study: str | None, hint_path: Path) -> None:
    if not _is_complete(results):
        status = results.get("status") or "not complete"
        error = f" ({results['error']})" if results.get("error") else ""
        raise ConfigError(f"{folder}: the run is not complete (status: {status}{error}); "
                          f"{_resume_hint(study, hint_path)}, then compare it.")


def _study(name: str | None, folder: Path):
    from fedhar.studies import STUDIES

    if not name or name not in STUDIES:
        what = f"unknown study {name!r}" if name else "no `study` (or `kind`) to say which study made it"
        raise ConfigError(f"{folder}: {RESULTS} names {what}; fedhar compare reads runs of the studies "
                          f"{', '.join(STUDIES.names())}.")
    return STUDIES.get(name)


def _seed_of(results: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    seed = results.get("seed", config.get("seed"))
    return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else 0


def _seed_folders(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for sub in folder.glob("seed_*"):
        tail = sub.name[len("seed_"):]
        if sub.is_dir() and tail.lstrip("-").isdigit() and (sub / RESULTS).exists():
            found.append((int(tail), sub))
    return sorted(found)


def load_run(path: str | Path) -> Run:
    """A finished run folder as a :class:`Run`; refuses (naming the folder) anything unfinished.

    Three layouts: a single run (``results.json`` with its ``seed``); a multi-seed run
    (``multi_seed``: one run per ``seed_<s>/``); and a folder of single runs ``seed_<s>/`` without
    a results file of its own (seeds run one by one into ``--out RUN/seed_<s>``).
    """
    folder = Path(path)
    if not folder.exists():
        raise ConfigError(f"{folder}: no such run folder.")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a run folder (it is a file); give the folder that holds {RESULTS}.")
    res_path = folder / RESULTS
    if not res_path.exists():
        seeds = _seed_folders(folder)
        if not seeds:
            raise ConfigError(f"{folder}: no {RESULTS} there (nor seed_<s>/{RESULTS}), so it holds no finished run.")
        return _load_seed_folders(folder, seeds)
    results = _read_json(res_path, folder)
    name = study_name(results)
    _check_finished(results, folder, name, folder)
    study = _study(name, folder)
    config = _read_config(folder)
    if not results.get("multi_seed"):
        per_seed = {_seed_of(results, config): study.seed_rows(results)}
    else:
        per_seed = {}
        runs = results.get("seed_runs") or {}
        for seed in results.get("seeds") or config.get("seeds") or []:
            sub = folder / ((runs.get(str(seed)) or {}).get("folder") or f"seed_{seed}")
            if not (sub / RESULTS).exists():
                raise ConfigError(f"{folder}: seed {seed} has no {sub.name}/{RESULTS}, though the run says it "
                                  f"finished; the run folder is incomplete (was {sub.name} moved or deleted?).")
            sres = _read_json(sub / RESULTS, sub)
            _check_finished(sres, sub, name, folder)
            per_seed[int(seed)] = study.seed_rows(sres)
    return _checked(Run(folder, name, config, per_seed))


def _load_seed_folders(folder: Path, seeds: Sequence[tuple[int, Path]]) -> Run:
    per_seed, names, config = {}, set(), None
    for seed, sub in seeds:
        sres = _read_json(sub / RESULTS, sub)
        name = study_name(sres)
        _check_finished(sres, sub, name, sub)
        names.add(name)
        per_seed[_seed_of(sres, {"seed": seed})] = _study(name, sub).seed_rows(sres)
        config = config if config is not None else _read_config(sub)
    if len(names) > 1:
        raise ConfigError(f"{folder}: its seed folders were made by different studies "
                          f"({', '.join(sorted(map(str, names)))}); compare them as separate runs.")
    return _checked(Run(folder, names.pop(), config or {}, per_seed))


def _checked(run: Run) -> Run:
    if not any(run.per_seed.values()):
        raise ConfigError(f"{run.path}: the {run.study} run is complete but its {RESULTS} holds no metrics to compare.")
    return run


# ---------------------------------------------------------------------------------------------- configs
def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model.backbone.name": "none", ...}``: nested mappings as dotted keys (lists kept whole)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _relative_paths(value: Any, folder: Path) -> Any:
    """A value pointing into the run's own folder (e.g. a state_dir) as ``<run>/...``: it differs
    between any two runs without saying anything about them."""
    if isinstance(value, str) and value:
        for base in {str(folder), str(folder.resolve())}:
            if value == base or value.startswith(base.rstrip("/") + "/"):
                return "<run>" + value[len(base.rstrip("/")):]
    return value


def differing_keys(runs: Sequence[Run], ignore: Iterable[str] = IGNORED_KEYS) -> list[str]:
    """Dotted config keys whose values are not the same in every run (a missing key is a value)."""
    ignore = set(ignore)
    keys = list(dict.fromkeys(k for r in runs for k in r.flat))
    return [k for k in keys if k not in ignore and len({_text(r.flat[k]) if k in r.flat else ABSENT for r in runs}) > 1]


def _text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return str(v)


# ---------------------------------------------------------------------------------------------- cells
def _labels(paths: Sequence[Path]) -> list[str]:
    """Each folder's name, or as many parent folders as needed to tell equal names apart."""
    parts = [p.resolve().parts for p in paths]
    depth = [1] * len(paths)
    for _ in range(max(len(p) for p in parts)):
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        dup = {lab for lab in labels if labels.count(lab) > 1}
        if not dup:
            return labels
        depth = [d + 1 if lab in dup else d for d, lab in zip(depth, labels)]
    return [str(p) for p in paths]


def _cell_id(cell: Mapping[str, Any], keys: Sequence[str]) -> tuple:
    return tuple((k, cell.get(k)) for k in keys)


def cell_text(cell_id: Sequence[tuple[str, Any]], named: bool) -> str:
    if not cell_id:
        return "all"
    return ", ".join(f"{k}={v}" for k, v in cell_id) if named else " / ".join(str(v) for _, v in cell_id)


def _pairs(agg: Mapping[str, Any], table: SeedTable, metric: str) -> dict[tuple, dict[tuple, float]]:
    """``{cell_id: {(seed, unit...): value}}``: the unpooled values of ``metric``, keyed the way
    :func:`verdict` pairs them (same seed, same unit)."""
    keys = [k for k in agg["keys"] if k not in table.units]
    out: dict[tuple, dict[tuple, float]] = {}
    for c in agg["cells"]:
        s = c["metrics"].get(metric)
        if not s:
            continue
        unit = tuple((u, c.get(u)) for u in table.units)
        mine = out.setdefault(_cell_id(c, keys), {})
        for seed, v in s["values"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                mine[(str(seed), *unit)] = float(v)
    return out


def run_cells(run: Run, metric: str, stats: StatsConfig) -> dict:
    """One run's pooled cells: ``{cell_id: {"summary": {...}, "accuracy": {...}, "pairs": {...}}}``."""
    table = run.table
    agg = aggregate(run.per_seed, table, stats)
    pooled_keys = [k for k in agg["keys"] if k not in table.units]
    pairs = _pairs(agg, table, metric)
    out = {}
    for c in agg["pooled"]:
        cid = _cell_id(c, pooled_keys)
        out[cid] = {"keys": pooled_keys, "summary": c["metrics"].get(metric), "accuracy": c["metrics"].get("accuracy"),
                    "pairs": pairs.get(cid, {})}
    return {"cells": out, "metrics": list(dict.fromkeys(m for c in agg["cells"] for m in c["metrics"])),
            "units": list(table.units)}


def against(pairs: Mapping[tuple, float], base: Mapping[tuple, float], test: str, alpha: float) -> dict:
    """The paired difference ``run - baseline`` on their common (seed, unit) pairs."""
    common = [k for k in pairs if k in base]
    if not common:
        return {"n": 0, "mean_diff": None, "std_diff": None, "p": None, "significant": False, "test": test,
                "unpaired": "no common seeds"}
    a, b = [pairs[k] for k in common], [base[k] for k in common]
    res = paired_test(a, b, test)
    d = np.asarray(a) - np.asarray(b)
    std = float(np.std(d, ddof=1)) if d.size > 1 else None
    return {**res, "std_diff": std, "significant": res["p"] is not None and res["p"] < alpha}


def higher_is_better(metric: str, tables: Iterable[SeedTable]) -> bool:
    for t in tables:
        if t.metric == metric:
            return t.higher_is_better
    return not any(w in metric.lower() for w in LOWER_IS_BETTER)


def _stats_of(config: Mapping[str, Any], where: Path) -> StatsConfig:
    raw = config.get("stats") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: `stats` in {CONFIG} is not a mapping.")
    names = {f.name for f in fields(StatsConfig)}
    stats = StatsConfig(**{k: v for k, v in raw.items() if k in names})
    if stats.test not in TESTS:
        raise ConfigError(f"{where}: `stats.test` {stats.test!r} is unknown; choose one of {', '.join(TESTS)}.")
    return stats


# ---------------------------------------------------------------------------------------------- compare
def collect(paths: Sequence[str | Path], baseline: str | Path | None = None) -> list[Run]:
    """The runs, each once (the baseline first, marked), labelled by their folder names."""
    if not paths and baseline is None:
        raise ConfigError("fedhar compare needs at least one run folder.")
    base = Path(baseline) if baseline is not None else None
    ordered: dict[Path, Path] = {}
    if base is not None:
        ordered[base.resolve()] = base
    for p in map(Path, paths):
        ordered.setdefault(p.resolve(), p)
    runs = [load_run(p) for p in ordered.values()]
    for run, label in zip(runs, _labels([r.path for r in runs])):
        run.label = label
        run.flat = {k: _relative_paths(v, run.path) for k, v in flatten(run.config).items()}
    if base is not None:
        runs[0].baseline = True
    return runs


def build(runs: Sequence[Run], metric: str | None = None) -> dict:
    """The comparison as data: runs, differing config keys, and per cell every run's summary,
    its difference against the baseline and the cell's verdict."""
    ref = runs[0]
    stats = _stats_of(ref.config, ref.path)
    tables = [r.table for r in runs]
    metric = metric or ref.table.metric
    per_run = {r.label: run_cells(r, metric, stats) for r in runs}
    available = list(dict.fromkeys(m for pr in per_run.values() for m in pr["metrics"]))
    if metric not in available:
        raise ConfigError(f"metric {metric!r} is in none of the runs; choose one with --metric: {', '.join(available)}.")
    hib = higher_is_better(metric, [ref.table, *tables])
    base = next((r for r in runs if r.baseline), None)
    cell_ids = list(dict.fromkeys(cid for pr in per_run.values() for cid in pr["cells"]))
    key_sets = {tuple(k for k, _ in cid) for cid in cell_ids}
    named = len(key_sets) > 1
    cells = []
    for cid in cell_ids:
        entry: dict = {"cell": dict(cid), "label": cell_text(cid, named), "runs": {}}
        base_cell = per_run[base.label]["cells"].get(cid) if base else None
        for r in runs:
            mine = per_run[r.label]["cells"].get(cid)
            if mine is None or not mine["summary"]:
                entry["runs"][r.label] = None
                continue
            row: dict = {"summary": {k: v for k, v in mine["summary"].items()},
                         "accuracy": None if metric == "accuracy" else mine["accuracy"], "pairs": mine["pairs"]}
            if base is not None and not r.baseline:
                row["vs_baseline"] = (against(mine["pairs"], base_cell["pairs"], stats.test, stats.alpha)
                                      if base_cell and base_cell["summary"] else
                                      {"n": 0, "mean_diff": None, "std_diff": None, "p": None, "significant": False,
                                       "test": stats.test, "unpaired": "the baseline lacks this cell"})
            entry["runs"][r.label] = row
        present = {lab: row["pairs"] for lab, row in entry["runs"].items() if row and row["pairs"]}
        entry["verdict"] = verdict(present, stats.test, stats.alpha, hib) if len(present) > 1 else None
        cells.append(entry)
    diff_keys = differing_keys(runs)
    return {"metric": metric, "higher_is_better": hib, "cell_columns": [] if named else list(next(iter(key_sets), ())),
            "test": stats.test, "test_name": TESTS[stats.test],
            "alpha": stats.alpha, "baseline": base.label if base else None, "differing_keys": diff_keys,
            "runs": [{"label": r.label, "path": str(r.path), "study": r.study, "seeds": r.seeds, "baseline": r.baseline,
                      "units": per_run[r.label]["units"], "config": {k: r.flat.get(k, ABSENT) for k in diff_keys}}
                     for r in runs],
            "cells": cells}


# ---------------------------------------------------------------------------------------------- output
def _md(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _summary_text(s: Mapping[str, Any] | None) -> str:
    return f"{fmt(s)} ({s['n']})" if s and s.get("mean") is not None else ""


def _diff_text(d: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """(difference, pairs, p) cells of the table."""
    if not d or d.get("mean_diff") is None:
        return f"n/a ({(d or {}).get('unpaired') or 'no common seeds'})", "0", "n/a"
    diff = f"{d['mean_diff']:+.3f}" + (f" ± {d['std_diff']:.3f}" if d.get("std_diff") is not None else "")
    p = "n/a (1 pair)" if d["p"] is None else f"{d['p']:.3g}" + (" *" if d["significant"] else "")
    return diff, str(d["n"]), p


def _run_verdict(entry: Mapping[str, Any], label: str) -> str:
    v = entry.get("verdict")
    if not v or label not in v.get("tied", []) and v.get("leader") != label:
        return ""
    if v["verdict"] == "best":
        return "best"
    return "tie (leader)" if v["leader"] == label else "tie"


def _config_columns(cmp: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    keys = cmp["differing_keys"]
    if len(keys) <= MAX_KEY_COLUMNS:
        return keys, {r["label"]: [_text(r["config"][k]) for k in keys] for r in cmp["runs"]}
    return ["differs"], {r["label"]: ["; ".join(f"{k}={_text(r['config'][k])}" for k in keys)] for r in cmp["runs"]}


def markdown(cmp: Mapping[str, Any]) -> str:
    """The table on screen and in ``compare.md``: one line per cell and run, then the verdicts."""
    runs = cmp["runs"]
    metric, base = cmp["metric"], cmp["baseline"]
    units = sorted({u for r in runs for u in r["units"]})
    show_cell = any(c["cell"] for c in cmp["cells"])
    show_study = len({r["study"] for r in runs}) > 1
    show_acc = any(row and row.get("accuracy") for c in cmp["cells"] for row in c["runs"].values())
    key_cols, key_vals = _config_columns(cmp)
    info = {r["label"]: r for r in runs}
    better = "higher" if cmp["higher_is_better"] else "lower"
    lines = [f"# fedhar compare: {len(runs)} run(s) on {metric}", "",
             f"Each value: {metric} ({better} is better) as mean ± std over seeds (n seeds; std with ddof=1)"
             + (f", each seed's value the mean over {', '.join(units)}" if units else "") + "."]
    if base:
        lines.append(f"Δ: the paired difference run − baseline (**{base}**) on the same seed"
                     + (f" and {', '.join(units)}" if units else "") + f" pairs, mean ± std over the pairs; "
                     f"p: {cmp['test_name']}; * marks p < {cmp['alpha']}.")
    lines.append("")
    cell_head = " / ".join(cmp["cell_columns"]) or "cell"
    head = ["run"] + (["study"] if show_study else []) + ["seeds"] + key_cols + ([cell_head] if show_cell else []) \
        + [f"{metric} (n)"] + (["accuracy (n)"] if show_acc else []) \
        + ([f"Δ {metric} vs baseline", "pairs", "p"] if base else []) + (["verdict"] if len(runs) > 1 else [])
    lines += ["| " + " | ".join(map(_md, head)) + " |", "|" + "---|" * len(head)]
    for c in cmp["cells"]:
        for label, row in c["runs"].items():
            r = info[label]
            name = f"{label} (baseline)" if r["baseline"] else label
            cols = [name] + ([r["study"]] if show_study else []) + [",".join(map(str, r["seeds"]))] + key_vals[label] \
                + ([c["label"]] if show_cell else [])
            cols += [_summary_text(row and row["summary"])] + ([_summary_text(row and row["accuracy"])] if show_acc else [])
            if base:
                if r["baseline"]:
                    cols += ["baseline", "", ""]
                elif row is None:
                    cols += ["", "", ""]
                else:
                    cols += list(_diff_text(row.get("vs_baseline")))
            if len(runs) > 1:
                cols.append(_run_verdict(c, label) if row else "")
            lines.append("| " + " | ".join(map(_md, cols)) + " |")
    verdicts = [(c["label"], c["verdict"]) for c in cmp["cells"] if c["verdict"]]
    if verdicts:
        lines += ["", f"Verdicts on {metric} ({cmp['test_name']} of the leader against the runner-up on the same "
                  f"(seed{', ' + ', '.join(units) if units else ''}) pairs; best only when p < {cmp['alpha']}):", ""]
        lines += [f"- {label + ': ' if show_cell else ''}{describe_verdict(v)}" for label, v in verdicts]
    lines += ["", "Runs: " + "; ".join(f"{r['label']} = {r['path']}" for r in runs) + "."]
    return "\n".join(lines) + "\n"


def csv_lines(cmp: Mapping[str, Any]) -> list[dict]:
    """``compare.csv``: one line per run and cell (empty values where the run lacks the cell)."""
    out = []
    cell_keys = list(dict.fromkeys(k for c in cmp["cells"] for k in c["cell"]))
    info = {r["label"]: r for r in cmp["runs"]}
    for c in cmp["cells"]:
        for label, row in c["runs"].items():
            r = info[label]
            s = (row or {}).get("summary") or {}
            acc = (row or {}).get("accuracy") or {}
            d = (row or {}).get("vs_baseline") or {}
            lo, hi = s.get("ci95") or (None, None)
            line = {"run": label, "path": r["path"], "study": r["study"], "seeds": " ".join(map(str, r["seeds"])),
                    "baseline": r["baseline"], **{k: _text(v) for k, v in r["config"].items()},
                    **{k: c["cell"].get(k, "") for k in cell_keys}, "metric": cmp["metric"],
                    "mean": s.get("mean"), "std": s.get("std"), "n": s.get("n"), "ci_low": lo, "ci_high": hi,
                    "accuracy_mean": acc.get("mean"), "accuracy_std": acc.get("std"),
                    "diff": d.get("mean_diff"), "diff_std": d.get("std_diff"), "pairs": d.get("n"), "p": d.get("p"),
                    "significant": d.get("significant") if d else None,
                    "test": cmp["test"] if d else None, "verdict": _run_verdict(c, label) if row else ""}
            out.append({k: ("" if v is None else v) for k, v in line.items()})
    return out


def _json(cmp: Mapping[str, Any]) -> dict:
    """The comparison without the per-pair tuples (kept as ``seed|unit`` strings)."""
    def pairs(p: Mapping[tuple, float]) -> dict:
        return {"|".join(str(x if not isinstance(x, tuple) else f"{x[0]}={x[1]}") for x in k): v for k, v in p.items()}

    cells = []
    for c in cmp["cells"]:
        runs = {lab: (None if row is None else {**row, "pairs": pairs(row["pairs"])}) for lab, row in c["runs"].items()}
        cells.append({**c, "runs": runs})
    return {**cmp, "cells": cells}


def compare(paths: Sequence[str | Path], baseline: str | Path | None = None, out: str | Path | None = None,
            metric: str | None = None) -> dict:
    """Read the runs, build the comparison, write ``compare.md/.csv/.json`` to ``out``
    (default ``runs/compare-<timestamp>``). Returns the comparison with ``markdown`` and ``out``."""
    runs = collect(paths, baseline)
    cmp = build(runs, metric)
    text = markdown(cmp)
    folder = run_path(out, "compare")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: a file is there; give a folder for compare.md, compare.csv and compare.json.")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.md").write_text(text)
    write_metrics_csv(folder / "compare.csv", csv_lines(cmp))
    write_json(folder / "compare.json", _json(cmp))
    return {**cmp, "markdown": text, "out": str(folder)}
