"""Leave-one-dataset-out: federated rounds over the other datasets, then zero-shot and few-shot
evaluation on the held-out one, for the configured model and every baseline in the same run.

For each held-out dataset ``D`` and each model variant:

1. the other datasets (harmonised by :mod:`fedhar.data.pool`) are written as one ``.npz`` pool
   and trained federated on Flower, one client per dataset (or dataset x subject);
2. the global model is scored on ``D``'s test side *zero-shot*, over the classes ``D`` shares
   with the training datasets;
3. for each label budget and adaptation mode the global model is fine-tuned on the same
   labelled windows of ``D`` and scored on all of ``D``'s classes. The budget follows one rule
   for every variant (:mod:`fedhar.transfer.adapt`): steps scale with the labelled windows, and
   where every class has enough windows a stratified validation part stops training early.

The random forest sees the same windows: trained on the sources (zero-shot), on the target
budget alone, or on both; its hyper-parameters are fixed (``lodo.trees``, scikit-learn's
defaults otherwise) and it trains on all labelled windows of a budget. ``results["adaptation"]``
states both rules. The budget draws use ``lodo.budget_seed`` (null: the run's seed).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from fedhar.config import ExperimentConfig, derive
from fedhar.data.config import DataConfig
from fedhar.data.dataset import WindowDataset, concat
from fedhar.data.pool import PreparedDataset, load_prepared, pool, save_npz
from fedhar.data.vocab import with_label_mask
from fedhar.exceptions import ConfigError
from fedhar.models import ClassicalModel
from fedhar.reporting import RunFolder
from fedhar.schema import to_mapping
from fedhar.training.loop import apply_label_mask, evaluate
from fedhar.training.metrics import classification_metrics
from fedhar.transfer.adapt import adapt, adaptation_rule, row_fields
from fedhar.transfer.budget import parse_budget
from fedhar.transfer.config import MODES

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"
ZERO_SHOT_ALL = "zero-shot, all classes"
"""Zero-shot over every class of the held-out dataset, the ones no training dataset had included:
only a model that can name a class it never trained on (the label-name head, readings as text)
scores those; the row also records ``unseen_recall`` (share of unseen-class windows recognised)
and ``chance`` (1 / the held-out dataset's classes)."""
CLASSICAL = "classical RF"
TEXT_ZERO_SHOT = "readings as text (LLM likelihood)"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def fold_config(vcfg: ExperimentConfig, pool_path: Path, name: str) -> ExperimentConfig:
    """``vcfg`` training federated on the pool file (its test sides are the in-domain test set)."""
    data = {**to_mapping(DataConfig()), "source": str(pool_path.resolve()), "format": "npz", "split": "official",
            "canonical_labels": False}
    return derive(vcfg, {"name": name, "data": data}, source=name)


def train_federated(fcfg: ExperimentConfig, fed_dir: Path) -> dict:
    """Run (or resume, or reuse) the federation in ``fed_dir``; returns the final global state."""
    from fedhar.federated.checkpoint import load_checkpoint
    from fedhar.federated.run import run_federated

    done = fed_dir / "results.json"
    if done.exists() and json.loads(done.read_text()).get("complete"):
        log.info("%s: federation already finished; reusing it", fed_dir)
    elif (fed_dir / "config.yaml").exists():
        run_federated(fcfg, resume=str(fed_dir))
    else:
        run_federated(fcfg, out=str(fed_dir))
    ckpt = load_checkpoint(fed_dir)
    if ckpt is None:
        raise ConfigError(f"{fed_dir}: the federation left no checkpoint.")
    return ckpt.global_state


def restrict(ds: WindowDataset, classes: list[str]) -> WindowDataset:
    """Windows of ``ds`` whose class is in ``classes``, masked to exactly those classes."""
    keep = np.isin(ds.y, [ds.classes.index(c) for c in classes])
    sub = ds.subset(np.flatnonzero(keep))
    return with_label_mask(sub.replace(extras={}), classes)


NO_SHARED = "no shared classes"


def zero_shot_row(held: str, variant: str, shared: list[str], score, **extra) -> dict:
    """The zero-shot row: ``score()`` (metrics over the shared classes), or, when the held-out
    dataset shares no class with the training datasets, macro-F1 and accuracy ``None`` (reported
    as n/a) with a note."""
    if not shared:
        log.info("[%s | %s] zero-shot: n/a (%s with the training datasets)", held, variant, NO_SHARED)
        return result_row(held, variant, "none", ZERO_SHOT, 0, {"macro_f1": None, "accuracy": None}, note=NO_SHARED,
                          **extra)
    m = score()
    log.info("[%s | %s] zero-shot on %s: macro-F1 %.3f", held, variant, ", ".join(shared), m["macro_f1"])
    return result_row(held, variant, "none", ZERO_SHOT, 0, m, **extra)


def unseen_row(held: str, variant: str, test: WindowDataset, unseen: list[str], predict, **extra) -> dict:
    """The :data:`ZERO_SHOT_ALL` row: ``predict(test) -> labels`` over all of the held-out dataset's
    classes, scored there, with the recall on the ``unseen`` classes' windows."""
    allowed = np.flatnonzero(np.asarray(test.extras["label_mask"][0], dtype=bool)).tolist()
    pred = np.asarray(predict(test))
    m = classification_metrics(test.y, pred, test.num_classes, allowed)
    is_unseen = np.isin(test.y, [test.classes.index(c) for c in unseen])
    recall = float((pred[is_unseen] == test.y[is_unseen]).mean()) if is_unseen.any() else None
    per_class = {c: float((pred[test.y == test.classes.index(c)] == test.classes.index(c)).mean())
                 for c in unseen if (test.y == test.classes.index(c)).any()}
    log.info("[%s | %s] zero-shot on all %d classes: macro-F1 %.3f; unseen %s recall %s (chance %.3f)", held, variant,
             len(allowed), m["macro_f1"], ", ".join(unseen), "n/a" if recall is None else f"{recall:.3f}", 1 / len(allowed))
    return result_row(held, variant, "none", ZERO_SHOT_ALL, 0, m, unseen_classes=list(unseen), unseen_recall=recall,
                      unseen_recall_per_class=per_class, chance=1 / len(allowed), **extra)


def model_predict(model, cfg: ExperimentConfig):
    """``predict(test) -> labels`` of a neural model within each window's label mask."""
    from fedhar.training.loop import label_mask_of, predict_logits

    def predict(test: WindowDataset) -> np.ndarray:
        logits = predict_logits(model, test.X, cfg.train.eval_batch_size, cfg.train.precision)
        return apply_label_mask(logits, label_mask_of(test)).argmax(1)

    return predict


def cost_fields(model, test: WindowDataset) -> dict:
    """What a coupling costs: trainable parameters and the sequence length the backbone reads."""
    import torch

    counts = model.param_counts()
    sample = torch.from_numpy(np.ascontiguousarray(test.X[:32]))
    tokens = model.tokens_per_window(sample) if hasattr(model, "tokens_per_window") else None
    return {"trainable_params": counts["trainable_params"], "tokens_per_window": tokens}


def result_row(held: str, variant: str, mode: str, budget: str, n: int, m: dict, **extra) -> dict:
    return {"held_out": held, "variant": variant, "mode": mode, "budget": budget, "labelled_windows": n,
            "macro_f1": m["macro_f1"], "accuracy": m["accuracy"], **extra}


def neural_fold(cfg: ExperimentConfig, label: str, vcfg: ExperimentConfig, held: str, target: PreparedDataset,
                shared: list[str], budgets: dict[str, WindowDataset], pool_path: Path, fold_dir: Path,
                unseen: list[str] = ()) -> list[dict]:
    from fedhar.federated.task import get_task

    fcfg = fold_config(vcfg, pool_path, f"{cfg.name}-{held}-{slug(label)}")
    t0 = time.perf_counter()
    state = train_federated(fcfg, fold_dir / slug(label))
    fed_seconds = time.perf_counter() - t0
    task = get_task(fcfg)
    model = task.model
    in_domain = task.evaluate_central(state)
    log.info("[%s | %s] federated: in-domain macro-F1 %.3f (%.0fs)", held, label, in_domain["macro_f1"], fed_seconds)
    model.load_trainable_state(state, where="global state")
    rows = [zero_shot_row(held, label, shared, lambda: evaluate(model, restrict(target.test, shared), cfg.train),
                          seconds=0.0, in_domain_f1=in_domain["macro_f1"], federated_seconds=fed_seconds,
                          update_bytes=model.state_bytes(), **cost_fields(model, target.test))]
    if unseen:
        rows.append(unseen_row(held, label, target.test, list(unseen), model_predict(model, vcfg), seconds=0.0))
    for budget, data in budgets.items():
        for mode in cfg.lodo.modes:
            # The same seed for every variant and mode: the same validation windows and batch order.
            info = adapt(model, state, data, MODES[mode], cfg.train, cfg.lodo.adapt, seed=cfg.seed,
                         desc=f"{held} {label} {mode} {budget}")
            m = evaluate(model, target.test, cfg.train)
            rows.append(result_row(held, label, mode, budget, len(data), m, **row_fields(info)))
            log.info("[%s | %s] %-4s %-5s (%4d windows): macro-F1 %.3f  acc %.3f  (%d steps, %d epochs%s, %.1fs)", held,
                     label, mode, budget, len(data), m["macro_f1"], m["accuracy"], info["steps"], info["epochs"],
                     f", val macro-F1 {info['best_val_f1']:.3f} at epoch {info['best_epoch']}" if info["validation"] else "",
                     info["seconds"])
    return rows


def classical_fold(cfg: ExperimentConfig, held: str, sources: list[PreparedDataset], target: PreparedDataset,
                   shared: list[str], budgets: dict[str, WindowDataset], unseen: list[str] = ()) -> list[dict]:
    K = target.test.num_classes
    src = concat([p.train for p in sources])
    mask_all = np.asarray(target.test.extras["label_mask"][0], dtype=bool)

    def score(model: ClassicalModel, test: WindowDataset, mask: np.ndarray) -> dict:
        pred = apply_label_mask(model.scores(test.X, K), mask[None]).argmax(1)
        return classification_metrics(test.y, pred, K, np.flatnonzero(mask).tolist())

    t0 = time.perf_counter()
    rf = ClassicalModel(cfg.lodo.trees, cfg.seed).fit(src.X, src.y)

    def zero_shot() -> dict:
        zs_test = restrict(target.test, shared)
        return score(rf, zs_test, zs_test.extras["label_mask"][0])

    rows = [zero_shot_row(held, CLASSICAL, shared, zero_shot, seconds=time.perf_counter() - t0)]
    if unseen:
        rows.append(unseen_row(held, CLASSICAL, target.test, list(unseen), lambda test: apply_label_mask(
            rf.scores(test.X, K), mask_all[None]).argmax(1), seconds=0.0))
    for budget, data in budgets.items():
        for mode, X, y in (("target", data.X, data.y),
                           ("source+target", np.concatenate([src.X, data.X]), np.concatenate([src.y, data.y]))):
            t0 = time.perf_counter()
            rf = ClassicalModel(cfg.lodo.trees, cfg.seed).fit(X, y)
            m = score(rf, target.test, mask_all)
            rows.append(result_row(held, CLASSICAL, mode, budget, len(data), m, seconds=time.perf_counter() - t0,
                                   **rf_fields(cfg, len(y))))
    log.info("[%s | %s] zero-shot %s; largest budget: target %.3f, source+target %.3f", held, CLASSICAL,
             "n/a" if rows[0]["macro_f1"] is None else f"{rows[0]['macro_f1']:.3f}", rows[-2]["macro_f1"], rows[-1]["macro_f1"])
    return rows


def without_classes(sources: list[PreparedDataset], classes: list[str]) -> list[PreparedDataset]:
    """``sources`` with the windows of ``classes`` removed and masked out (``lodo.unseen_classes``)."""
    if not classes:
        return sources
    out = []
    for p in sources:
        keep = [c for c in p.classes if c not in classes]
        if len(keep) == len(p.classes):
            out.append(p)
            continue
        out.append(dataclasses.replace(p, train=restrict(p.train, keep), test=restrict(p.test, keep)))
    return out


def budget_seed(cfg: ExperimentConfig) -> int:
    """Seed of the label-budget draws: ``lodo.budget_seed``, or the run's ``seed`` when null, so the
    draws change with the seed and are the same for every variant of one run."""
    return cfg.seed if cfg.lodo.budget_seed is None else cfg.lodo.budget_seed


RF_RULE = ("fixed hyper-parameters, never tuned on the target: {trees} trees, scikit-learn's defaults otherwise "
           "(random_state = the run's seed); trained once on all labelled windows of the budget (the neural models' "
           "training + validation windows), no validation split, no early stopping")


def rf_fields(cfg: ExperimentConfig, n: int) -> dict:
    """What a random-forest results row records of its (fixed) training."""
    return {"trees": cfg.lodo.trees, "train_windows": n, "validation": False, "val_windows": 0, "hyperparameters": "fixed"}


def adaptation_description(cfg: ExperimentConfig) -> dict:
    """``results["adaptation"]``: how every variant's budget is set, the random forest's fixed settings."""
    return {"neural": adaptation_rule(cfg.lodo.adapt), "neural_settings": to_mapping(cfg.lodo.adapt),
            "random_forest": RF_RULE.format(trees=cfg.lodo.trees),
            "random_forest_settings": {"trees": cfg.lodo.trees, "random_state": cfg.seed, "hyperparameters": "fixed"},
            "budget_seed": budget_seed(cfg)}


def run_lodo(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """The whole leave-one-dataset-out study; the folder's results, metrics.csv, report.md and
    f1_vs_budget.png are updated after every finished (held-out, variant), which a resume skips."""
    lcfg = cfg.lodo
    prepared = load_study(cfg, folder)
    space = next(iter(prepared.values())).train.classes
    bad = [c for c in lcfg.unseen_classes if c not in space]
    if bad:
        raise ConfigError(f"`lodo.unseen_classes` names {', '.join(bad)}, not a class of these datasets; the classes "
                          f"are {', '.join(space)}.")
    budgets_spec = [parse_budget(b) for b in lcfg.budgets]
    kept, repeated = lcfg.variant_plan(cfg)
    variants = [(v.label, v.apply(cfg)) for v in kept]
    folder.results["adaptation"] = adaptation_description(cfg)
    folder.results["variants_left_out"] = repeated
    for held in lcfg.held_out_names():
        target = prepared[held]
        sources = without_classes([p for n, p in prepared.items() if n != held], lcfg.unseen_classes)
        source_classes = {c for p in sources for c in p.classes}
        shared = [c for c in target.classes if c in source_classes]
        unseen = [c for c in target.classes if c not in source_classes]
        fold_dir = folder.path / "folds" / held
        fold_dir.mkdir(parents=True, exist_ok=True)
        pool_path = fold_dir / "pool.npz"
        if not pool_path.exists():
            save_npz(pool(sources, name=f"without-{held}"), pool_path)
        budgets = {b.label: b.sample(target.train, seed=budget_seed(cfg)) for b in budgets_spec}
        folder.results.setdefault("folds", {})[held] = {"sources": [p.name for p in sources], "shared_classes": shared,
                                                        "unseen_classes": unseen,
                                                        "budget_windows": {k: len(v) for k, v in budgets.items()}}
        jobs = variants + ([(CLASSICAL, None)] if lcfg.classical else [])
        jobs += [(TEXT_ZERO_SHOT, "text")] if lcfg.text_zero_shot.enabled else []
        for label, vcfg in jobs:
            if folder.done(held, label):
                continue
            if vcfg is None:
                rows = classical_fold(cfg, held, sources, target, shared, budgets, unseen)
            elif vcfg == "text":
                from fedhar.transfer.text_lodo import text_zero_shot_rows

                rows = text_zero_shot_rows(cfg, held, target, shared, unseen)
            else:
                rows = neural_fold(cfg, label, vcfg, held, target, shared, budgets, pool_path, fold_dir, unseen)
            finish_cell(folder, held, label, rows)
    return complete(folder)


def load_study(cfg: ExperimentConfig, folder: RunFolder) -> dict[str, PreparedDataset]:
    """Every dataset on the common footing, described in the folder's results."""
    lcfg = cfg.lodo
    prepared = load_prepared(lcfg.datasets, rate_hz=lcfg.rate_hz, window=lcfg.window, sensors=lcfg.sensors,
                             max_windows=lcfg.max_windows, seed=cfg.seed, root=cfg.data.root)
    folder.results.update(kind="lodo", protocol=lcfg.protocol, datasets={
        n: {"train": len(p.train), "test": len(p.test), "sensors": list(p.sensors), "classes": p.classes}
        for n, p in prepared.items()})
    folder.results.setdefault("rows", [])
    return prepared


def finish_cell(folder: RunFolder, held: str, label: str, rows: list[dict]) -> None:
    """Add a finished (held-out dataset, variant) and rewrite the outputs, so a resume skips it."""
    from fedhar.transfer.report import write_lodo_outputs

    folder.results["rows"] += rows
    folder.record(held, label)
    write_lodo_outputs(folder)


def complete(folder: RunFolder) -> dict:
    from fedhar.transfer.report import write_lodo_outputs

    write_lodo_outputs(folder)
    return folder.complete()
