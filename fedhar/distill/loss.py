"""The distillation loss (Hinton et al. 2015): cross-entropy plus KL on temperature-softened logits."""

from __future__ import annotations

import torch
from torch import nn

from fedhar.distill.config import DistillConfig


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
