"""Every study fedhar runs, by name: ``fedhar study NAME --config C [--out D] [--resume] [--force]``.

A study is a function ``run(cfg, folder, **options) -> results`` over an opened
:class:`~fedhar.reporting.RunFolder`; the folder owns resume, result files and the run's status,
so a study only computes its cells and writes its report. ``train``, ``pretrain`` and
``simulate`` are studies too, so every run folder has one lifecycle. Studies import lazily:
naming one never loads the others' dependencies, and listing them loads none.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

from fedhar.checks import run_checks
from fedhar.config import ExperimentConfig, derive
from fedhar.registry import Registry
from fedhar.reporting.seeds import SeedTable


def _load(spec: str) -> Callable[..., Any]:
    module, fn = spec.split(":")
    return getattr(importlib.import_module(module), fn)


@dataclass(frozen=True)
class Study:
    """A registered study: what it is, and where its runner lives (``module:function``)."""

    help: str
    target: str
    select: Callable[[ExperimentConfig], str | None] | None = None
    """Picks another ``module:function`` from the config (e.g. a protocol), or None for ``target``."""
    prepare: str | None = None
    """``module:function(cfg, path) -> cfg`` that fills defaults which depend on the run folder
    before the folder is opened, so the saved config (compared on resume) already holds them."""
    rows: str = "fedhar.studies.rows:final_rows"
    """``module:function(results) -> rows``: a finished run's results as flat rows (seeds, compare)."""
    table: SeedTable = SeedTable()
    """Which row columns name a cell, what is compared, per which group, over which units."""
    own_seeds: bool = False
    """The runner reads ``seeds`` itself (a study of studies); otherwise each seed is one run."""
    summary: str | None = None
    """``module:function(rows_by_seed, cfg) -> markdown`` added to the multi-seed report (e.g. per-unit paired tests)."""

    def prepared(self, cfg: ExperimentConfig, path: Any) -> ExperimentConfig:
        """``cfg`` with the defaults that depend on the run folder filled in (see ``prepare``)."""
        return _load(self.prepare)(cfg, path) if self.prepare else cfg

    def seed_rows(self, results: dict) -> list[dict]:
        return _load(self.rows)(results)

    def summarize(self, rows_by_seed: dict, cfg: ExperimentConfig) -> str:
        """The study's own addition to the multi-seed report (``summary``), or ``""``."""
        return _load(self.summary)(rows_by_seed, cfg) if self.summary else ""

    def runner(self, cfg: ExperimentConfig) -> Callable[..., dict]:
        return _load((self.select(cfg) if self.select else None) or self.target)


STUDIES: Registry[Study] = Registry("study")
STUDIES.register("train", Study("central training and evaluation (fedhar train)", "fedhar.training.central:run_central"))
STUDIES.register("pretrain", Study("masked-autoencoder pretraining (pretrain.*; fedhar pretrain)", "fedhar.training.pretrain:run_pretrain",
                                   rows="fedhar.studies.rows:pretrain_rows", table=SeedTable(metric="test_loss", higher_is_better=False)))
STUDIES.register("simulate", Study("one federated run on Flower (federated.*; fedhar simulate)", "fedhar.federated.run:run_in_folder",
                                   prepare="fedhar.federated.run:with_state_dir"))
STUDIES.register("cross_dataset", Study(
    "leave-one-dataset-out federated rounds with zero-/few-shot adaptation (lodo.*)", "fedhar.transfer.lodo:run_lodo",
    lambda cfg: "fedhar.transfer.mae_lodo:run_mae_lodo" if cfg.lodo.protocol == "mae" else None,
    rows="fedhar.studies.rows:table_rows",
    table=SeedTable(keys=("held_out", "variant", "mode", "budget"), variant=("variant", "mode"), groups=("budget",),
                    units=("held_out",))))
STUDIES.register("llm_couplings", Study(
    "language couplings screened, then the best confirmed over seeds against their random-init twins and the "
    "baselines (couplings.*, lodo.*)", "fedhar.studies.couplings:run_couplings", own_seeds=True))
STUDIES.register("robustness", Study(
    "federated runs under attack per aggregation rule, and against the privacy budget epsilon (robustness.*, "
    "federated.attack, federated.privacy)", "fedhar.studies.robustness:run_robustness", own_seeds=True))
STUDIES.register("devices", Study(
    "fleets of device tiers (ranks, depths, availability, deadline) per LoRA aggregation rule: global and per-tier "
    "macro-F1, bytes, simulated time (devices.*, federated.tiers)", "fedhar.studies.devices:run_devices", own_seeds=True))
