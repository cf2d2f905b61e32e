"""Teacher, student and distilled student trained and scored on the same split, any data.

The one comparison both paths use: sensor windows (``simulations/distill.py``) and smart-home
text windows (``simulations/smarthome.py``). The student is trained twice from the same
initialisation, once on the labels alone and once on labels + the teacher's cached soft targets,
so any difference is the distillation's.
"""

from __future__ import annotations

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
from fedhar.training.loop import apply_label_mask, cross_entropy, fit, label_mask_of, predict_logits
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


def train_scored(cfg: ExperimentConfig, train: WindowDataset, test: WindowDataset, desc: str,
                 soft: np.ndarray | None = None, kd: DistillConfig | None = None):
    """Build, fit (with ``soft`` targets when given) and score one model; returns (model, metrics)."""
    t0 = time.perf_counter()
    model = build_for_data(cfg, train)
    objective = cross_entropy if soft is None else kd_objective(soft, train, kd or DistillConfig())
    fit(model, train, cfg.train, seed=cfg.seed, desc=desc, objective=objective)
    seconds = time.perf_counter() - t0
    return model, {**score_model(model, test, cfg.train), "train_seconds": seconds}


def compare(teacher_cfg: ExperimentConfig, student_cfg: ExperimentConfig, kd: DistillConfig, train: WindowDataset,
            test: WindowDataset, cache: TeacherLogitCache, tag: str = "") -> tuple[dict, dict]:
    """``({role: metrics}, {teacher|student: cost})`` for the teacher, the student and the distilled student."""
    models: dict[str, dict] = {}
    teacher, models["teacher"] = train_scored(teacher_cfg, train, test, f"{tag} teacher")
    key = fingerprint(train.X, extra=model_fingerprint(teacher, tag))
    t0 = time.perf_counter()
    soft = cache.get(key, lambda: predict_logits(teacher, train.X, teacher_cfg.train.eval_batch_size,
                                                 teacher_cfg.train.precision))
    models["teacher"]["logit_seconds"] = time.perf_counter() - t0
    costs = {"teacher": cost_report(teacher, test.X, teacher_cfg.train.precision)}
    del teacher
    student, models["student"] = train_scored(student_cfg, train, test, f"{tag} student")
    costs["student"] = cost_report(student, test.X, student_cfg.train.precision)
    del student
    _, models["distilled student"] = train_scored(student_cfg, train, test, f"{tag} distilled", soft=soft, kd=kd)
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
