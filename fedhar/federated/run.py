"""``fedhar simulate``: one federated run in a :class:`~fedhar.reporting.RunFolder`, on Flower's
Simulation Engine (Ray) or a real local Deployment Engine, then the per-round table.

The ServerApp writes ``results.json`` and a checkpoint into the folder after every round; the
folder adds the run's status. Ray's processes carry the run folder in their environment, so those
that outlive a killed session (Ray's agents do) are ended when the run resumes, and when it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from fedhar.checks import run_checks
from fedhar.config import ExperimentConfig, derive
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.deployment.processes import TAG_ENV_VAR, tagged_processes
from fedhar.federated.results import format_table
from fedhar.reporting import RunFolder, run_path

log = logging.getLogger(__name__)

FLOWER_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
              "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def with_state_dir(cfg: ExperimentConfig, path: str | Path) -> ExperimentConfig:
    """Personal parts (FedPer's head) live in ``<run>/clients`` unless the config names a folder;
    set before the folder opens, so the saved config holds it and a resume compares equal."""
    if cfg.federated.personal_parts and not cfg.federated.state_dir:
        return derive(cfg, {"federated.state_dir": str((Path(path) / "clients").resolve())}, source="run folder")
    return cfg


def with_supernodes(cfg: ExperimentConfig, supernodes: int | None) -> tuple[ExperimentConfig, int | None]:
    """``cfg`` re-partitioned into ``supernodes`` clients (``--supernodes N``: one client per SuperNode),
    and the client count it had; the same ``cfg`` when N is None or already its count."""
    from fedhar.federated.task import get_task

    if supernodes is None:
        return cfg, None
    if supernodes < 1:
        raise ConfigError(f"--supernodes must be at least 1; got {supernodes}.")
    have = get_task(cfg).num_clients
    if have == supernodes:
        return cfg, have
    fitted = derive(cfg, {"federated.num_clients": supernodes}, source="--supernodes")
    if (got := get_task(fitted).num_clients) != supernodes:
        raise ConfigError(f"--supernodes {supernodes}: `federated.num_clients: {supernodes}` yields {got} clients "
                          f"with `federated.partition: {cfg.federated.partition}`; choose --supernodes {have}.")
    return fitted, have


def repartition_warning(supernodes: int, clients: int) -> str:
    return f"--supernodes {supernodes} re-partitions the config's {clients} clients into {supernodes}"


def run_federated(cfg: ExperimentConfig, out: str | None = None, resume: str | None = None, force: bool = False,
                  engine: str = "simulation", supernodes: int | None = None) -> dict:
    """A federated run in the new folder ``out``, or the continuation of the run folder ``resume``;
    for studies that run federations in folders of their own (the CLI goes through ``fedhar.studies``)."""
    run_checks(cfg, "simulate")
    _check_secure_aggregation(cfg, engine)
    cfg, clients = with_supernodes(cfg, supernodes)
    path = Path(resume) if resume else run_path(out, cfg.name)
    cfg = with_state_dir(cfg, path)
    with RunFolder.open(cfg, path, resume=bool(resume), force=force, kind="simulate") as folder:
        return run_in_folder(cfg, folder, engine=engine, supernodes=supernodes, clients_before=clients)


def run_in_folder(cfg: ExperimentConfig, folder: RunFolder, engine: str = "simulation", supernodes: int | None = None,
                  clients_before: int | None = None) -> dict:
    """The ``simulate`` study: run (or continue) the federation, print the table, return the results.

    ``cfg`` is already re-partitioned for ``supernodes`` (:func:`with_supernodes`, before the folder
    opened, so its config.yaml holds it); ``clients_before`` is the count it had, named in a warning."""
    for k, v in FLOWER_ENV.items():
        os.environ.setdefault(k, v)
    from fedhar.federated.task import get_task

    run_dir, num_clients = folder.path, get_task(cfg).num_clients
    if supernodes is not None and clients_before is not None and clients_before != supernodes:
        folder.warn(repartition_warning(supernodes, clients_before))
    _check_secure_aggregation(cfg, engine, get_task(cfg))
    log.info("%s: %d clients, %d rounds, strategy %s, engine %s -> %s", cfg.name, num_clients, cfg.federated.rounds,
             cfg.federated.strategy.name, engine, run_dir)
    try:
        if engine == "simulation":
            _simulation_engine(cfg, run_dir, num_clients, folder.resumed)
        else:
            _deployment_engine(run_dir, num_clients, folder.resumed)
    finally:  # the ServerApp rewrote results.json each round (keeping the folder's warnings): carry it on
        folder.results.update(json.loads((run_dir / RunFolder.RESULTS).read_text()))
    if not folder.results.get("rounds") or not folder.results.get("complete"):
        raise FederationError(f"the federated run stopped before its last round; resume it with --resume {run_dir}.")
    never_aggregated(folder.results["rounds"])
    results = folder.complete()
    print("\n" + format_table(results))
    print(f"\nrun folder: {run_dir}  (results.json, metrics.csv, model/, rounds.png, bytes.png, confusion_matrix.png)")
    return results


def never_aggregated(rounds: list[dict]) -> None:
    """A federation in which every round left the global model unchanged (every reply failed) is
    a failed run, not a finished one: its model is the initial one."""
    if rounds and all(not r.get("clients") for r in rounds):
        reasons = [why for r in rounds for why in r.get("failure_reasons") or []]
        raise FederationError(f"no round of the federation aggregated a valid update, so the global model never "
                              f"changed; first failure: {reasons[0] if reasons else 'no client replied'}")


def _simulation_engine(cfg: ExperimentConfig, run_dir: Path, num_clients: int, resume: bool) -> None:
    from flwr.simulation import run_simulation

    if cfg.federated.secure_aggregation == "secaggplus":  # Flower's SecAgg+ lives on its legacy workflow path
        from fedhar.federated.secagg import client_app
        from fedhar.federated.secagg import make_secagg_server_app as make_server_app
    else:
        from fedhar.federated.client_app import app as client_app
        from fedhar.federated.server_app import make_server_app

    tag = f"simulate:{run_dir.resolve()}"
    _end(tagged_processes(tag), "left by an earlier session of this run")
    os.environ[TAG_ENV_VAR] = tag  # Ray's processes inherit it
    backend = {"client_resources": {"num_cpus": cfg.federated.client_cpus, "num_gpus": 0.0},
               "init_args": {"num_cpus": cfg.federated.backend_cpus, "include_dashboard": False}}
    try:
        run_simulation(server_app=make_server_app(cfg, run_dir, resume=resume), client_app=client_app,
                       num_supernodes=num_clients, backend_config=backend)
    finally:
        import ray

        ray.shutdown()
        os.environ.pop(TAG_ENV_VAR, None)
        # Ray routinely leaves its actors behind after shutdown: housekeeping, not news
        _end(tagged_processes(tag), "still running after Ray shut down", logging.DEBUG)


def _check_secure_aggregation(cfg: ExperimentConfig, engine: str, task=None) -> None:
    """SecAgg+'s refusals (robust rules, server-side DP, the Deployment Engine ...) before anything runs."""
    if cfg.federated.secure_aggregation != "none":
        from fedhar.federated.secagg import check_secagg

        check_secagg(cfg, engine, task)


def _end(pids: list[int], why: str, level: int = logging.WARNING) -> None:
    if pids:
        log.log(level, "ending %d Ray process(es) %s: %s", len(pids), why, pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _deployment_engine(run_dir: Path, num_clients: int, resume: bool) -> None:
    from fedhar.federated.deployment import run_deployment

    app_dir = Path(__file__).resolve().parents[2]
    if not (app_dir / "pyproject.toml").exists():
        raise FederationError(f"--engine deployment needs the fedhar app folder with pyproject.toml; not found at {app_dir}.")
    run_deployment(
        app_dir, supernodes=num_clients,
        node_configs=[{"partition-id": i, "num-partitions": num_clients} for i in range(num_clients)],
        run_config={"config-file": str((run_dir / RunFolder.CONFIG).resolve()), "run-dir": str(run_dir.resolve()),
                    "resume": resume},
        workdir=run_dir / "deployment", env=FLOWER_ENV,
    )
