"""One training loop (fit/evaluate) used by central, federated-client and continual training."""

from fedhar.training.config import TrainConfig
from fedhar.training.loop import evaluate, fit, predict_logits, seed_everything
from fedhar.training.metrics import classification_metrics

__all__ = ["TrainConfig", "evaluate", "fit", "predict_logits", "seed_everything", "classification_metrics"]
