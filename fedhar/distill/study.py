"""``simulations/distill.py``: teacher -> student on any windowed data (sensor windows or text)."""

from __future__ import annotations

import time

from fedhar.config import ExperimentConfig, config_to_dict
from fedhar.data.build import load_splits
from fedhar.distill.cache import TeacherLogitCache
from fedhar.distill.compare import compare, cost_table, with_backbone
from fedhar.reporting import prepare_run_dir, write_config, write_json, write_metrics_csv


def run_distill_study(cfg: ExperimentConfig, out: str | None = None, resume: bool = False) -> dict:
    """Teacher, student and distilled student on ``cfg.data``; teacher logits are cached in the run
    folder, so ``--resume`` after an interruption does not run the teacher over the data again."""
    t_start = time.perf_counter()
    run_dir = prepare_run_dir(out, cfg.name)
    write_config(run_dir, config_to_dict(cfg))
    d = cfg.distill
    train, test = load_splits(cfg.data, cfg.seed)
    tcfg = with_backbone(cfg, d.teacher_epochs, **d.teacher)
    scfg = with_backbone(cfg, d.student_epochs, **d.student)
    cache = TeacherLogitCache(run_dir / "cache")
    models, costs = compare(tcfg, scfg, d.kd, train, test, cache, cfg.name)
    row = {"data": train.name, "train_windows": len(train), "test_windows": len(test), "models": models, "costs": costs,
           "teacher_logit_computations": cache.calls}
    cost = cost_table([row], "data")
    results = {"kind": "distill", "name": cfg.name, "seed": cfg.seed, **row, "seconds": time.perf_counter() - t_start}
    write_json(run_dir / "results.json", results)
    write_metrics_csv(run_dir / "metrics.csv", [{"model": m, **v} for m, v in models.items()])
    from fedhar.reporting.plots import grouped_bars_png

    grouped_bars_png(run_dir / "macro_f1.png", {train.name: {m: v["macro_f1"] for m, v in models.items()}}, "macro-F1", cfg.name)
    lines = [f"# {cfg.name}", "", f"{train.name}: {len(train)} training / {len(test)} test windows. Teacher backbone "
             f"{d.teacher}, student {d.student}, T={d.kd.temperature}, KL weight {d.kd.weight}.", "",
             "| model | macro-F1 | accuracy | train seconds |", "|---|---|---|---|"]
    lines += [f"| {m} | {v['macro_f1']:.3f} | {v['accuracy']:.3f} | {v['train_seconds']:.0f} |" for m, v in models.items()]
    lines += ["", cost, "", f"Teacher / student backbone parameters: {row['backbone_ratio']:.1f}x. "
              f"Total {results['seconds'] / 60:.1f} min."]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    results["run_dir"] = str(run_dir)
    return results
