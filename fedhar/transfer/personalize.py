"""On-device personalisation after federated training.

The federated global model (FedAvg over the configured clients) is the starting point. Every
client then fine-tunes a chosen part of it on its own training split and is scored on the rest
of its own windows, against the global model on the same windows. The fine-tuning budget follows
the rule of :mod:`fedhar.transfer.adapt` (``personalization.adapt``): steps scale with the
client's windows, and where every class has enough of them a stratified validation part of the
training split stops training early; rows record the steps taken. ``fedper`` instead trains a
second federation in which each client's head never leaves the client (FedPer).

Personal state is written per client under ``clients/client_NNNN/<strategy>.safetensors``; only
the changed entries are stored, and :func:`load_personalised` puts them back on a global model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch

from fedhar.config import ExperimentConfig, derive
from fedhar.exceptions import ConfigError
from fedhar.federated.personal import load_personal, save_personal
from fedhar.federated.task import derive_seed
from fedhar.models.har_model import HARModel
from fedhar.reporting import RunFolder
from fedhar.training.loop import evaluate
from fedhar.transfer.adapt import adapt, adaptation_rule, changed_state, row_fields
from fedhar.transfer.config import STRATEGY_PARTS
from fedhar.transfer.lodo import train_federated

log = logging.getLogger(__name__)


def personal_path(run_dir: Path, pid: int, strategy: str) -> Path:
    return Path(run_dir) / "clients" / f"client_{pid:04d}" / f"{strategy}.safetensors"


def load_personalised(model: HARModel, global_state: Mapping[str, torch.Tensor], path: str | Path) -> HARModel:
    """``model`` carrying ``global_state`` with a client's saved personal entries on top."""
    mine = load_personal(path)
    if mine is None:
        raise ConfigError(f"{path}: no personal state saved there.")
    model.load_trainable_state({**global_state, **mine}, where=str(path))
    return model


def _row(pid: int, strategy: str, n_personal: int, n_test: int, global_m: dict, m: dict, **extra) -> dict:
    return {"client": pid, "strategy": strategy, "personal_windows": n_personal, "test_windows": n_test,
            "global_f1": global_m["macro_f1"], "global_accuracy": global_m["accuracy"],
            "personal_f1": m["macro_f1"], "personal_accuracy": m["accuracy"],
            "gain": m["macro_f1"] - global_m["macro_f1"], **extra}


def fedper_config(cfg: ExperimentConfig, run_dir: Path) -> ExperimentConfig:
    """``cfg`` trained with FedPer: each client's head stays on the client, under ``run_dir/fedper``."""
    return derive(cfg, {"name": f"{cfg.name}-fedper", "federated.personal_parts": ["head"],
                        "federated.state_dir": str((Path(run_dir) / "fedper" / "clients").resolve())}, source="fedper")


def run_personalization(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Federated global model, then every strategy on every client; the folder's results,
    metrics.csv, report.md and gains.png are updated after each client (a resume skips done cells)."""
    from fedhar.federated.task import get_task
    from fedhar.transfer.report import write_personalization_outputs

    pcfg = cfg.personalization
    run_dir = folder.path
    rows: list[dict] = folder.results.setdefault("rows", [])
    folder.results["adaptation"] = {"rule": adaptation_rule(pcfg.adapt), "fedper": "no on-device fine-tuning: the "
                                    "client's head trained during the FedPer federation"}
    state = train_federated(cfg, run_dir / "global")
    task = get_task(cfg)
    model = task.model
    clients = pcfg.clients if pcfg.clients is not None else list(range(task.num_clients))
    bad = [c for c in clients if not 0 <= c < task.num_clients]
    if bad:
        raise ConfigError(f"`personalization.clients` {bad} are out of range: there are {task.num_clients} clients.")
    global_metrics: dict[int, dict] = {}
    local = [s for s in pcfg.strategies if s != "fedper"]
    for pid in clients:
        train, test = task.client_data(pid)
        model.load_trainable_state(state, where="global state")
        g = global_metrics[pid] = evaluate(model, test, cfg.train)
        for strategy in local:
            if folder.done(pid, strategy):
                continue
            parts = STRATEGY_PARTS[strategy]
            info = adapt(model, state, train, parts, cfg.train, pcfg.adapt, seed=derive_seed(cfg.seed, pid, "personal"),
                         desc=f"client {pid} {strategy}")
            m = evaluate(model, test, cfg.train)
            save_personal(personal_path(run_dir, pid, strategy), changed_state(model, parts))
            rows.append(_row(pid, strategy, len(train), len(test), g, m, **row_fields(info)))
            folder.record(pid, strategy)
            log.info("client %d %-9s global %.3f -> %.3f (%+.3f) in %d steps, %.1fs", pid, strategy, g["macro_f1"],
                     m["macro_f1"], m["macro_f1"] - g["macro_f1"], info["steps"], info["seconds"])
        write_personalization_outputs(folder)
    if "fedper" in pcfg.strategies and not all(folder.done(pid, "fedper") for pid in clients):
        fcfg = fedper_config(cfg, run_dir)
        fstate = train_federated(fcfg, run_dir / "fedper")
        ftask = get_task(fcfg)
        head = {k: v for k, v in ftask.model.trainable_state().items() if k in ftask.personal_keys}
        params = int(sum(v.numel() for v in head.values()))
        nbytes = int(sum(v.numel() * v.element_size() for v in head.values()))
        for pid in clients:
            if folder.done(pid, "fedper"):
                continue
            train, test = ftask.client_data(pid)
            m, _ = ftask.evaluate_client(fstate, pid)
            rows.append(_row(pid, "fedper", len(train), len(test), global_metrics[pid], m, seconds=None,
                             params_changed=params, bytes_changed=nbytes,
                             state_file=str(ftask.personal_path(pid).relative_to(run_dir.resolve()))))
            folder.record(pid, "fedper")
    write_personalization_outputs(folder)
    return folder.complete()