STUDIES.register("personalization", Study(
    "federated model, then on-device personalisation per client (personalization.*)",
    "fedhar.transfer.personalize:run_personalization", rows="fedhar.studies.rows:personalization_rows",
    table=SeedTable(keys=("client", "strategy"), variant=("strategy",), units=("client",), metric="personal_f1")))
STUDIES.register("continual", Study(
    "continual adaptation over a drift scenario, central or federated (continual.*)", "fedhar.continual.experiment:run_continual",
    lambda cfg: "fedhar.continual.federated:run_continual_federated" if cfg.continual.mode == "federated" else None,
    rows="fedhar.studies.rows:continual_rows", table=SeedTable(keys=("model", "strategy"), variant=("model", "strategy"), metric="acc")))
STUDIES.register("sweep", Study("one config key swept over values, per model variant (sweep.*)", "fedhar.training.sweep:run_sweep",
                                rows="fedhar.studies.rows:table_rows",
                                table=SeedTable(keys=("variant", "value"), variant=("variant",), groups=("value",))))
STUDIES.register("smarthome", Study(
    "smart-home event text per home, or homes as federated clients (smarthome.*)", "fedhar.smarthome.study:run_smarthome",
    lambda cfg: "fedhar.smarthome.federated:run_smarthome_federated" if cfg.smarthome.mode == "federated" else None,
    rows="fedhar.studies.rows:smarthome_rows", table=SeedTable(keys=("home", "model"), variant=("model",), units=("home",)),
    summary="fedhar.smarthome.federated:seed_summary"))
STUDIES.register("distill", Study("teacher -> student distillation on sensor windows (distill.*)", "fedhar.distill.study:run_distill_study",
                                  rows="fedhar.studies.rows:distill_rows", table=SeedTable(keys=("model",), variant=("model",))))


def run_study(name: str, cfg: ExperimentConfig, out: str | None = None, resume: bool = False, force: bool = False,
              **options: Any) -> dict:
    """Open the run folder, run the study in it (marked failed if it raises), return its results.

    ``options`` go to the runner as keywords (``engine`` and ``supernodes`` for ``simulate``: the
    config is re-partitioned into ``supernodes`` clients here, before any folder opens, so its
    config.yaml, and every seed's, holds the count the run uses)."""
    from fedhar.reporting import run_path

    study = STUDIES.get(name, "fedhar study")
    run_checks(cfg, name)
    path = run_path(out, cfg.name)
    cfg = with_data_root(cfg, path if resume else None)
    if name == "simulate" and options.get("supernodes") is not None:
        from fedhar.federated.run import with_supernodes

        cfg, options["clients_before"] = with_supernodes(cfg, options["supernodes"])
    if cfg.seeds is not None and not study.own_seeds:
        from fedhar.studies.seeds import run_seeds

        return run_seeds(name, study, cfg, path, resume=resume, force=force, **options)
    return run_one(name, study, cfg, path, resume=resume, force=force, **options)


def with_data_root(cfg: ExperimentConfig, resumed: Any = None) -> ExperimentConfig:
    """``cfg`` with ``data.root`` set to the absolute folder its dataset name resolves in, when the
    config leaves it to $FEDHAR_DATA_DIR: config.yaml then records the data the run read. Synthetic
    data and file paths keep it as is; so does the resumed run folder ``resumed`` whose saved config
    left it null (it was started that way, and a resume must compare equal)."""
    from fedhar.data.sources import KNOWN_SOURCES, resolve_source
    from fedhar.exceptions import FedharError

    if cfg.data.root is not None or cfg.data.source not in KNOWN_SOURCES:
        return cfg
    if resumed is not None and _saved_root_left_null(resumed):
        return cfg
    try:
        found = Path(resolve_source(cfg.data.source))
    except FedharError:
        return cfg  # loading the data names the problem
    for name in KNOWN_SOURCES[cfg.data.source]:
        root = found.parents[len(Path(name).parts) - 1]
        if root / name == found:
            return derive(cfg, {"data.root": str(root.resolve())}, source="the data folder found for `data.source`")
    return cfg


def _saved_root_left_null(path: Any) -> bool:
    from fedhar.config import load_config
    from fedhar.reporting import RunFolder

    saved = Path(path) / RunFolder.CONFIG
    return saved.exists() and load_config(saved).data.root is None


def run_one(name: str, study: Study, cfg: ExperimentConfig, path: Any, resume: bool = False, force: bool = False,
            **options: Any) -> dict:
    """One run of ``study`` in the folder ``path`` (``prepare`` first), marked failed if it raises."""
    from fedhar.reporting import RunFolder

    cfg = study.prepared(cfg, path)
    runner = study.runner(cfg)
    with RunFolder.open(cfg, path, resume=resume, force=force, kind=name) as folder:
        return runner(cfg, folder, **options)
