"""One training loop (fit/evaluate) used by central, federated-client and continual training."""

from fedhar.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.training.config": "TrainConfig",
    "fedhar.training.loop": "evaluate fit predict_logits seed_everything",
    "fedhar.training.metrics": "classification_metrics",
})
