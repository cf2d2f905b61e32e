"""The MAE protocol, leave-one-dataset-out: pretrain a masked autoencoder on the other datasets'
unlabelled training windows, then fine-tune it (LoRA, or fully) on a labelled share of the
held-out dataset and test there; baselines fine-tune the same windows.

Fine-tuning follows the adaptation budget rule of :mod:`fedhar.transfer.adapt` with
``lodo.adapt`` (the same for every variant: steps scale with the labelled windows, a stratified
validation part stops training early where every class has enough windows); ``train.*`` gives the
schedule and precision. The random forest keeps fixed hyper-parameters and trains on all
labelled windows of the budget.

Variants name the fold's pretrained MAE as ``model.backbone.name: fold-mae``; any other backbone
(the from-scratch Transformer, no LLM, an LLM) is trained on the same labelled windows.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from fedhar.config import ExperimentConfig, Variant, derive
from fedhar.models import ClassicalModel
from fedhar.models import NON_NEURAL
from fedhar.training.central import build_for_data, train_and_evaluate
from fedhar.training.loop import apply_label_mask, evaluate
from fedhar.training.metrics import classification_metrics
from fedhar.training.pretrain import pretrain_mae
from fedhar.transfer.budget import parse_budget
from fedhar.reporting import RunFolder
from fedhar.transfer.adapt import adapt, row_fields
from fedhar.transfer.config import FOLD_MAE
from fedhar.transfer.lodo import (CLASSICAL, adaptation_description, budget_seed, complete, finish_cell, load_study,
                                  result_row, rf_fields)

log = logging.getLogger(__name__)


def variant_config(cfg: ExperimentConfig, variant: Variant, mae_dir: Path) -> ExperimentConfig:
    """The variant's config; a backbone named ``fold-mae`` is this fold's pretrained MAE."""
    vcfg = variant.apply(cfg)
    return derive(vcfg, {"model.backbone.name": str(mae_dir)}, "lodo variant") if vcfg.model.backbone.name == FOLD_MAE else vcfg


def run_mae_lodo(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    lcfg = cfg.lodo
    prepared = load_study(cfg, folder)
    variants, repeated = lcfg.variant_plan(cfg)
    folder.results["adaptation"] = adaptation_description(cfg)
    folder.results["variants_left_out"] = repeated
    for held in lcfg.held_out_names():
        target = prepared[held]
        sources = [p for n, p in prepared.items() if n != held]
        fold_dir = folder.path / "folds" / held
        mae_dir = fold_dir / "mae"
        if not (mae_dir / "mae.json").exists():
            X = np.concatenate([p.train.X for p in sources])
            X_test = np.concatenate([p.test.X for p in sources])
            t0 = time.perf_counter()
            mae, history = pretrain_mae(X, target.train.channels, cfg.pretrain, cfg.seed, X_test)
            channels = len(target.train.channels)
            # The pool is already standardised per dataset: the fine-tuned model's normaliser is the identity.
            mae.save(mae_dir, extra={"mean": [0.0] * channels, "std": [1.0] * channels, "windows": len(X),
                                     "sources": [p.name for p in sources], "history": history,
                                     "seconds": time.perf_counter() - t0})
            log.info("[%s] MAE pretrained on %d unlabelled windows of %s: test MSE %.4f (%.0fs)", held, len(X),
                     ", ".join(p.name for p in sources), history[-1].get("test_loss", float("nan")), time.perf_counter() - t0)
        meta = json.loads((mae_dir / "mae.json").read_text())
        budgets = {b.label: b.sample(target.train, seed=budget_seed(cfg)) for b in map(parse_budget, lcfg.budgets)}
        folder.results.setdefault("folds", {})[held] = {
            "sources": [p.name for p in sources], "shared_classes": [],
            "budget_windows": {k: len(v) for k, v in budgets.items()},
            "pretrain": {"windows": meta["windows"], "seconds": meta["seconds"],
                         "test_loss": meta["history"][-1].get("test_loss")}}
        jobs = [(v.label, v) for v in variants] + ([(CLASSICAL, None)] if lcfg.classical else [])
        for label, variant in jobs:
            if folder.done(held, label):
                continue
            rows = []
            for budget, data in budgets.items():
                t0 = time.perf_counter()
                if variant is None:
                    rf = ClassicalModel(lcfg.trees, cfg.seed).fit(data.X, data.y)
                    mask = np.asarray(target.test.extras["label_mask"][0], dtype=bool)
                    pred = apply_label_mask(rf.scores(target.test.X, target.test.num_classes), mask[None]).argmax(1)
                    m = classification_metrics(target.test.y, pred, target.test.num_classes, np.flatnonzero(mask).tolist())
                    mode = "target"
                    extra = {"seconds": time.perf_counter() - t0, **rf_fields(cfg, len(data))}
                elif (vcfg := variant_config(cfg, variant, mae_dir)).model.backbone.name in NON_NEURAL:  # fixed settings
                    _, _, m = train_and_evaluate(vcfg, data, target.test, desc=f"{held} {label} {budget}")
                    mode = "target"
                    extra = {"seconds": time.perf_counter() - t0, "train_windows": len(data), "validation": False,
                             "val_windows": 0, "hyperparameters": "fixed"}
                else:
                    model = build_for_data(vcfg, data)
                    info = adapt(model, None, data, vcfg.train.trainable, vcfg.train, lcfg.adapt, seed=cfg.seed,
                                 desc=f"{held} {label} {budget}")
                    m = evaluate(model, target.test, vcfg.train)
                    mode = "full" if vcfg.model.backbone.full_finetune or vcfg.model.backbone.name == "transformer" else (
                        "lora" if vcfg.model.backbone.lora.enabled else "head")
                    extra = {**row_fields(info), "seconds": time.perf_counter() - t0}
                rows.append(result_row(held, label, mode, budget, len(data), m, **extra))
                log.info("[%s | %s] %-5s (%4d windows): macro-F1 %.3f  acc %.3f", held, label, budget, len(data),
                         m["macro_f1"], m["accuracy"])
            finish_cell(folder, held, label, rows)
    return complete(folder)

