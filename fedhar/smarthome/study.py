"""The smart-home study: per home, zero-shot vs classical vs LoRA teacher vs student vs distilled
student; or the homes as Flower clients against each home's own model.

Every model of a home sees the same chronological split (its last days are test days) and is
scored the same way: macro-F1 over the activities that occur in the home's test days.
Each finished home is a cell of the run folder, saved as it completes, so ``--resume`` keeps it.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from fedhar.config import ExperimentConfig, derive
from fedhar.data.sources import load_splits
from fedhar.data.loaders.smarthome import COUNTS_KEY
from fedhar.distill import TeacherLogitCache
from fedhar.distill.compare import compare, cost_table, score, with_backbone
from fedhar.reporting import RunFolder, grouped_bars_png
from fedhar.training.loop import apply_label_mask, label_mask_of

log = logging.getLogger(__name__)

MODELS = ("zero-shot", "zero-shot calibrated", "zero-shot domain-calibrated", "classical", "teacher", "student", "distilled student")


def run_home(cfg: ExperimentConfig, home: str, cache: TeacherLogitCache) -> dict:
    """All models of one home, on the home's chronological split."""
    sh = cfg.smarthome
    data = derive(cfg, {"data.options.homes": [home]}, source=f"home {home}").data
    train, test = load_splits(data, cfg.seed)
    log.info("%s: %d train / %d test windows, %d classes, up to %d tokens", home, len(train), len(test),
             train.num_classes, train.X.shape[2])
    out: dict = {"home": home, "train_windows": len(train), "test_windows": len(test),
                 "train_days": int(len(np.unique(train.extras["day"]))), "test_days": int(len(np.unique(test.extras["day"]))),
                 "classes": [train.classes[c] for c in np.unique(test.y)], "tokens": int(train.X.shape[2]), "models": {}}
    models = out["models"]
    if sh.zero_shot:
        from fedhar.data.smarthome.tokenize import load_tokenizer
        from fedhar.smarthome.zero_shot import ROWS, investigate, load_causal_lm

        tok = load_tokenizer(data.options.get("tokenizer", "smollm2-135m"))
        lm = load_causal_lm(cfg.model.backbone.name, sh.zero_shot_layers, cfg.seed)
        out["zero_shot"], main = investigate(lm, tok, train, test, sh.zero_shot_prompts, sh.zero_shot_domain_windows,
                                             cfg.train.precision, cfg.seed)
        seconds = out["zero_shot"][-1]["seconds"]
        for name, cal in ROWS.items():
            scored = apply_label_mask(main[cal], label_mask_of(test))
            models[name] = {**score(test, scored.argmax(1)), "train_seconds": 0.0, "inference_seconds": seconds}
        del lm
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    rf = RandomForestClassifier(sh.classical_trees, random_state=cfg.seed, n_jobs=1, class_weight="balanced")
    rf.fit(train.extras[COUNTS_KEY], train.y)
    models["classical"] = {**score(test, rf.predict(test.extras[COUNTS_KEY])), "train_seconds": time.perf_counter() - t0}
    tcfg = with_backbone(cfg, sh.teacher_epochs, layers=sh.teacher_layers)
    scfg = with_backbone(cfg, sh.student_epochs, layers=sh.student_layers)
    trained, out["costs"] = compare(tcfg, scfg, sh.distill, train, test, cache, home)
    models.update(trained)
    out["teacher_logit_computations"] = cache.calls
    return out


