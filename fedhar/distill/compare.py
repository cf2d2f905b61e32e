"""Teacher, student and distilled student trained and scored on the same split, any data.

The one comparison both paths use: sensor windows (``simulations/distill.py``) and smart-home
text windows (``simulations/smarthome.py``). The student is trained twice from the same
initialisation, once on the labels alone and once on labels + the teacher's cached soft targets,
so any difference is the distillation's.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from fedhar.config import ExperimentConfig, derive
from fedhar.data.dataset import WindowDataset
from fedhar.distill.cache import TeacherLogitCache, fingerprint, model_fingerprint
from fedhar.distill.config import DistillConfig
from fedhar.distill.loss import kd_objective
from fedhar.distill.report import cost_report
from fedhar.training.central import build_for_data
from fedhar.training.loop import EarlyStopping, apply_label_mask, cross_entropy, fit, label_mask_of, predict_logits
from fedhar.training.metrics import classification_metrics

log = logging.getLogger(__name__)


def score(test: WindowDataset, pred: np.ndarray) -> dict:
    """Macro-F1 over the classes present in the test windows, and accuracy (the same for every model)."""
    m = classification_metrics(test.y, pred, test.num_classes, labels=np.unique(test.y).tolist())
    return {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"]}


def score_model(model, test: WindowDataset, tcfg) -> dict:
    """:func:`score` of ``model``'s predictions on ``test``, within each window's label mask."""
    logits = predict_logits(model, test.X, tcfg.eval_batch_size, tcfg.precision)
    return score(test, apply_label_mask(logits, label_mask_of(test)).argmax(1))


def with_backbone(cfg: ExperimentConfig, epochs: int | None = None, **backbone) -> ExperimentConfig:
    """``cfg`` with backbone fields replaced (e.g. ``layers=2`` or ``name="none"``) and its epochs."""
    return derive(cfg, {"model.backbone": backbone, "train.epochs": epochs or cfg.train.epochs}, source="teacher/student")


def validation_part(train: WindowDataset, fraction: float, seed: int = 0) -> tuple[WindowDataset, WindowDataset | None]:
    """``(fit, validation)`` parts of ``train``: the last ``fraction`` of its days when windows carry a
    ``day`` (event data: validation follows training in time, as the test days do), else a seeded
    random ``fraction`` of the windows. ``(train, None)`` when ``fraction`` is 0 or too little is left."""
    if fraction <= 0:
        return train, None
    if "day" in train.extras:
        day = np.asarray(train.extras["day"])
        days = np.unique(day)
        n_val = int(round(fraction * len(days)))
        if n_val < 1 or n_val >= len(days):
            return train, None
        is_val = np.isin(day, days[-n_val:])
    else:
        n_val = int(round(fraction * len(train)))
        if n_val < 1 or n_val >= len(train):
            return train, None
        is_val = np.zeros(len(train), dtype=bool)
        is_val[np.random.default_rng(seed).choice(len(train), n_val, replace=False)] = True
    return train.subset(np.flatnonzero(~is_val)), train.subset(np.flatnonzero(is_val))


def train_scored(cfg: ExperimentConfig, train: WindowDataset, test: WindowDataset, desc: str,
                 soft: np.ndarray | None = None, kd: DistillConfig | None = None,
                 val: WindowDataset | None = None, patience: int = 2):
    """Build, fit (with ``soft`` targets when given) and score one model; returns (model, metrics).

    With ``val``, training stops early on its macro-F1 (``patience`` epochs) and the best epoch's
    state is kept; the metrics then hold ``val_macro_f1`` and the epochs run."""
    t0 = time.perf_counter()
    model = build_for_data(cfg, train)
    objective = cross_entropy if soft is None else kd_objective(soft, train, kd or DistillConfig())
    stop = EarlyStopping(model, patience) if val is not None else None
    history = fit(model, train, cfg.train, seed=cfg.seed, desc=desc, objective=objective, eval_data=val, on_epoch=stop)
    extra: dict = {"epochs": len(history)}
    if stop is not None:
        stop.restore(history)
        extra.update(val_macro_f1=stop.best, best_epoch=stop.best_epoch)
    seconds = time.perf_counter() - t0
    return model, {**score_model(model, test, cfg.train), "train_seconds": seconds, **extra}


def teacher_check(teacher: dict, student: dict, kd: DistillConfig) -> dict:
    """Whether to distil, and with which KL weight: the teacher must beat the directly trained
    student on validation macro-F1 by more than ``kd.margin``; otherwise ``kd.check`` decides
    (``skip``: no distillation; ``lower``: ``kd.lowered_weight``; ``off``: distil anyway)."""
    t, s = teacher.get("val_macro_f1"), student.get("val_macro_f1")
    if kd.check == "off" or t is None or s is None:
        why = "check off" if kd.check == "off" else "no validation split"
        return {"action": "distil", "weight": kd.weight, "teacher_val_f1": t, "student_val_f1": s, "reason": why}
    if t > s + kd.margin:
        return {"action": "distil", "weight": kd.weight, "teacher_val_f1": t, "student_val_f1": s,
                "reason": f"teacher better on validation ({t:.3f} > {s:.3f} + {kd.margin:g})"}
    reason = f"teacher not better on validation ({t:.3f} vs student {s:.3f}, margin {kd.margin:g})"
    if kd.check == "skip":
        return {"action": "skip", "weight": 0.0, "teacher_val_f1": t, "student_val_f1": s, "reason": reason}
    return {"action": "lower", "weight": kd.lowered_weight, "teacher_val_f1": t, "student_val_f1": s, "reason": reason}


def compare(teacher_cfg: ExperimentConfig, student_cfg: ExperimentConfig, kd: DistillConfig, train: WindowDataset,
            test: WindowDataset, cache: TeacherLogitCache, tag: str = "") -> tuple[dict, dict]:
    """``({role: metrics}, {teacher|student: cost})`` for the teacher, the student and the distilled student.

    Every model trains on the same part of ``train`` and stops early on the held-out validation
    part (:func:`validation_part`); before distilling, :func:`teacher_check` compares teacher and
    student there. ``models["distilled student"]["check"]`` records the decision; a skipped
    distillation keeps the directly trained student as the distilled row (``distilled: False``)."""
    fit_part, val = validation_part(train, kd.val_fraction, teacher_cfg.seed)
    if val is not None:
        log.info("%s: %d windows train, %d validate (teacher check, early stopping)", tag, len(fit_part), len(val))
    models: dict[str, dict] = {}
    teacher, models["teacher"] = train_scored(teacher_cfg, fit_part, test, f"{tag} teacher", val=val, patience=kd.patience)
    key = fingerprint(fit_part.X, extra=model_fingerprint(teacher, tag))
    t0 = time.perf_counter()
    soft = cache.get(key, lambda: predict_logits(teacher, fit_part.X, teacher_cfg.train.eval_batch_size,
                                                 teacher_cfg.train.precision))
    models["teacher"]["logit_seconds"] = time.perf_counter() - t0
    costs = {"teacher": cost_report(teacher, test.X, teacher_cfg.train.precision)}
    del teacher
    student, models["student"] = train_scored(student_cfg, fit_part, test, f"{tag} student", val=val, patience=kd.patience)
    costs["student"] = cost_report(student, test.X, student_cfg.train.precision)
    del student
    check = teacher_check(models["teacher"], models["student"], kd)
    log.info("%s teacher check: %s -> %s", tag, check["reason"], check["action"])
    if check["action"] == "skip":
        models["distilled student"] = {**models["student"], "distilled": False, "check": check}
    else:
        used = dataclasses.replace(kd, weight=check["weight"])
        _, m = train_scored(student_cfg, fit_part, test, f"{tag} distilled", soft=soft, kd=used, val=val, patience=kd.patience)
        models["distilled student"] = {**m, "distilled": True, "check": check}
    for name, m in models.items():
        log.info("%s %s: macro-F1 %.3f, accuracy %.3f", tag, name, m["macro_f1"], m["accuracy"])
    return models, costs


def cost_table(rows: list[dict], key: str) -> str:
    """Markdown: parameters, weight memory and inference time of teacher and student per row."""
    lines = [f"| {key} | model | backbone params | total params | trainable | weights (MB) | inference ms / window |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for name, c in r["costs"].items():
            lines.append(f"| {r[key]} | {name} | {c['backbone_params']:,} | {c['total_params']:,} | "
                         f"{c['trainable_params']:,} | {c['weight_bytes'] / 1e6:.1f} | {c['inference_ms_per_window']:.1f} |")
        t, s = r["costs"]["teacher"], r["costs"]["student"]
        r["backbone_ratio"] = t["backbone_params"] / max(1, s["backbone_params"])
    return "\n".join(lines)
