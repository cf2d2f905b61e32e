"""Heterogeneous devices (``fedhar study devices``): fleets of device tiers, each one federated run
per seed, read on the global macro-F1 (central held-out), each tier's macro-F1 on its clients' local
data, upload bytes per tier, simulated seconds and simulated time to reach ``federated.target_macro_f1``.

Every point is an ordinary ``simulate`` run folder under ``points/seed_<s>/`` (see
:mod:`fedhar.studies.points`), so a killed study resumes point by point. The top folder holds the
rows, the aggregate over seeds (mean, std, 95% interval), report.md with the issue's two verdicts
(best mixed rule against ``keep`` x the homogeneous fleet; best mixed rule against the capable-only
fleet on the weaker tiers' data, paired over seeds) and devices.png with error bars.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from fedhar.config import ExperimentConfig, derive
from fedhar.reporting.seeds import SeedTable, aggregate
from fedhar.reporting.stats import paired_test
from fedhar.studies.points import fmt_ms, mean_std, run_point, slug

if TYPE_CHECKING:
    from fedhar.reporting import RunFolder

log = logging.getLogger(__name__)

TABLE = SeedTable(keys=("setup",), variant=("setup",))
TIER_F1, TIER_BYTES = "f1_", "bytes_up_"
"""Per-tier columns: ``f1_<tier>`` (macro-F1 on that tier's clients' local test windows), ``bytes_up_<tier>``."""


def point_config(cfg: ExperimentConfig, seed: int, setup: dict) -> ExperimentConfig:
    return derive(cfg, {**setup.get("set", {}), "seed": seed, "seeds": None, "name": f"{cfg.name}-{slug(setup['label'])}"},
                  source=f"devices setup {setup['label']}")


def point_row(results: dict, label: str) -> dict:
    """A finished run's row: global macro-F1, per-tier F1 and bytes, simulated time."""
    final = results.get("final", {})
    dev = results.get("devices") or {}
    row = {"setup": label, "macro_f1": final.get("macro_f1"), "accuracy": final.get("accuracy"),
           "simulated_seconds": dev.get("simulated_seconds"), "time_to_reach_s": dev.get("time_to_reach_s"),
           "reached": dev.get("time_to_reach_s") is not None, "seconds": results.get("seconds"),
           "bytes": (results.get("communication") or {}).get("total_bytes")}
    for name, t in (dev.get("tiers") or {}).items():
        row[TIER_F1 + name] = t.get("fed_macro_f1")
        row[TIER_BYTES + name] = t.get("bytes_up")
    return row