def home_table(rows: list[dict], models: Sequence[str]) -> str:
    """Markdown: per home, macro-F1 / accuracy of each of ``models`` (the best in bold)."""
    lines = ["| home | train / test windows (days) | " + " | ".join(models) + " |",
             "|---|---|" + "---|" * len(models)]
    for r in rows:
        best = max((m["macro_f1"] for m in r["models"].values()), default=0)
        cells = []
        for name in models:
            m = r["models"].get(name)
            cell = "" if m is None else f"{m['macro_f1']:.3f} / {m['accuracy']:.3f}"
            cells.append(f"**{cell}**" if m is not None and m["macro_f1"] == best else cell)
        lines.append(f"| {r['home']} | {r['train_windows']} / {r['test_windows']} ({r['train_days']} / {r['test_days']}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _zero_shot_table(rows: list[dict]) -> str:
    """Per home: every prompt x normalisation x calibration of the zero-shot scorer."""
    lines = ["Every prompt, phrase normalisation (mean / sum / first token of the phrase's log-likelihood) and "
             "calibration (none; minus the score after the prompt alone; minus the mean score over 64 unlabelled "
             "training windows). `top` is the class predicted most often and its share of the test windows.", "",
             "| home | prompt | normalisation | calibration | macro-F1 | accuracy | classes predicted | top |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for z in r.get("zero_shot", []):
            lines.append(f"| {r['home']} | {z['prompt']} | {z['normalisation']} | {z['calibration']} | {z['macro_f1']:.3f} | "
                         f"{z['accuracy']:.3f} | {z['classes_predicted']} | {z['top_class']} ({z['top_share']:.0%}) |")
    return "\n".join(lines)


def _check_table(rows: list[dict]) -> str:
    """Per home: teacher and student on the validation days, and what the distillation did."""
    lines = ["Before distilling, teacher and directly trained student are compared on the last training days "
             "(held out for validation and early stopping); a distillation is skipped, or its KL weight lowered, "
             "where the teacher is not better.", "",
             "| home | teacher val macro-F1 (epochs) | student val macro-F1 (epochs) | distillation | why |", "|---|---|---|---|---|"]
    for r in rows:
        m = r["models"]
        c = m.get("distilled student", {}).get("check")
        if c is None:
            continue
        val = {role: "" if m[role].get("val_macro_f1") is None else
               f"{m[role]['val_macro_f1']:.3f} (best epoch {m[role].get('best_epoch')} of {m[role].get('epochs')})"
               for role in ("teacher", "student")}
        action = {"distil": f"KL weight {c['weight']:g}", "lower": f"lowered: KL weight {c['weight']:g}", "skip": "skipped"}[c["action"]]
        lines.append(f"| {r['home']} | {val['teacher']} | {val['student']} | {action} | {c['reason']} |")
    return "\n".join(lines)


def run_smarthome(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every model of every home (``smarthome.mode: central``); a resume keeps finished homes."""
    results = folder.results
    results.update(kind="smarthome")
    results.setdefault("homes", [])
    cache = TeacherLogitCache(folder.file("cache"))
    for home in cfg.smarthome.homes:
        if folder.done(home):
            log.info("%s: kept from the previous run", home)
            continue
        results["homes"].append(run_home(cfg, home, cache))
        folder.record(home)
    rows = results["homes"]
    cost = cost_table(rows, "home")
    folder.write_metrics([{"home": r["home"], "model": m, **v} for r in rows for m, v in r["models"].items()])
    folder.plot("macro_f1.png", grouped_bars_png, {r["home"]: {m: r["models"][m]["macro_f1"] for m in MODELS if m in r["models"]}
                                                   for r in rows}, "macro-F1", f"{cfg.name}: per home")
    ratio = ", ".join(f"{r['home']} {r['backbone_ratio']:.1f}x" for r in rows)
    report = [f"# {cfg.name}", "",
              "Macro-F1 / accuracy on each home's last days (chronological split), over the activities present there. "
              f"Teacher: {cfg.smarthome.teacher_layers or 'all'} blocks + LoRA; student: {cfg.smarthome.student_layers} blocks + LoRA; "
              f"distillation T={cfg.smarthome.distill.temperature}, KL weight {cfg.smarthome.distill.weight}.", "",
              home_table(rows, MODELS), "", "## Teacher check", "", _check_table(rows), "",
              *(["## Zero-shot, every variant", "", _zero_shot_table(rows), ""] if any(r.get("zero_shot") for r in rows) else []),
              "## Teacher and student cost", "", cost, "",
              f"Teacher / student backbone parameters: {ratio}.", "",
              f"The study took {folder.seconds / 60:.1f} min (over every session of a resumed run)."]
    folder.write_report("\n".join(report) + "\n")
    return folder.complete()
