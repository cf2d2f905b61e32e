"""Teacher-to-student distillation: the KD loss, cached teacher logits, and cost reports.

The student trains with the one training loop (:func:`fedhar.training.loop.fit`), given the
teacher's cached logits as ``soft_targets``; the federated variant (FedDF) lives in
:mod:`fedhar.federated.distill`.
"""

from fedhar.distill.cache import TeacherLogitCache, fingerprint, model_fingerprint
from fedhar.distill.config import DistillConfig
from fedhar.distill.loss import kd_loss

__all__ = ["DistillConfig", "TeacherLogitCache", "fingerprint", "kd_loss", "model_fingerprint"]
