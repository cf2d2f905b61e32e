"""``simulations/distill.py``: teacher -> student on any windowed data (sensor windows or text)."""

from __future__ import annotations

from fedhar.config import ExperimentConfig
from fedhar.data.sources import load_splits
from fedhar.distill.cache import TeacherLogitCache
from fedhar.distill.compare import compare, cost_table, with_backbone
from fedhar.reporting import RunFolder, grouped_bars_png


def run_distill_study(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Teacher, student and distilled student on ``cfg.data``; teacher logits are cached in the run
    folder, so ``--resume`` after an interruption does not run the teacher over the data again."""
    d = cfg.distill
    train, test = load_splits(cfg.data, cfg.seed)
    tcfg = with_backbone(cfg, d.teacher_epochs, **d.teacher)
    scfg = with_backbone(cfg, d.student_epochs, **d.student)
    cache = TeacherLogitCache(folder.file("cache"))
    models, costs = compare(tcfg, scfg, d.kd, train, test, cache, cfg.name)
    row = {"data": train.name, "train_windows": len(train), "test_windows": len(test), "models": models, "costs": costs,
           "teacher_logit_computations": cache.calls}
    cost = cost_table([row], "data")
    folder.results.update(kind="distill", **row)
    folder.write_metrics([{"model": m, **v} for m, v in models.items()])
    folder.plot("macro_f1.png", grouped_bars_png, {train.name: {m: v["macro_f1"] for m, v in models.items()}}, "macro-F1", cfg.name)
    lines = [f"# {cfg.name}", "", f"{train.name}: {len(train)} training / {len(test)} test windows. Teacher backbone "
             f"{d.teacher}, student {d.student}, T={d.kd.temperature}, KL weight {d.kd.weight}.", "",
             "| model | macro-F1 | accuracy | train seconds |", "|---|---|---|---|"]
    lines += [f"| {m} | {v['macro_f1']:.3f} | {v['accuracy']:.3f} | {v['train_seconds']:.0f} |" for m, v in models.items()]
    lines += ["", cost, "", f"Teacher / student backbone parameters: {row['backbone_ratio']:.1f}x. "
              f"Total {folder.seconds / 60:.1f} min."]
    folder.write_report("\n".join(lines) + "\n")
    return folder.complete()
