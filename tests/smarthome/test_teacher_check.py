"""Distillation checks its teacher first: on validation days held out of the training days, a teacher
that is not better than the directly trained student is not distilled from (or with a lowered weight)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedhar.distill.compare import teacher_check, validation_part
from fedhar.distill.config import DistillConfig

REPO = Path(__file__).resolve().parents[2]


def test_teacher_check_decides_from_validation_scores():
    kd = DistillConfig(weight=0.7, check="skip")
    assert teacher_check({"val_macro_f1": 0.8}, {"val_macro_f1": 0.7}, kd)["action"] == "distil"
    skipped = teacher_check({"val_macro_f1": 0.6}, {"val_macro_f1": 0.7}, kd)
    assert skipped["action"] == "skip" and skipped["weight"] == 0.0 and "not better" in skipped["reason"]
    assert teacher_check({"val_macro_f1": 0.7}, {"val_macro_f1": 0.7}, kd)["action"] == "skip"  # a tie is not better
    lowered = teacher_check({"val_macro_f1": 0.6}, {"val_macro_f1": 0.7}, DistillConfig(check="lower", lowered_weight=0.1))
    assert lowered["action"] == "lower" and lowered["weight"] == 0.1
    assert teacher_check({"val_macro_f1": 0.72}, {"val_macro_f1": 0.7}, DistillConfig(margin=0.05))["action"] == "skip"
    assert teacher_check({"val_macro_f1": 0.1}, {"val_macro_f1": 0.7}, DistillConfig(check="off"))["action"] == "distil"
    assert teacher_check({}, {}, kd)["reason"] == "no validation split"


def test_validation_part_holds_out_the_last_training_days():
    from fedhar.data.dataset import WindowDataset

    day = np.repeat(np.arange(10), 3)
    ds = WindowDataset(X=np.zeros((30, 1, 4), np.float32), y=np.zeros(30, np.int64), subject=np.zeros(30, np.int64),
                       classes=("a",), channels=("x",), units=("g",), rate_hz=1.0, name="t", extras={"day": day})
    fit, val = validation_part(ds, 0.2)
    assert sorted(np.unique(val.extras["day"])) == [8, 9] and len(fit) == 24
    assert validation_part(ds, 0.0)[1] is None
    plain = ds.replace(extras={})
    fit, val = validation_part(plain, 0.2, seed=1)
    assert len(val) == 6 and len(fit) == 24


def test_a_teacher_worse_than_the_student_is_not_distilled_from(generated_homes, tmp_path):
    """A teacher that cannot learn (lr 1e-9) against a student that can: the check skips distillation and
    the distilled row is the student as trained directly; with check: lower it distils at the lowered weight."""
    from fedhar.config import derive, load_config
    from fedhar.data.sources import load_splits
    from fedhar.distill import TeacherLogitCache
    from fedhar.distill.compare import compare, with_backbone

    cfg = load_config(REPO / "configs/smarthome_tiny.yaml", [f"data.source={generated_homes}", "data.options.homes=[ordonez_a]"])
    train, test = load_splits(cfg.data, cfg.seed)
    teacher = derive(with_backbone(cfg, 2, layers=1), {"train.lr": 1e-9}, source="test")
    student = with_backbone(cfg, 6, layers=1)
    kd = DistillConfig(val_fraction=0.34, patience=3)
    models, _ = compare(teacher, student, kd, train, test, TeacherLogitCache(tmp_path / "c"), "home")
    check = models["distilled student"]["check"]
    assert models["teacher"]["val_macro_f1"] < models["student"]["val_macro_f1"], check
    assert check["action"] == "skip" and models["distilled student"]["distilled"] is False
    assert models["distilled student"]["macro_f1"] == models["student"]["macro_f1"]
    lowered, _ = compare(teacher, student, DistillConfig(val_fraction=0.34, patience=3, check="lower", lowered_weight=0.1),
                         train, test, TeacherLogitCache(tmp_path / "c"), "home")
    assert lowered["distilled student"]["check"]["action"] == "lower" and lowered["distilled student"]["distilled"] is True
    assert lowered["distilled student"]["check"]["weight"] == pytest.approx(0.1)
