"""Teacher-to-student distillation: the KD loss, cached teacher logits, and cost reports.

The student trains with the one training loop (:func:`fedhar.training.loop.fit`), whose objective
:func:`kd_objective` builds over the teacher's cached logits; the federated variant (FedDF) lives in
:mod:`fedhar.federated.distill`.
"""

from fedhar.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.distill.cache": "TeacherLogitCache fingerprint model_fingerprint",
    "fedhar.distill.config": "DistillConfig",
    "fedhar.distill.loss": "kd_loss kd_objective",
})
