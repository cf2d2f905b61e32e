"""Which language coupling, if any, makes a pretrained LLM pay on sensor windows (issue 18).

Two leave-one-dataset-out runs, both ordinary ``cross_dataset`` studies in sub-folders, so each
resumes, keeps what finished and writes its own report:

1. **screen/**: every coupling of ``couplings.couplings`` on the pretrained LLM, beside the plain
   configured model, with one seed on one held-out dataset;
2. **confirm/**: the best ``couplings.keep`` couplings (mean macro-F1 over ``select_budgets`` in
   ``select_mode``), each beside its random-init twin (the same coupling, random weights), the
   baselines (with the best coupling's augmentation) and the random forest, over every held-out
   dataset and every seed of ``seeds``, plus readings-as-text zero-shot when enabled.

The top folder's report answers the issue's three questions with paired tests over (seed,
held-out dataset) pairs: does pretraining beat random-init with the same coupling; does any LLM
row beat the best non-LLM row at k = 5; and how far above chance is zero-shot on classes never
trained. The answer may be no; it is reported the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fedhar.config import ExperimentConfig, config_to_dict, derive
from fedhar.exceptions import ConfigError
from fedhar.reporting import RunFolder
from fedhar.reporting.stats import fmt, paired_test, summarize
from fedhar.transfer.budget import parse_budget
from fedhar.transfer.lodo import CLASSICAL, TEXT_ZERO_SHOT, ZERO_SHOT, ZERO_SHOT_ALL

log = logging.getLogger(__name__)

TWIN = "{label}, random-init"
PLAIN = "pretrained LLM, no coupling"


def dotted_get(tree: dict, key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"`couplings`: `{key}` is not a config key.")
        node = node[part]
    return node


def changes_of(entry: dict) -> dict:
    """One coupling or baseline entry as dotted config changes."""
    out = {f"model.backbone.{k}": v for k, v in (entry.get("backbone") or {}).items()}
    return {**out, **dict(entry.get("set") or {})}


def screen_config(cfg: ExperimentConfig) -> ExperimentConfig:
    ccfg = cfg.couplings
    held = ccfg.screen_held_out or cfg.lodo.held_out_names()[0]
    variants = [{"label": c["label"], "set": changes_of(c)} for c in ccfg.couplings]
    if ccfg.screen_baselines:
        variants += [{"label": b["label"], "set": changes_of(b)} for b in ccfg.baselines]
    return derive(cfg, {"name": f"{cfg.name}-screen", "seed": ccfg.screen_seed, "seeds": None, "lodo.held_out": [held],
                        "lodo.main_label": PLAIN, "lodo.variants": variants, "lodo.text_zero_shot.enabled": False},
                  source="couplings screening")


def screen_scores(rows: list[dict], cfg: ExperimentConfig) -> dict[str, float]:
    """Mean macro-F1 of each coupling over the selection budgets (``select_mode``), best first."""
    ccfg = cfg.couplings
    budgets = {parse_budget(b).label for b in ccfg.select_budgets}
    labels = [c["label"] for c in ccfg.couplings]
    scores = {}
    for label in labels:
        vals = [r["macro_f1"] for r in rows if r["variant"] == label and r["mode"] == ccfg.select_mode
                and r["budget"] in budgets and r["macro_f1"] is not None]
        if vals:
            scores[label] = float(np.mean(vals))
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))


def confirm_config(cfg: ExperimentConfig, kept: list[str]) -> ExperimentConfig:
    """The main model is the best coupling; every other row first undoes its changes (so each
    coupling is measured alone), except the baselines keep its augmentation."""
    ccfg = cfg.couplings
    entries = {c["label"]: changes_of(c) for c in ccfg.couplings}
    tree = config_to_dict(cfg)
    main = entries[kept[0]]
    undo = {k: dotted_get(tree, k) for k in main}
    undo_model = {k: v for k, v in undo.items() if not k.startswith("train.augment")}
    variants = [{"label": TWIN.format(label=kept[0]), "set": {"model.backbone.pretrained": False}}]
    for label in kept[1:]:
        own = entries[label]
        variants += [{"label": label, "set": {**undo, **own}},
                     {"label": TWIN.format(label=label), "set": {**undo, **own, "model.backbone.pretrained": False}}]
    if ccfg.confirm_plain:
        variants.append({"label": PLAIN, "set": undo})
    variants += [{"label": b["label"], "set": {**undo_model, **changes_of(b)}} for b in ccfg.baselines]
    return derive(cfg, {"name": f"{cfg.name}-confirm", **main, "lodo.main_label": kept[0], "lodo.variants": variants},
                  source="couplings confirmation")


def run_couplings(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    from fedhar.studies import run_study

    if not cfg.couplings.couplings:
        raise ConfigError("`couplings.couplings` is empty; list the couplings to screen, e.g. "
                          "{label: label-name head, set: {model.head.kind: text}}.")
    screen_dir = folder.path / "screen"
    screen = run_study("cross_dataset", screen_config(cfg), out=str(screen_dir),
                       resume=(screen_dir / RunFolder.CONFIG).exists())
    scores = screen_scores(screen["rows"], cfg)
    if not scores:
        raise ConfigError("the screening produced no scores for the couplings; check `couplings.select_budgets` and "
                          "`couplings.select_mode` against `lodo.budgets` and `lodo.modes`.")
    kept = list(scores)[: cfg.couplings.keep]
    folder.results.update(kind="llm_couplings", screening={"held_out": screen_config(cfg).lodo.held_out,
                                                            "seed": cfg.couplings.screen_seed, "scores": scores,
                                                            "folder": "screen"}, kept=kept)
    folder.save()
    log.info("screening: %s; kept %s", ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), ", ".join(kept))
    confirm_dir = folder.path / "confirm"
    ccfg = confirm_config(cfg, kept)
    confirm = run_study("cross_dataset", ccfg, out=str(confirm_dir), resume=(confirm_dir / RunFolder.CONFIG).exists())
    per_seed = confirm_rows(confirm_dir, confirm)
    folder.results["verdicts"] = answers(per_seed, kept, cfg)
    folder.results["table"] = mean_table(per_seed)
    folder.results["cost"] = cost_table(per_seed)
    folder.write_metrics([{"variant": v, "mode": m, "budget": b, **s} for (v, m, b), s in folder.results["table"].items()])
    folder.results["table"] = {f"{v} | {m} | {b}": s for (v, m, b), s in folder.results["table"].items()}
    folder.write_report(report(folder.results, screen["rows"], cfg))
    return folder.complete()


def confirm_rows(path: Path, results: dict) -> dict[int, list[dict]]:
    """``{seed: rows}`` of the confirmation (one run, or one per seed)."""
    if results.get("multi_seed"):
        return {int(s): json.loads((path / info["folder"] / RunFolder.RESULTS).read_text())["rows"]
                for s, info in results["seed_runs"].items()}
    return {int(results.get("seed", 0)): results["rows"]}


def _by_pair(per_seed: dict[int, list[dict]], variant: str, mode: str, budgets: set[str],
             field: str = "macro_f1") -> dict[tuple, float]:
    """``{(seed, held_out): mean of field over budgets}`` for one series."""
    acc: dict[tuple, list[float]] = {}
    for seed, rows in per_seed.items():
        for r in rows:
            if r["variant"] == variant and r["mode"] == mode and r["budget"] in budgets and r.get(field) is not None:
                acc.setdefault((seed, r["held_out"]), []).append(float(r[field]))
    return {k: float(np.mean(v)) for k, v in acc.items() if len(v) == len(budgets)}


def _compare(a: dict, b: dict) -> dict:
    common = sorted(set(a) & set(b))
    res = paired_test([a[k] for k in common], [b[k] for k in common])
    return {**res, "a": summarize([a[k] for k in common]), "b": summarize([b[k] for k in common])}


def series(per_seed: dict[int, list[dict]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r["variant"], r["mode"]) for rows in per_seed.values() for r in rows
                              if r["mode"] != "none"))


def answers(per_seed: dict[int, list[dict]], kept: list[str], cfg: ExperimentConfig) -> dict:
    """The three verdicts, each with its numbers and p-value (paired over (seed, held-out))."""
    mode = cfg.couplings.select_mode
    budgets = [parse_budget(b).label for b in cfg.lodo.budgets]
    few = {parse_budget(b).label for b in cfg.lodo.budgets if (parse_budget(b).k_per_class or 11) <= 10}
    k5 = {parse_budget("k5").label}
    out: dict = {"pretrained_vs_random": {}, "pairs": "(seed, held-out dataset)"}
    for label in kept:
        twin = TWIN.format(label=label)
        per_budget = {b: _compare(_by_pair(per_seed, label, mode, {b}), _by_pair(per_seed, twin, mode, {b}))
                      for b in budgets}
        out["pretrained_vs_random"][label] = {**per_budget, "k<=10": _compare(
            _by_pair(per_seed, label, mode, few), _by_pair(per_seed, twin, mode, few))}
    llm = set(kept) | {PLAIN} | {TWIN.format(label=k) for k in kept}
    candidates = series(per_seed)
    pretrained_rows = [(v, m) for v, m in candidates if v in set(kept) | {PLAIN}]
    others = [(v, m) for v, m in candidates if v not in llm]

    def best(rows: list[tuple[str, str]]) -> tuple[tuple[str, str] | None, dict]:
        scored = {s: _by_pair(per_seed, s[0], s[1], k5) for s in rows}
        scored = {s: v for s, v in scored.items() if v}
        if not scored:
            return None, {}
        top = max(scored, key=lambda s: np.mean(list(scored[s].values())))
        return top, scored[top]

    (llm_best, a), (other_best, b) = best(pretrained_rows), best(others)
    if llm_best and other_best:
        out["llm_vs_best_baseline_k5"] = {"llm": " ".join(llm_best), "baseline": " ".join(other_best), **_compare(a, b)}
    unseen = {}
    for seed, rows in per_seed.items():
        for r in rows:
            if r["budget"] == ZERO_SHOT_ALL and r.get("unseen_recall") is not None:
                unseen.setdefault(r["variant"], {})[(seed, r["held_out"])] = (r["unseen_recall"], r["chance"])
    out["unseen_zero_shot"] = {v: {"recall": summarize([x for x, _ in d.values()]),
                                   "chance": summarize([c for _, c in d.values()]),
                                   **paired_test([x for x, _ in d.values()], [c for _, c in d.values()])}
                               for v, d in unseen.items()}
    return out


def mean_table(per_seed: dict[int, list[dict]]) -> dict[tuple[str, str, str], dict]:
    """Macro-F1 averaged over held-out datasets per seed, then mean ± std over seeds."""
    acc: dict[tuple, dict[int, list[float]]] = {}
    for seed, rows in per_seed.items():
        for r in rows:
            if r["macro_f1"] is not None:
                acc.setdefault((r["variant"], r["mode"], r["budget"]), {}).setdefault(seed, []).append(r["macro_f1"])
    return {k: summarize([np.mean(v) for v in d.values()]) for k, d in acc.items()}


def cost_table(per_seed: dict[int, list[dict]]) -> dict[str, dict]:
    """Trainable parameters, tokens per window and seconds (federated training, or scoring) per variant."""
    out: dict[str, dict] = {}
    for rows in per_seed.values():
        for r in rows:
            if r["budget"] == ZERO_SHOT and r.get("trainable_params") is not None:
                c = out.setdefault(r["variant"], {"trainable_params": r["trainable_params"],
                                                  "tokens_per_window": r.get("tokens_per_window"), "seconds": []})
                c["seconds"].append(r.get("federated_seconds", r.get("seconds", 0.0)))
    return {v: {**c, "seconds": float(np.mean(c["seconds"]))} for v, c in out.items()}


def _p(v: dict) -> str:
    return "n/a" if v.get("p") is None else f"{v['p']:.3g}"


def _d(v: dict) -> str:
    return "n/a" if v.get("mean_diff") is None else f"{v['mean_diff']:+.3f}"


def _yes(v: dict, alpha: float) -> str:
    return "yes" if v.get("p") is not None and v["p"] < alpha and v["mean_diff"] > 0 else "no"


def report(results: dict, screen_rows: list[dict], cfg: ExperimentConfig) -> str:
    s = results["screening"]
    lines = [f"# LLM couplings: {cfg.name}", "",
             f"## Screening (seed {s['seed']}, held out {', '.join(s['held_out'])}; `screen/`)", "",
             f"Mean macro-F1 over {', '.join(map(str, cfg.couplings.select_budgets))} ({cfg.couplings.select_mode} "
             "adaptation); the best kept:", "", "| coupling | score | kept |", "|---|---|---|"]
    lines += [f"| {k} | {v:.3f} | {'yes' if k in results['kept'] else ''} |" for k, v in s["scores"].items()]
    plain = [r["macro_f1"] for r in screen_rows if r["variant"] == PLAIN and r["mode"] == cfg.couplings.select_mode
             and r["budget"] in {parse_budget(b).label for b in cfg.couplings.select_budgets}]
    if plain:
        lines += ["", f"The plain pretrained LLM (no coupling) scored {np.mean(plain):.3f} on the same cells."]
    table = results["table"]
    budgets = list(dict.fromkeys(k.split(" | ")[2] for k in table))
    rows = list(dict.fromkeys(" | ".join(k.split(" | ")[:2]) for k in table))
    lines += ["", "## Confirmation (`confirm/`): macro-F1 averaged over held-out datasets, mean ± std over seeds", "",
              "| model | adapts | " + " | ".join(budgets) + " |", "|---|---|" + "---|" * len(budgets)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(fmt(table.get(f"{row} | {b}")) if f"{row} | {b}" in table else ""
                                                for b in budgets) + " |")
    v = results["verdicts"]
    lines += ["", "## Verdicts (paired t-tests over (seed, held-out dataset) pairs)", ""]
    for label, cmp in v["pretrained_vs_random"].items():
        k = cmp["k<=10"]
        lines.append(f"- **Does pretraining beat random-init with {label}?** {_yes(k, cfg.stats.alpha)}: k ≤ 10 mean "
                     f"{fmt(k['a'])} vs {fmt(k['b'])}, difference {_d(k)} (p = {_p(k)}, n = {k['n']}); per budget: "
                     + "; ".join(f"{b} {_d(c)} (p = {_p(c)})" for b, c in cmp.items() if b != "k<=10") + ".")
    if "llm_vs_best_baseline_k5" in v:
        c = v["llm_vs_best_baseline_k5"]
        lines.append(f"- **Does an LLM row beat the best non-LLM row at k = 5?** {_yes(c, cfg.stats.alpha)}: best LLM "
                     f"row {c['llm']} {fmt(c['a'])} vs {c['baseline']} {fmt(c['b'])}, difference {_d(c)} "
                     f"(p = {_p(c)}, n = {c['n']}).")
    for variant, u in v["unseen_zero_shot"].items():
        lines.append(f"- Zero-shot on classes never trained, {variant}: recall {fmt(u['recall'])} against chance "
                     f"{fmt(u['chance'])} (p = {_p(u)}, n = {u['n']}).")
    cost = results["cost"]
    if cost:
        lines += ["", "## Cost", "", "| model | trainable parameters | tokens per window | seconds (federated training or "
                  "scoring, mean per fold) |", "|---|---|---|---|"]
        lines += [f"| {k} | {c['trainable_params']:,} | "
                  f"{'' if c['tokens_per_window'] is None else format(c['tokens_per_window'], '.1f')} | {c['seconds']:.0f} |"
                  for k, c in cost.items()]
    lines += ["", f"Random forest: `{CLASSICAL}` rows; readings as text: `{TEXT_ZERO_SHOT}` rows (zero-shot only). Each "
              "sub-folder's report.md has the per-dataset tables."]
    return "\n".join(lines) + "\n"
