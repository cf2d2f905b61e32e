"""FedDF-style server distillation: after aggregation, train the global model on an unlabelled
public set to match a teacher's, or the client ensemble's, soft predictions.

Why: averaging adapters of clients with very different data (homes with different sensors,
datasets with different rates) can land between their optima; distilling the ensemble of the
round's client models into the average recovers what each knew (Lin et al. 2020, "Ensemble
Distillation for Robust Model Fusion in Federated Learning"). With a teacher, a large model the
server can afford teaches the small global student every round. The teacher's logits on the
public set are computed once for the whole run (:class:`~fedhar.distill.TeacherLogitCache`).

Everything here runs on the server; clients see only the distilled global state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fedhar.data.sources import load_splits
from fedhar.data.dataset import WindowDataset
from fedhar.distill import DistillConfig, TeacherLogitCache, kd_objective, model_fingerprint
from fedhar.exceptions import ConfigError, ModelError
from fedhar.federated.config import ServerDistillConfig
from fedhar.training.loop import fit, predict_logits

log = logging.getLogger(__name__)


def load_teacher(folder: str | Path, like: WindowDataset, classes: tuple[str, ...]):
    """The trained model in ``folder`` (``fedhar train`` output: config.yaml + model/)."""
    from fedhar.config import load_config
    from fedhar.models.checkpoint import STATE_FILE, load_model_state
    from fedhar.training.central import build_for_data

    folder = Path(folder)
    cfg_path = folder / "config.yaml"
    state = folder / "model" / STATE_FILE if (folder / "model" / STATE_FILE).exists() else folder / STATE_FILE
    if not cfg_path.exists() or not state.exists():
        raise ConfigError(f"`federated.distill.teacher: {folder}` must hold config.yaml and model/{STATE_FILE} "
                          "(the folder `fedhar train ... --out` writes).")
    cfg = load_config(cfg_path)
    if cfg.model.text.trim_vocab:
        raise ConfigError(f"`federated.distill.teacher: {folder}` was trained with `model.text.trim_vocab`; the server "
                          "cannot rebuild its trimmed vocabulary. Train the teacher with trim_vocab: false.")
    teacher = build_for_data(cfg, like.replace(classes=classes, y=np.zeros(len(like), np.int64)))
    load_model_state(teacher, state)
    if tuple(teacher.classes) != tuple(classes):
        raise ModelError(f"teacher {folder} predicts {teacher.classes}, the federation {classes}.")
    return teacher, cfg


class ServerDistiller:
    """``distill(task, arrays_state, client_states) -> new global state`` for each round."""

    def __init__(self, cfg: ServerDistillConfig, task, seed: int = 0, cache_dir: str | Path | None = None) -> None:
        self.cfg, self.task, self.seed = cfg, task, seed
        train_cfg = cfg.public
        if train_cfg.max_windows is None and cfg.max_public is not None:
            train_cfg = replace(train_cfg, max_windows=cfg.max_public)
        public, _ = load_splits(train_cfg, seed)
        model = task.model
        if tuple(public.channels) != tuple(model.channels):
            raise ConfigError(f"`federated.distill.public` has channels {public.channels}; the federated model takes "
                              f"{model.channels}. Use the same `data.channels` / text settings as the clients.")
        self.public = public
        self.cache = TeacherLogitCache(cache_dir)
        self.teacher = None
        if cfg.source == "teacher":
            self.teacher, tcfg = load_teacher(cfg.teacher, public, model.classes)
            self._teacher_key = model_fingerprint(self.teacher, f"{cfg.teacher}|{len(public)}")
            self._teacher_precision = tcfg.train.precision
        self.rows: list[dict] = []

    def targets(self, client_states: list[dict]) -> np.ndarray:
        prec = self.task.cfg.train.precision
        if self.teacher is not None:
            return self.cache.get(self._teacher_key, lambda: predict_logits(self.teacher, self.public.X, 64,
                                                                                 self._teacher_precision))
        model = self.task.model
        logits = []
        for state in client_states:
            model.load_trainable_state(state, where="client update (distillation)")
            logits.append(predict_logits(model, self.public.X, 128, prec))
        return np.mean(logits, axis=0)  # FedDF averages the client models' logits

    @staticmethod
    def _match(logits: np.ndarray, soft: np.ndarray, kd: DistillConfig) -> tuple[float, float]:
        """(argmax agreement, T^2-scaled KL) of the global model's logits with the targets."""
        import torch

        from fedhar.distill import kd_loss

        kl = float(kd_loss(torch.from_numpy(logits), torch.from_numpy(soft), None, kd))
        return float((logits.argmax(1) == soft.argmax(1)).mean()), kl

    def __call__(self, rnd: int, global_state: dict, client_states: list[dict]) -> dict:
        t0 = time.perf_counter()
        with self.task._lock:
            soft = self.targets(client_states)
            model = self.task.model
            model.load_trainable_state(global_state, where=f"aggregated state (round {rnd})")
            kd = DistillConfig(temperature=self.cfg.temperature, weight=1.0)
            before = predict_logits(model, self.public.X, 128, self.task.cfg.train.precision)
            agree_before, kl_before = self._match(before, soft, kd)
            # Labels are the targets' argmax only to fill the type: with weight 1 the loss is KL alone.
            public = self.public.replace(y=soft.argmax(1).astype(np.int64), classes=model.classes, extras={})
            tcfg = replace(self.task.cfg.train, epochs=self.cfg.epochs, lr=self.cfg.lr, batch_size=self.cfg.batch_size,
                           progress=False, trainable=[p for p in self.task.cfg.train.trainable if p != "head"] + ["head"])
            fit(model, public, tcfg, seed=self.seed + rnd, objective=kd_objective(soft, public, kd), desc=f"server distill {rnd}")
            after = predict_logits(model, self.public.X, 128, self.task.cfg.train.precision)
            agree_after, kl_after = self._match(after, soft, kd)
            new_state = model.trainable_state()
        row = {"round": rnd, "source": self.cfg.source, "public_windows": len(self.public),
               "agreement_before": agree_before, "agreement_after": agree_after, "kl_before": kl_before, "kl_after": kl_after,
               "seconds": time.perf_counter() - t0, "teacher_logit_computations": self.cache.calls}
        self.rows.append(row)
        if self.cache.folder is not None:
            from fedhar.reporting import write_json

            write_json(self.cache.folder / "rounds.json", {"rounds": self.rows})
        log.info("round %d: server distillation (%s) on %d public windows: KL to targets %.4f -> %.4f, agreement "
                 "%.3f -> %.3f (%.1fs)", rnd, self.cfg.source, len(self.public), kl_before, kl_after, agree_before,
                 agree_after, row["seconds"])
        return new_state
