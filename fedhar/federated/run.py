"""``fedhar simulate``: run the ServerApp/ClientApp on Flower's Simulation Engine (Ray) or on a
real local Deployment Engine, then print the per-round table."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

from fedhar.config import ExperimentConfig, config_to_dict, load_config
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.results import format_table
from fedhar.reporting import prepare_run_dir, write_config

log = logging.getLogger(__name__)

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _resume_config(cfg: ExperimentConfig, run_dir: Path) -> ExperimentConfig:
    """The saved config of ``run_dir``; the given one may only change ``federated.rounds``."""
    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise FederationError(f"--resume {run_dir}: no config.yaml there; is it a fedhar run folder?")
    saved = load_config(saved_path)
    a, b = config_to_dict(saved), config_to_dict(cfg)
    a["federated"]["rounds"] = b["federated"]["rounds"]
    if a != b:
        diff = [k for k in a if a[k] != b[k]]
        raise ConfigError(f"--resume {run_dir}: the given config differs from the run's saved config in "
                          f"{', '.join(f'`{k}`' for k in diff)}; only `federated.rounds` may change on resume.")
    saved.federated.rounds = cfg.federated.rounds
    return saved


def run_federated(cfg: ExperimentConfig, out: str | None = None, resume: str | None = None, engine: str = "simulation",
                  supernodes: int | None = None, config_path: str | None = None, overrides: Sequence[str] = ()) -> dict:
    for k, v in FLOWER_ENV.items():
        os.environ.setdefault(k, v)
    if supernodes is not None:
        if supernodes < 1:
            raise ConfigError(f"--supernodes must be at least 1; got {supernodes}.")
        cfg.federated.num_clients = supernodes
    if resume:
        run_dir = Path(resume)
        cfg = _resume_config(cfg, run_dir)
    else:
        run_dir = prepare_run_dir(out, cfg.name)
        if cfg.federated.personal_parts and not cfg.federated.state_dir:
            cfg.federated.state_dir = str((run_dir / "clients").resolve())
        write_config(run_dir, config_to_dict(cfg))

    from fedhar.federated.task import get_task

    num_clients = get_task(cfg).num_clients
    log.info("%s: %d clients, %d rounds, strategy %s, engine %s -> %s", cfg.name, num_clients, cfg.federated.rounds,
             cfg.federated.strategy.name, engine, run_dir)
    if engine == "simulation":
        from flwr.simulation import run_simulation

        from fedhar.federated.client_app import app as client_app
        from fedhar.federated.server_app import make_server_app

        backend = {"client_resources": {"num_cpus": cfg.federated.client_cpus, "num_gpus": 0.0},
                   "init_args": {"num_cpus": cfg.federated.backend_cpus, "include_dashboard": False}}
        run_simulation(server_app=make_server_app(cfg, run_dir, resume=bool(resume)), client_app=client_app,
                       num_supernodes=num_clients, backend_config=backend)
    else:
        from fedhar.federated.deployment import run_deployment

        app_dir = Path(__file__).resolve().parents[2]
        if not (app_dir / "pyproject.toml").exists():
            raise FederationError(f"--engine deployment needs the fedhar app folder with pyproject.toml; not found at {app_dir}.")
        run_deployment(
            app_dir, supernodes=num_clients,
            node_configs=[{"partition-id": i, "num-partitions": num_clients} for i in range(num_clients)],
            run_config={"config-file": str((run_dir / "config.yaml").resolve()), "run-dir": str(run_dir.resolve()),
                        "resume": bool(resume)},
            workdir=run_dir / "deployment", env=FLOWER_ENV,
        )
    results_path = run_dir / "results.json"
    if not results_path.exists():
        raise FederationError(f"the federated run finished without writing {results_path}; see the log above.")
    results = json.loads(results_path.read_text())
    if not results.get("complete"):
        raise FederationError(f"the federated run stopped before its last round; resume it with --resume {run_dir}.")
    print("\n" + format_table(results))
    print(f"\nrun folder: {run_dir}  (results.json, metrics.csv, rounds.png, bytes_per_round.png)")
    return results
