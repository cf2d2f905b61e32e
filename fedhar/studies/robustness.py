"""Robustness and privacy on the wire (``fedhar study robustness``): federated runs whose final
global macro-F1 is read against the share of attacking clients, per aggregation rule and attack,
and against the privacy budget epsilon.

Every point is an ordinary ``simulate`` run folder under ``points/seed_<s>/``, so a killed study
resumes point by point (and a half-finished point round by round). The top folder holds the rows,
the aggregate over seeds (mean, std, 95% interval), report.md and one error-bar plot per attack
and for privacy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fedhar.config import ExperimentConfig, derive
from fedhar.reporting.seeds import SeedTable, aggregate
from fedhar.reporting.stats import describe_verdict
from fedhar.studies.points import fmt_ms as _fmt, mean_std as _ms, run_point, slug

if TYPE_CHECKING:
    from fedhar.reporting import RunFolder

log = logging.getLogger(__name__)

ATTACK, PRIVACY, CLEAN = "attack", "privacy", "none"
TABLE = SeedTable(keys=("panel", "aggregator", "attack", "value"), variant=("aggregator",), groups=("panel", "attack", "value"))
"""Verdicts compare the aggregation rules at each (attack, fraction)."""


def eps_label(eps: float | None) -> str:
    return "inf" if eps is None else f"{eps:g}"


def points(cfg: ExperimentConfig) -> Iterator[tuple[str, str, str, str, dict]]:
    """(panel, aggregator, attack, value, config changes) of every run of one seed."""
    rcfg = cfg.robustness
    for agg in rcfg.aggregators:
        changes = dict(agg.get("set", {}))
        for frac in rcfg.fractions:
            if frac == 0:
                yield ATTACK, agg["label"], CLEAN, "0", {**changes, "federated.attack.kind": "none", "federated.attack.fraction": 0.0}
                continue
            for attack in rcfg.attacks:
                yield ATTACK, agg["label"], attack, f"{frac:g}", {**changes, "federated.attack.kind": attack,
                                                                  "federated.attack.fraction": frac}
    for eps in rcfg.epsilons:
        base = dict(rcfg.privacy_set)
        if eps is None:
            base["federated.privacy.mode"] = "none"
        else:
            base.update({"federated.privacy.target_epsilon": eps, "federated.privacy.noise_multiplier": None})
        yield PRIVACY, rcfg.privacy_label, CLEAN, eps_label(eps), base


def point_config(cfg: ExperimentConfig, seed: int, panel: str, agg: str, attack: str, value: str, changes: dict) -> ExperimentConfig:
    return derive(cfg, {**changes, "seed": seed, "seeds": None, "name": f"{cfg.name}-{slug(agg)}-{attack}-{value}"},
                  source=f"robustness point {panel} / {agg} / {attack} / {value}")


def point_row(results: dict, panel: str, agg: str, attack: str, value: str) -> dict:
    """A finished run's row: final global macro-F1 and accuracy, what privacy it spent, its cost."""
    final = results.get("final", {})
    privacy = results.get("privacy") or {}
    rounds = results.get("rounds") or []
    return {"panel": panel, "aggregator": agg, "attack": attack, "value": value,
            "macro_f1": final.get("macro_f1"), "accuracy": final.get("accuracy"),
            "epsilon": privacy.get("epsilon"), "noise_multiplier": privacy.get("noise_multiplier"),
            "rounds_run": len(rounds), "stopped_by_budget": bool(privacy.get("stopped_by_budget", False)),
            "attackers_per_round": [r.get("attackers", []) for r in rounds],
            "seconds": results.get("seconds"), "bytes": (results.get("communication") or {}).get("total_bytes")}


