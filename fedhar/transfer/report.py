"""Tables, plots and result files of the cross-dataset and personalisation studies."""

from __future__ import annotations

from typing import Callable

import numpy as np

from fedhar.reporting import RunFolder, budget_curves_png, gain_distribution_png

NA = "n/a"
"""How a cell with no value is shown (a zero-shot score with no shared classes: macro-F1 ``None``)."""


def _series(row: dict) -> str:
    return row["variant"] if row["mode"] == "none" else f"{row['variant']} ({row['mode']})"


def lodo_table(rows: list[dict]) -> dict:
    """``table[held_out][budget][variant (mode)] = {macro_f1, accuracy}``; zero-shot rows apply to
    every mode of their variant."""
    table: dict = {}
    for r in rows:
        table.setdefault(r["held_out"], {}).setdefault(r["budget"], {})[_series(r)] = {
            "macro_f1": r["macro_f1"], "accuracy": r["accuracy"]}
    return table


def left_out_lines(repeated: dict[str, str]) -> list[str]:
    """Baselines not run because they build the configured model (or an earlier baseline) again."""
    return ([""] + [f"- Baseline *{label}* left out: it builds the same model as *{twin}*." for label, twin in repeated.items()]
            if repeated else [])


def lodo_markdown(results: dict) -> str:
    rows = results.get("rows", [])
    lines = [f"# Leave-one-dataset-out: {results.get('name', '')}", ""]
    for name, info in results.get("datasets", {}).items():
        lines.append(f"- **{name}**: {info['train']} train / {info['test']} test windows; sensors "
                     f"{'+'.join(info['sensors'])}; classes {', '.join(info['classes'])}")
    lines += left_out_lines(results.get("variants_left_out") or {})
    if results.get("protocol") == "mae":
        lines += ["", "Cells: macro-F1 / accuracy on the held-out dataset's test side, after fine-tuning on the labelled "
                  "share of its training windows (the same windows for every model). The MAE of each fold was pretrained "
                  "on the other datasets' unlabelled training windows:"]
        lines += [f"- held out {h}: {f['pretrain']['windows']} windows of {', '.join(f['sources'])}, "
                  f"{f['pretrain']['seconds']:.0f} s, masked-patch test MSE {f['pretrain']['test_loss']:.3f}"
                  for h, f in results.get("folds", {}).items() if "pretrain" in f]
        lines.append("")
    else:
        lines += ["", "Cells: macro-F1 / accuracy on the held-out dataset's test side. *zero-shot*: no target labels, "
              "scored on the classes shared with the training datasets. *head*: only the head adapts; *full*: head + "
              "LoRA + frontend (all weights of a from-scratch backbone). The random forest is refitted on the target "
              "budget alone (*target*) or with the source datasets (*source+target*). The highest per column is in bold: one "
                  "number of one seed, not a significant result (run with `seeds:` for that).", ""]
    for held in dict.fromkeys(r["held_out"] for r in rows):
        mine = [r for r in rows if r["held_out"] == held]
        budgets = list(dict.fromkeys(r["budget"] for r in mine))
        fold = results.get("folds", {}).get(held, {})
        lines.append(f"## Held out: {held}")
        if fold:
            how = (f"MAE pretrained on {', '.join(fold['sources'])}" if results.get("protocol") == "mae" else
                   f"Trained federated on {', '.join(fold['sources'])}; shared classes for zero-shot: "
                   f"{', '.join(fold['shared_classes']) or 'none (zero-shot is n/a)'}")
            lines.append(f"{how}. Labelled windows per budget: "
                         + ", ".join(f"{b} {n}" for b, n in fold["budget_windows"].items()) + ".")
        lines.append("")
        zcols = zero_budgets(mine)
        zero = {(r["variant"], r["budget"]): r for r in mine if r["mode"] == "none"}
        keys = series_keys(mine)
        cells = {(r["variant"], r["mode"], r["budget"]): r for r in mine}
        best = {b: max((r["macro_f1"] for r in mine if r["budget"] == b and r["macro_f1"] is not None), default=None)
                for b in budgets}
        cols = [b for b in budgets if b not in zcols]
        lines.append("| model | adapts | " + "".join(f"{z} | " for z in zcols) + " | ".join(cols) + " |")
        lines.append("|---|---|" + "---|" * (len(cols) + len(zcols)))

        def cell(r: dict | None, b: str) -> str:
            if r is None:
                return ""
            if r["macro_f1"] is None:
                return NA
            text = f"{r['macro_f1']:.3f} / {r['accuracy']:.3f}"
            return f"**{text}**" if best.get(b) is not None and np.isclose(r["macro_f1"], best[b]) else text

        for variant, mode in keys:
            lines.append(f"| {variant} | {mode} | " + "".join(f"{cell(zero.get((variant, z)), z)} | " for z in zcols)
                         + " | ".join(cell(cells.get((variant, mode, b)), b) for b in cols) + " |")
        unseen = [r for r in mine if r.get("unseen_recall") is not None]
        if unseen:
            lines += ["", f"Unseen classes ({', '.join(unseen[0]['unseen_classes'])}), zero-shot by name: share of their "
                      f"windows recognised (chance {unseen[0]['chance']:.3f}): "
                      + "; ".join(f"{r['variant']} {r['unseen_recall']:.3f}" for r in unseen) + "."]
        lines.append("")
        lines.append("Highest per budget (one seed, no test): " + "; ".join(f"{b}: {_best_series(mine, b)}" for b in budgets) + ".")
        lines.append("")
    helds = list(dict.fromkeys(r["held_out"] for r in rows))
    if len(helds) > 1:
        lines += _mean_table(rows, helds)
    fed = [r for r in rows if r["budget"] == "zero-shot" and "federated_seconds" in r]
    cost = [r for r in rows if r["budget"] == "zero-shot" and r.get("trainable_params") is not None]
    if cost:
        lines += ["## Cost per model", "", "| held out | model | trainable parameters | tokens per window | seconds (federated) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['held_out']} | {r['variant']} | {r['trainable_params']:,} | "
                  f"{'' if r.get('tokens_per_window') is None else format(r['tokens_per_window'], '.1f')} | "
                  f"{r.get('federated_seconds', r.get('seconds', 0)):.0f} |" for r in cost]
        lines.append("")
    if fed:
        lines += ["## Federated training", "", "| held out | model | in-domain macro-F1 | seconds | update bytes |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['held_out']} | {r['variant']} | {r['in_domain_f1']:.3f} | {r['federated_seconds']:.0f} | "
                  f"{r['update_bytes']:,} |" for r in fed]
        lines.append("")
    if "seconds" in results:
        lines.append(f"Total time: {results['seconds'] / 60:.1f} min.")
    return "\n".join(lines) + "\n"