def run_devices(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every setup for every seed (finished ones kept on resume), then the aggregate and report."""
    seeds = list(cfg.seeds or [cfg.seed])
    setups = cfg.devices.setups
    results = folder.results
    results.update(kind="devices", seeds=seeds)
    rows: list[dict] = results.setdefault("rows", [])
    total, n = len(setups) * len(seeds), 0
    for seed in seeds:
        for setup in setups:
            n += 1
            key = (str(seed), setup["label"])
            if folder.done(*key):
                continue
            log.info("[%d/%d] seed %d: %s", n, total, seed, setup["label"])
            res, where = run_point(point_config(cfg, seed, setup), folder, seed, setup["label"])
            rows.append({"seed": seed, **point_row(res, setup["label"]), "folder": where})
            folder.record(*key)
            write_outputs(cfg, folder, rows)
    write_outputs(cfg, folder, rows)
    return folder.complete()


def tier_names(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k[len(TIER_F1):] for r in rows for k in r if k.startswith(TIER_F1)))


def write_outputs(cfg: ExperimentConfig, folder: RunFolder, rows: list[dict]) -> None:
    per_seed: dict[int, list[dict]] = {}
    for r in rows:
        per_seed.setdefault(int(r["seed"]), []).append({k: v for k, v in r.items() if k not in ("seed", "folder")})
    agg = aggregate(per_seed, TABLE, cfg.stats)
    found = verdicts(cfg, rows)
    folder.results.update(aggregate=agg, verdicts=found)
    folder.save()
    folder.write_metrics(rows)
    cells = {c["setup"]: c["metrics"] for c in agg["cells"]}
    folder.write_report(report(cfg, cells, rows, found, len(per_seed)))
    draw(cfg, folder, cells, tier_names(rows))


def _mean(rows: list[dict], label: str, col: str = "macro_f1") -> float | None:
    vals = [r[col] for r in rows if r["setup"] == label and _finite(r.get(col))]
    return sum(vals) / len(vals) if vals else None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _weak_f1(row: dict, tiers: list[str]) -> float | None:
    vals = [row.get(TIER_F1 + t) for t in tiers]
    vals = [v for v in vals if _finite(v)]
    return sum(vals) / len(vals) if vals else None


def verdicts(cfg: ExperimentConfig, rows: list[dict]) -> dict:
    """The best mixed setup (by mean global macro-F1) against ``keep`` x the homogeneous one, and
    against the capable-only setup on the weak tiers' data (mean of their per-tier F1), paired over seeds."""
    dcfg = cfg.devices
    out: dict = {}
    means = {m: v for m in dcfg.mixed if (v := _mean(rows, m)) is not None}
    if not means:
        return out
    best = max(means, key=means.get)
    out["best_mixed"] = {"setup": best, "macro_f1": means[best]}
    if dcfg.homogeneous and (homo := _mean(rows, dcfg.homogeneous)) is not None:
        out["vs_homogeneous"] = {"best_mixed_f1": means[best], "homogeneous_f1": homo, "keep": dcfg.keep,
                                 "threshold": dcfg.keep * homo, "met": means[best] >= dcfg.keep * homo}
    if dcfg.capable:
        mixed = {r["seed"]: w for r in rows if r["setup"] == best and (w := _weak_f1(r, dcfg.weak_tiers)) is not None}
        cap = {r["seed"]: w for r in rows if r["setup"] == dcfg.capable and (w := _weak_f1(r, dcfg.weak_tiers)) is not None}
        common = sorted(set(mixed) & set(cap))
        if common:
            a, b = [mixed[s] for s in common], [cap[s] for s in common]
            out["vs_capable"] = {"tiers": list(dcfg.weak_tiers), "best_mixed_f1": sum(a) / len(a), "capable_f1": sum(b) / len(b),
                                 "seeds": common, **paired_test(a, b, cfg.stats.test), "beats": sum(a) > sum(b)}
        else:
            out["vs_capable"] = {"tiers": list(dcfg.weak_tiers), "missing": True}
    return out


def _time(cell: dict | None, rows: list[dict], label: str) -> str:
    reached = [r for r in rows if r["setup"] == label]
    hit = [r for r in reached if r.get("time_to_reach_s") is not None]
    if not hit:
        return "not reached"
    v = mean_std(cell, "time_to_reach_s")
    text = "–" if v is None else f"{v[0]:.0f} ± {v[1]:.0f}"
    return text if len(hit) == len(reached) else f"{text} ({len(hit)}/{len(reached)} seeds)"


def report(cfg: ExperimentConfig, cells: dict, rows: list[dict], found: dict, n_seeds: int) -> str:
    tiers = tier_names(rows)
    target = cfg.federated.target_macro_f1
    lines = [f"# {cfg.name}: heterogeneous devices", "",
             f"Mean ± std over {n_seeds} seed(s). Global: macro-F1 of the global model on the held-out test set. "
             "Per tier: macro-F1 on that tier's clients' local test windows (each evaluating its tier's slice of the "
             "model, last round). Bytes: upload per tier over the run. Simulated time: until the last round ended; "
             f"time to {target:g}: simulated seconds until the global macro-F1 first reached {target:g}.", "",
             "| setup | global macro-F1 | " + " | ".join(f"F1 {t}" for t in tiers) + " | "
             + " | ".join(f"MB up {t}" for t in tiers) + f" | simulated s | time to {target:g} (s) |",
             "|---|---|" + "---|" * (2 * len(tiers)) + "---|---|"]
    for s in cfg.devices.setups:
        label = s["label"]
        c = cells.get(label)
        if c is None:
            continue
        mb = [mean_std(c, TIER_BYTES + t) for t in tiers]
        sim = mean_std(c, "simulated_seconds")
        lines.append(f"| {label} | {fmt_ms(mean_std(c))} | " + " | ".join(fmt_ms(mean_std(c, TIER_F1 + t)) for t in tiers)
                     + " | " + " | ".join("–" if v is None else f"{v[0] / 1e6:.2f}" for v in mb)
                     + f" | {'–' if sim is None else f'{sim[0]:.0f} ± {sim[1]:.0f}'} | {_time(c, rows, label)} |")
    lines += ["", "## Verdicts", ""]
    if (b := found.get("best_mixed")) is None:
        lines.append("- no mixed setup finished yet")
    else:
        if (h := found.get("vs_homogeneous")) is not None:
            lines.append(f"- best mixed rule **{b['setup']}**: global macro-F1 {h['best_mixed_f1']:.3f} against "
                         f"{h['keep']:g} x homogeneous {h['homogeneous_f1']:.3f} = {h['threshold']:.3f}: "
                         + ("**met**" if h["met"] else "**not met**"))
        if (v := found.get("vs_capable")) is not None and v.get("missing"):
            lines.append(f"- no seed has per-tier macro-F1 of {', '.join(v['tiers'])} (`devices.weak_tiers`) for both "
                         f"**{b['setup']}** and **{cfg.devices.capable}**")
        elif v is not None:
            p = "n/a (too few seeds)" if v["p"] is None else f"{v['p']:.3g}"
            lines.append(f"- best mixed rule **{b['setup']}** against **{cfg.devices.capable}** on the "
                         f"{', '.join(v['tiers'])} clients' data (mean of their tiers' macro-F1): {v['best_mixed_f1']:.3f} "
                         f"vs {v['capable_f1']:.3f} ({'beats' if v['beats'] else 'does not beat'} it; paired "
                         f"{v['test']} over {v['n']} seed(s), mean difference {v['mean_diff']:+.3f}, p={p})")
    return "\n".join(lines) + "\n"


def draw(cfg: ExperimentConfig, folder: RunFolder, cells: dict, tiers: list[str]) -> None:
    from fedhar.reporting.plots import errorbars_png

    series: dict[str, list] = {}
    for col, name in [("macro_f1", "global"), *[(TIER_F1 + t, t) for t in tiers]]:
        pts = [(s["label"], *v) for s in cfg.devices.setups if (v := mean_std(cells.get(s["label"]), col)) is not None]
        if pts:
            series[name] = pts
    if series:
        folder.plot("devices.png", errorbars_png, series, "macro-F1", f"{cfg.name}: global and per-tier macro-F1")
