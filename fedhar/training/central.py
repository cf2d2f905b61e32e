"""Central (non-federated) training and evaluation of one configured experiment."""

from __future__ import annotations

import logging
import time

import numpy as np

from fedhar.config import ExperimentConfig
from fedhar.data.sources import load_splits
from fedhar.data.dataset import WindowDataset
from fedhar.data.splits import fit_channel_stats
from fedhar.models import NON_NEURAL, ClassicalModel, build_model
from fedhar.models.checkpoint import save_model
from fedhar.models.classical import save_classical
from fedhar.models.har_model import HARModel
from fedhar.reporting import RunFolder, confusion_matrix_png, curves_png
from fedhar.training.loop import evaluate, fit
from fedhar.training.metrics import classification_metrics, per_class_f1

log = logging.getLogger(__name__)


def build_for_data(cfg: ExperimentConfig, train: WindowDataset) -> HARModel:
    """A model shaped for ``train``'s channels/classes, its normaliser fitted on ``train`` only
    (or, for an MAE backbone, the statistics its encoder was pretrained with)."""
    model = build_model(cfg.model, train.channels, train.window_length, train.classes, cfg.seed,
                        vocab_ids=train.X if cfg.model.text.trim_vocab else None, rate_hz=train.rate_hz, units=train.units)
    pretrained_stats = getattr(model.backbone, "norm_stats", None)  # an MAE keeps its pretraining statistics
    model.normalizer.set_stats(*(pretrained_stats if pretrained_stats is not None else fit_channel_stats(train)))
    return model


def model_info(model: HARModel | ClassicalModel) -> dict:
    info = {"backbone": model.backbone_name, **model.param_counts()}
    info["trainable_fraction"] = info["trainable_params"] / max(1, info["total_params"])
    info["update_bytes"] = model.state_bytes() if isinstance(model, HARModel) else 0
    if isinstance(model, HARModel) and getattr(model.backbone, "targeted_modules", None):
        info["lora_targets"] = len(model.backbone.targeted_modules)
    if isinstance(model, HARModel):
        from fedhar.models.quantize import frozen_bytes

        info["frozen_backbone_bytes"] = frozen_bytes(model.backbone)
    return info


def train_and_evaluate(cfg: ExperimentConfig, train: WindowDataset, test: WindowDataset,
                       on_epoch=None, desc: str = "train") -> tuple[object, list[dict], dict]:
    """Fit the configured model (neural or classical); return (model, history, test metrics)."""
    if cfg.model.backbone.name in NON_NEURAL:
        t0 = time.perf_counter()
        model = ClassicalModel(cfg.model.backbone.trees, cfg.seed).fit(train.X, train.y)
        metrics = classification_metrics(test.y, model.predict(test.X), test.num_classes)
        history = [{"epoch": 1, "seconds": time.perf_counter() - t0, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}]
        return model, history, metrics
    model = build_for_data(cfg, train)
    history = fit(model, train, cfg.train, seed=cfg.seed, eval_data=test, on_epoch=on_epoch, desc=desc)
    return model, history, evaluate(model, test, cfg.train)


def run_central(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """The ``train`` study (``fedhar train``): train, evaluate and write the run folder; returns the results."""
    train, test = load_splits(cfg.data, cfg.seed)
    log.info("train: %d windows, test: %d windows, %d classes, channels %s",
             len(train), len(test), train.num_classes, ",".join(train.channels))
    rows: list[dict] = []

    def on_epoch(row: dict) -> None:
        rows.append(row)
        folder.write_metrics(rows)
        msg = f"epoch {row['epoch']}: train_loss {row['train_loss']:.4f}"
        if "macro_f1" in row:
            msg += f"  test acc {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}"
        log.info(msg + f"  ({row['seconds']:.0f}s)")

    model, history, metrics = train_and_evaluate(cfg, train, test, on_epoch)
    if isinstance(model, HARModel):
        save_model(model, folder.file("model"))
    else:  # the fitted forest, for `fedhar export`
        save_classical(model, folder.file("model"), train.classes, train.channels, train.window_length)
    folder.write_metrics(history)
    folder.plot("confusion_matrix.png", confusion_matrix_png, metrics["confusion"], test.classes,
                f"{cfg.name}: macro-F1 {metrics['macro_f1']:.3f}")
    folder.plot("learning_curve.png", curves_png, history, "epoch",
                {"loss": ["train_loss", "test_loss"], "score": ["accuracy", "macro_f1"]}, cfg.name)
    return folder.complete(
        final={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "loss": metrics.get("loss")},
        model=model_info(model), data={"train": _brief(train), "test": _brief(test)},
        confusion_matrix={"classes": list(test.classes), "matrix": metrics["confusion"]},
        per_class_f1=per_class_f1(metrics["confusion"], test.classes), history=history)


def _brief(ds: WindowDataset) -> dict:
    return {"name": ds.name, "windows": len(ds), "subjects": int(len(np.unique(ds.subject))),
            "classes": list(ds.classes), "channels": list(ds.channels), "rate_hz": ds.rate_hz}