def zero_budgets(rows: list[dict]) -> list[str]:
    """Budgets whose rows involve no target labels (mode ``none``): zero-shot, and zero-shot over
    all classes where the held-out dataset has classes no training dataset has."""
    return list(dict.fromkeys(r["budget"] for r in rows if r["mode"] == "none"))


def series_keys(rows: list[dict]) -> list[tuple[str, str]]:
    """``(variant, mode)`` of every table row: adapted modes, and ``none`` for a variant that has
    only zero-shot rows (readings as text)."""
    adapted = list(dict.fromkeys((r["variant"], r["mode"]) for r in rows if r["mode"] != "none"))
    have = {v for v, _ in adapted}
    return adapted + list(dict.fromkeys((r["variant"], "none") for r in rows if r["variant"] not in have))


def _best_series(rows: list[dict], budget: str) -> str:
    """The series with the best macro-F1 at ``budget``; n/a when no row there has a score."""
    scored = [r for r in rows if r["budget"] == budget and r["macro_f1"] is not None]
    return _series(max(scored, key=lambda r: r["macro_f1"])) if scored else NA


def _mean_table(rows: list[dict], helds: list[str]) -> list[str]:
    """Macro-F1 averaged over the held-out datasets (only where every one has the cell; n/a where
    one of them has no score, e.g. zero-shot without shared classes)."""
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    zcols = zero_budgets(rows)
    keys = series_keys(rows)
    f1 = {(r["held_out"], r["variant"], r["mode"], r["budget"]): r["macro_f1"] for r in rows}
    zero = {(r["held_out"], r["variant"], r["budget"]): r["macro_f1"] for r in rows if r["mode"] == "none"}

    missing = object()  # a cell a held-out dataset lacks (None: it has the cell, with no score)

    def mean(vals: list) -> float | str | None:
        if not vals or any(v is missing for v in vals):
            return None
        return NA if any(v is None for v in vals) else float(np.mean(vals))

    cols = zcols + [b for b in budgets if b not in zcols]
    table = {(variant, mode): [mean([(zero if b in zcols else f1).get((h, variant, b) if b in zcols else (h, variant, mode, b),
                                                                     missing) for h in helds]) for b in cols]
             for variant, mode in keys}
    best = [max((v[i] for v in table.values() if isinstance(v[i], float)), default=None) for i in range(len(cols))]
    lines = [f"## Mean macro-F1 over the held-out datasets ({', '.join(helds)})", "",
             "| model | adapts | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for (variant, mode), vals in table.items():
        cells = ["" if v is None else NA if v == NA else (f"**{v:.3f}**" if np.isclose(v, best[i]) else f"{v:.3f}")
                 for i, v in enumerate(vals)]
        lines.append(f"| {variant} | {mode} | " + " | ".join(cells) + " |")
    return lines + [""] + _verdict_lines(rows, helds)


def _verdict_lines(rows: list[dict], helds: list[str]) -> list[str]:
    """Paired verdicts per budget over the held-out datasets of this seed (each a pair)."""
    from fedhar.reporting.seeds import SeedTable, verdicts
    from fedhar.reporting.stats import StatsConfig, describe_verdict

    table = SeedTable(keys=("held_out", "variant", "mode", "budget"), variant=("variant", "mode"), groups=("budget",),
                      units=("held_out",))
    found = verdicts([{**r, "seed": 0} for r in rows], table, StatsConfig())
    return [f"Paired t-test over the {len(helds)} held-out datasets, leader against runner-up at α = 0.05 (with so few "
            "pairs a tie is the usual verdict; seeds add pairs):", ""] + [
        f"- {v['budget']}: {describe_verdict(v)}" for v in found] + [""]


def write_lodo_outputs(folder: RunFolder) -> None:
    """results.json (with the table), metrics.csv, report.md and f1_vs_budget.png."""
    results = folder.results
    rows = results.get("rows", [])
    results["table"] = lodo_table(rows)
    write_study_files(folder, lodo_markdown)
    panels: dict = {}
    for held in dict.fromkeys(r["held_out"] for r in rows):
        mine = [r for r in rows if r["held_out"] == held]
        zero = {r["variant"]: r["macro_f1"] for r in mine if r["budget"] == "zero-shot" and r["macro_f1"] is not None}
        series: dict = {}
        for r in sorted(mine, key=lambda r: r["labelled_windows"]):  # x in order of labelled windows
            if r["mode"] == "none" or r["macro_f1"] is None:  # no score (n/a): no point
                continue
            pts = series.setdefault((r["variant"], r["mode"]), [("zero-shot", zero[r["variant"]])] if r["variant"] in zero else [])
            pts.append((f"{r['budget']} ({r['labelled_windows']})", r["macro_f1"]))
        panels[held] = series
    if panels:
        folder.plot("f1_vs_budget.png", lambda path: budget_curves_png(
            path, panels, "macro-F1 against label budget on the held-out dataset"))


def write_study_files(folder: RunFolder, markdown: Callable[[dict], str]) -> None:
    """results.json, metrics.csv (one line per row) and report.md (``markdown(results)``) of a study."""
    folder.save()
    folder.write_metrics(folder.results.get("rows", []))
    folder.write_report(markdown(folder.results))


def personalization_markdown(results: dict) -> str:
    lines = [f"# Personalisation: {results.get('name', '')}", "",
             "Each client fine-tunes the federated global model on its own training split and is tested on the rest "
             "of its data. Gain = personalised minus global macro-F1 on that client's test windows. *fedper* keeps "
             "the head on the client during federated training instead.", "",
             "| strategy | clients | improved | unchanged / worse | mean global F1 | mean personalised F1 | mean gain | median gain | "
             "mean seconds | params changed | bytes stored |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in results.get("summary", {}).items():
        secs = "" if s["mean_seconds"] is None else f"{s['mean_seconds']:.1f}"
        lines.append(f"| {name} | {s['clients']} | {s['improved']} ({100 * s['improved_share']:.0f}%) | {s['unchanged']} / {s['worse']} | "
                     f"{s['mean_global_f1']:.3f} | {s['mean_personal_f1']:.3f} | {s['mean_gain']:+.3f} | "
                     f"{s['median_gain']:+.3f} | {secs} | {s['params_changed']:,} | {s['bytes_changed']:,} |")
    rows = results.get("rows", [])
    strategies = list(results.get("summary", {}))
    if rows:
        lines += ["", "## Per client", "", "| client | windows (personal / test) | global F1 | "
                  + " | ".join(f"{s} F1 (gain)" for s in strategies) + " |", "|---|---|---|" + "---|" * len(strategies)]
        for pid in dict.fromkeys(r["client"] for r in rows):
            mine = {r["strategy"]: r for r in rows if r["client"] == pid}
            first = next(iter(mine.values()))
            lines.append(f"| {pid} | {first['personal_windows']} / {first['test_windows']} | {first['global_f1']:.3f} | "
                         + " | ".join(f"{mine[s]['personal_f1']:.3f} ({mine[s]['gain']:+.3f})" if s in mine else ""
                                      for s in strategies) + " |")
    if "seconds" in results:
        lines += ["", f"Total time: {results['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def summarise_personalization(rows: list[dict]) -> dict:
    out = {}
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == strategy]
        gains = np.array([r["gain"] for r in mine])
        secs = [r["seconds"] for r in mine if r.get("seconds") is not None]
        out[strategy] = {
            "clients": len(mine), "improved": int((gains > 0).sum()), "improved_share": float((gains > 0).mean()),
            "unchanged": int((gains == 0).sum()), "worse": int((gains < 0).sum()),
            "mean_global_f1": float(np.mean([r["global_f1"] for r in mine])),
            "mean_personal_f1": float(np.mean([r["personal_f1"] for r in mine])),
            "mean_gain": float(gains.mean()), "median_gain": float(np.median(gains)),
            "mean_seconds": float(np.mean(secs)) if secs else None,
            "params_changed": int(mine[0]["params_changed"]), "bytes_changed": int(mine[0]["bytes_changed"]),
        }
    return out


def write_personalization_outputs(folder: RunFolder) -> None:
    rows = folder.results.get("rows", [])
    summary = folder.results["summary"] = summarise_personalization(rows)
    write_study_files(folder, personalization_markdown)
    if rows:
        gains = {s: [r["gain"] for r in rows if r["strategy"] == s] for s in summary}
        folder.plot("gains.png", lambda path: gain_distribution_png(path, gains))
