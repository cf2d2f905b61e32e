"""The distillation loss (Hinton et al. 2015): cross-entropy plus KL on temperature-softened logits."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedhar.data.dataset import WindowDataset
from fedhar.distill.config import DistillConfig
from fedhar.training.loop import Objective, apply_label_mask, label_mask_of


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None, cfg: DistillConfig,
            weight: torch.Tensor | None = None) -> torch.Tensor:
    """``(1 - w) * CE(student, labels) + w * T^2 * KL(softmax(teacher/T) || softmax(student/T))``.

    The ``T^2`` factor keeps the soft-target gradients on the same scale as the hard-label ones
    whatever the temperature. Logits masked with a large negative value (label masks) get zero
    probability on both sides and so contribute nothing to the KL term.
    """
    T = cfg.temperature
    log_p_student = nn.functional.log_softmax(student.float() / T, dim=-1)
    p_teacher = nn.functional.softmax(teacher.float() / T, dim=-1)
    # Sum over classes, mean over the batch; terms where the teacher gives zero mass vanish.
    kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).where(p_teacher > 0, 0.0).sum(-1).mean()
    loss = cfg.weight * (T * T) * kl
    if cfg.weight < 1.0:
        if labels is None:
            raise ValueError("kd_loss: labels are needed when `distill.weight` < 1 (the cross-entropy part).")
        loss = loss + (1.0 - cfg.weight) * nn.functional.cross_entropy(student.float(), labels, weight=weight)
    return loss


def kd_objective(soft_targets: np.ndarray, train: WindowDataset, cfg: DistillConfig) -> Objective:
    """:func:`fedhar.training.loop.fit`'s objective for distilling onto ``train``: ``soft_targets`` are
    a teacher's logits ``(N, K)``, one row per training window (computed once, see
    :class:`fedhar.distill.TeacherLogitCache`), masked like the student's by ``train``'s label mask."""
    soft = np.asarray(soft_targets, dtype=np.float32)
    if soft.ndim != 2 or len(soft) != len(train):
        raise ValueError(f"`soft_targets` must have shape ({len(train)}, K) (one teacher logit row per "
                         f"training window); got {soft.shape}.")
    teacher = torch.from_numpy(apply_label_mask(soft, label_mask_of(train)))

    def objective(logits: torch.Tensor, labels: torch.Tensor, index: torch.Tensor,
                  class_weight: torch.Tensor | None = None) -> torch.Tensor:
        if logits.shape[1] != teacher.shape[1]:
            raise ValueError(f"`soft_targets` have {teacher.shape[1]} classes; the student has {logits.shape[1]}.")
        return kd_loss(logits, teacher[index], labels, cfg, weight=class_weight)

    return objective
