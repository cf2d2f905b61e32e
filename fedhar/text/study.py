"""The smart-home study: per home, zero-shot vs classical vs LoRA teacher vs student vs distilled
student; or the homes as Flower clients against each home's own model.

Every model of a home sees the same chronological split (its last days are test days) and is
scored the same way: macro-F1 over the activities that occur in the home's test days.
Finished homes are saved as they complete (``homes/<home>.json``), so ``--resume`` keeps them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fedhar.config import ExperimentConfig, config_to_dict
from fedhar.data.build import load_splits
from fedhar.data.loaders.smarthome import COUNTS_KEY
from fedhar.distill import TeacherLogitCache
from fedhar.distill.compare import ROLES, compare, cost_table, score, with_backbone
from fedhar.reporting import prepare_run_dir, write_config, write_json, write_metrics_csv
from fedhar.training.loop import apply_label_mask, label_mask_of

log = logging.getLogger(__name__)

MODELS = ("zero-shot", "zero-shot calibrated", "classical", "teacher", "student", "distilled student")


def run_home(cfg: ExperimentConfig, home: str, home_dir: Path, cache: TeacherLogitCache, done: dict | None = None) -> dict:
    """All models of one home; with ``done`` (a finished home's saved results) only the models it
    lacks are computed, so a model added to the study later runs without retraining the rest."""
    sh = cfg.smarthome
    data = replace(cfg.data, options={**cfg.data.options, "homes": [home]})
    train, test = load_splits(data, cfg.seed)
    log.info("%s: %d train / %d test windows, %d classes, up to %d tokens", home, len(train), len(test),
             train.num_classes, train.X.shape[2])
    out: dict = {"home": home, "train_windows": len(train), "test_windows": len(test),
                 "train_days": int(len(np.unique(train.extras["day"]))), "test_days": int(len(np.unique(test.extras["day"]))),
                 "classes": [train.classes[c] for c in np.unique(test.y)], "tokens": int(train.X.shape[2]), "models": {}}
    if done:
        out = {**out, **{k: v for k, v in done.items() if k not in out or k == "models"}}
    models = out["models"]
    if sh.zero_shot and not {"zero-shot", "zero-shot calibrated"} <= set(models):
        from fedhar.text.tokenize import load_tokenizer
        from fedhar.text.zero_shot import ZeroShotScorer, load_causal_lm, texts_of

        tok = load_tokenizer(data.options.get("tokenizer", "smollm2-135m"))
        lm = load_causal_lm(cfg.model.backbone.name, sh.zero_shot_layers, cfg.seed)
        scorer = ZeroShotScorer(lm, tok, train.classes, precision=cfg.train.precision)
        raw = scorer.scores(texts_of(test.X, tok))
        prior = scorer.calibration()
        for name, s in (("zero-shot", raw), ("zero-shot calibrated", raw - prior)):
            scored = apply_label_mask(s, label_mask_of(test))
            models[name] = {**score(test, scored.argmax(1)), "train_seconds": 0.0, "inference_seconds": scorer.seconds}
        del lm
    if "classical" not in models:
        from sklearn.ensemble import RandomForestClassifier

        t0 = time.perf_counter()
        rf = RandomForestClassifier(sh.classical_trees, random_state=cfg.seed, n_jobs=1, class_weight="balanced")
        rf.fit(train.extras[COUNTS_KEY], train.y)
        models["classical"] = {**score(test, rf.predict(test.extras[COUNTS_KEY])), "train_seconds": time.perf_counter() - t0}
    if not set(ROLES) <= set(models):
        tcfg = with_backbone(cfg, sh.teacher_epochs, layers=sh.teacher_layers)
        scfg = with_backbone(cfg, sh.student_epochs, layers=sh.student_layers)
        trained, out["costs"] = compare(tcfg, scfg, sh.distill, train, test, cache, home)
        models.update(trained)
        out["teacher_logit_computations"] = cache.calls
    write_json(home_dir / f"{home}.json", out)
    return out


def _table(rows: list[dict]) -> str:
    lines = ["| home | train / test windows (days) | " + " | ".join(MODELS) + " |",
             "|---|---|" + "---|" * len(MODELS)]
    for r in rows:
        best = max((m["macro_f1"] for m in r["models"].values()), default=0)
        cells = []
        for name in MODELS:
            m = r["models"].get(name)
            cell = "" if m is None else f"{m['macro_f1']:.3f} / {m['accuracy']:.3f}"
            cells.append(f"**{cell}**" if m is not None and m["macro_f1"] == best else cell)
        lines.append(f"| {r['home']} | {r['train_windows']} / {r['test_windows']} ({r['train_days']} / {r['test_days']}) | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_smarthome(cfg: ExperimentConfig, out: str | None = None, resume: bool = False) -> dict:
    if cfg.smarthome.mode == "federated":
        from fedhar.text.federated import run_smarthome_federated

        return run_smarthome_federated(cfg, out, resume)
    t_start = time.perf_counter()
    run_dir = prepare_run_dir(out, cfg.name)
    write_config(run_dir, config_to_dict(cfg))
    home_dir = run_dir / "homes"
    home_dir.mkdir(exist_ok=True)
    cache = TeacherLogitCache(run_dir / "cache")
    rows = []
    for home in cfg.smarthome.homes:
        path = home_dir / f"{home}.json"
        done = json.loads(path.read_text()) if resume and path.exists() else None
        wanted = {m for m in MODELS if cfg.smarthome.zero_shot or not m.startswith("zero-shot")}
        if done is not None and wanted <= set(done["models"]):
            rows.append(done)
            log.info("%s: kept from the previous run", home)
            continue
        rows.append(run_home(cfg, home, home_dir, cache, done))
    results = {"kind": "smarthome", "name": cfg.name, "seed": cfg.seed, "homes": rows,
               "seconds": time.perf_counter() - t_start}
    cost = cost_table(rows, "home")
    write_json(run_dir / "results.json", results)
    write_metrics_csv(run_dir / "metrics.csv", [{"home": r["home"], "model": m, **v} for r in rows for m, v in r["models"].items()])
    from fedhar.reporting.plots import grouped_bars_png

    grouped_bars_png(run_dir / "macro_f1.png", {r["home"]: {m: r["models"][m]["macro_f1"] for m in MODELS if m in r["models"]}
                                                 for r in rows}, "macro-F1", f"{cfg.name}: per home")
    ratio = ", ".join(f"{r['home']} {r['backbone_ratio']:.1f}x" for r in rows)
    report = [f"# {cfg.name}", "",
              "Macro-F1 / accuracy on each home's last days (chronological split), over the activities present there. "
              f"Teacher: {cfg.smarthome.teacher_layers or 'all'} blocks + LoRA; student: {cfg.smarthome.student_layers} blocks + LoRA; "
              f"distillation T={cfg.smarthome.distill.temperature}, KL weight {cfg.smarthome.distill.weight}.", "",
              _table(rows), "", "## Teacher and student cost", "", cost, "",
              f"Teacher / student backbone parameters: {ratio}.", "",
              f"This invocation took {results['seconds'] / 60:.1f} min (a resumed study counts only what it recomputed)."]
    (run_dir / "report.md").write_text("\n".join(report) + "\n")
    results["run_dir"] = str(run_dir)
    return results