def run_robustness(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every point for every seed (finished ones kept on resume), then the aggregate and report."""
    seeds = list(cfg.seeds or [cfg.seed])
    plan = list(points(cfg))
    results = folder.results
    results.update(kind="robustness", seeds=seeds)
    rows: list[dict] = results.setdefault("rows", [])
    total, n = len(plan) * len(seeds), 0
    for seed in seeds:
        for panel, agg, attack, value, changes in plan:
            n += 1
            key = (str(seed), panel, agg, attack, value)
            if folder.done(*key):
                continue
            pcfg = point_config(cfg, seed, panel, agg, attack, value, changes)
            log.info("[%d/%d] seed %d: %s / %s / %s = %s", n, total, seed, panel, agg, attack, value)
            res, where = run_point(pcfg, folder, seed, f"{panel}-{agg}-{attack}-{value}")
            rows.append({"seed": seed, **point_row(res, panel, agg, attack, value), "folder": where})
            folder.record(*key)
            write_outputs(cfg, folder, rows)
    write_outputs(cfg, folder, rows)
    return folder.complete()


def write_outputs(cfg: ExperimentConfig, folder: RunFolder, rows: list[dict]) -> None:
    per_seed: dict[int, list[dict]] = {}
    for r in rows:
        per_seed.setdefault(int(r["seed"]), []).append({k: v for k, v in r.items() if k not in ("seed", "attackers_per_round", "folder")})
    agg = aggregate(per_seed, TABLE, cfg.stats)
    folder.results["aggregate"] = agg
    folder.save()
    folder.write_metrics([{k: v for k, v in r.items() if k != "attackers_per_round"} for r in rows])
    cells = {(c["panel"], c["aggregator"], c["attack"], c["value"]): c["metrics"] for c in agg["cells"]}
    folder.write_report(report(cfg, cells, agg, len(per_seed)))
    draw(cfg, folder, cells)


def attack_series(cfg: ExperimentConfig, cells: dict, attack: str) -> dict[str, list[tuple[str, float, float]]]:
    """Per aggregation rule, (fraction, mean, std) with the clean run as fraction 0."""
    out: dict[str, list] = {}
    for agg in cfg.robustness.aggregators:
        pts = []
        for frac in cfg.robustness.fractions:
            key = (ATTACK, agg["label"], CLEAN, "0") if frac == 0 else (ATTACK, agg["label"], attack, f"{frac:g}")
            if (v := _ms(cells.get(key))) is not None:
                pts.append((f"{frac:.0%}", *v))
        if pts:
            out[agg["label"]] = pts
    return out


def privacy_series(cfg: ExperimentConfig, cells: dict) -> dict[str, list[tuple[str, float, float]]]:
    label = cfg.robustness.privacy_label
    pts = [(f"eps {eps_label(e)}", *v) for e in cfg.robustness.epsilons
           if (v := _ms(cells.get((PRIVACY, label, CLEAN, eps_label(e))))) is not None]
    return {label: pts} if pts else {}


def draw(cfg: ExperimentConfig, folder: RunFolder, cells: dict) -> None:
    from fedhar.reporting.plots import errorbars_png

    for attack in cfg.robustness.attacks:
        if series := attack_series(cfg, cells, attack):
            folder.plot(f"attack_{attack}.png", errorbars_png, series, "global macro-F1",
                        f"{cfg.name}: {attack} attackers")
    if series := privacy_series(cfg, cells):
        folder.plot("privacy.png", errorbars_png, series, "global macro-F1", f"{cfg.name}: macro-F1 against epsilon")


def kept(v: tuple[float, float] | None, clean: tuple[float, float] | None) -> str:
    return "" if v is None or clean is None or clean[0] <= 0 else f" ({v[0] / clean[0]:.0%})"


def report(cfg: ExperimentConfig, cells: dict, agg: dict, n_seeds: int) -> str:
    rcfg = cfg.robustness
    fracs = [f for f in rcfg.fractions if f > 0]
    lines = [f"# {cfg.name}: robustness and privacy", "",
             f"Final global macro-F1, mean ± std over {n_seeds} seed(s); in parentheses, the share of the same "
             "rule's clean F1 it keeps.", ""]
    for attack in rcfg.attacks:
        lines += [f"## {attack}", "", "| aggregator | clean | " + " | ".join(f"{f:.0%}" for f in fracs) + " |",
                  "|---|---|" + "---|" * len(fracs)]
        for a in rcfg.aggregators:
            clean = _ms(cells.get((ATTACK, a["label"], CLEAN, "0")))
            vals = [_ms(cells.get((ATTACK, a["label"], attack, f"{f:g}"))) for f in fracs]
            lines.append(f"| {a['label']} | {_fmt(clean)} | " + " | ".join(_fmt(v) + kept(v, clean) for v in vals) + " |")
        lines.append("")
    if rcfg.epsilons:
        label = rcfg.privacy_label
        base = _ms(cells.get((PRIVACY, label, CLEAN, "inf")))
        lines += ["## Privacy", "", "| epsilon (target) | macro-F1 | epsilon spent | noise multiplier |", "|---|---|---|---|"]
        for e in rcfg.epsilons:
            c = cells.get((PRIVACY, label, CLEAN, eps_label(e)))
            v = _ms(c)
            spent, noise = _ms(c, "epsilon"), _ms(c, "noise_multiplier")
            lines.append(f"| {eps_label(e)} | {_fmt(v)}{kept(v, base) if e is not None else ''} | "
                         f"{'–' if spent is None else f'{spent[0]:.2f}'} | {'–' if noise is None else f'{noise[0]:.3f}'} |")
        lines.append("")
    verdicts = [v for v in agg.get("verdicts", []) if v.get("panel") == ATTACK and v.get("attack") != CLEAN]
    if verdicts:
        lines += ["## Which rule is best (paired over seeds)", ""]
        lines += [f"- {v['attack']} at {float(v['value']):.0%}: {describe_verdict(v)}" for v in verdicts]
    return "\n".join(lines) + "\n"
