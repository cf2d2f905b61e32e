"""fedhar's Flower ServerApp: Flower's strategy loop, plus central evaluation, checkpoints and
result files each round.

Two entry points share :func:`run_server`: the module-level ``app`` for ``flwr run .`` (config
resolved once from ``context.run_config``) and :func:`make_server_app` for ``fedhar simulate``
(config object passed in directly). Either way the clients get the config from the messages
(:func:`~fedhar.federated.client_app.config_record`).

Under central differential privacy with ``max_epsilon``, Flower refuses to configure a round that
would pass the budget (``PrivacyBudgetExhausted``); the run then ends there like a finished one,
its last round's checkpoint, results and model written, and results.json says why it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.exception import PrivacyBudgetExhausted

from fedhar.config import ExperimentConfig, config_to_dict, derive, load_config
from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.attacks import attackers
from fedhar.federated.checkpoint import load_checkpoint, save_checkpoint
from fedhar.federated.client_app import CONFIG_KEY, config_record
from fedhar.federated.privacy import load_privacy_state, privacy_state
from fedhar.federated.results import write_federated_results
from fedhar.federated.strategy import RoundRecorder, load_strategy_state, make_strategy, strategy_state
from fedhar.federated.task import get_task, pooled_normaliser

log = logging.getLogger(__name__)


def _nodes(grid: Grid, min_nodes: int, timeout: float = 600) -> list[int]:
    """The connected node ids, once at least ``min_nodes`` are there and none joined since the last poll."""
    deadline, before = time.monotonic() + timeout, None
    while (node_ids := sorted(grid.get_node_ids())) != before or len(node_ids) < min_nodes:
        if time.monotonic() > deadline:
            raise FederationError(f"only {len(node_ids)} of {min_nodes} nodes connected within {timeout:.0f}s; start more "
                                  f'SuperNodes (simulation runtime: --federation-config "num-supernodes={min_nodes}").')
        before = node_ids
        time.sleep(0.5)
    return node_ids


def _query_stats(grid: Grid, config: ConfigRecord, min_nodes: int, timeout: float = 600) -> tuple[dict[int, int], list]:
    """Ask every node for its partition id and per-channel sums: (node id -> partition id, the
    clients' [count, sum, sumsq] in partition order, ready for :func:`pooled_normaliser`)."""
    msgs = [Message(content=RecordDict({"config": config}), message_type="query.stats", dst_node_id=n)
            for n in _nodes(grid, min_nodes, timeout)]
    replies = list(grid.send_and_receive(msgs, timeout=timeout))
    ok = sorted((r for r in replies if not r.has_error()), key=lambda r: int(r.content["metrics"]["partition-id"]))
    if not ok:
        why = next((r.error.reason for r in replies if r.has_error()), "no reply")
        raise FederationError(f"no client answered the normalisation-statistics query; first error: {why}")
    partitions = {int(r.metadata.src_node_id): int(r.content["metrics"]["partition-id"]) for r in ok}
    return partitions, [r.content["stats"].to_numpy_ndarrays() for r in ok]


def run_server(grid: Grid, cfg: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    run_dir = Path(run_dir)
    task = get_task(cfg)
    fcfg = cfg.federated
    config = config_record(cfg)
    initial = task.initial_state()
    template = {k: tuple(v.shape) for k, v in initial.items()}  # every valid update has these
    ckpt = load_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        state, offset, recorder = ckpt.global_state, ckpt.round, RoundRecorder(ckpt.rounds)
        log.info("resuming %s after round %d of %d", run_dir, offset, fcfg.rounds)
    else:
        state, offset, recorder = initial, 0, RoundRecorder()
    # Every run (a resumed one too) learns which node serves which partition, so that seeded node
    # sampling picks the same clients whatever ids the nodes got; a fresh run also pools the normaliser.
    partitions, stats = _query_stats(grid, config, min(fcfg.min_available_clients, task.num_clients))
    if ckpt is None and "normalizer.mean" in state:  # text models have no normaliser
        mean, std = pooled_normaliser([{"count": c, "sum": s, "sumsq": sq} for c, s, sq in stats])
        state["normalizer.mean"] = torch.as_tensor(mean, dtype=torch.float32)
        state["normalizer.std"] = torch.as_tensor(std, dtype=torch.float32)
    remaining = fcfg.rounds - offset
    strategy = make_strategy(fcfg, task.num_clients)
    distiller = None
    if fcfg.distill.enabled:
        from fedhar.federated.distill import ServerDistiller

        distiller = ServerDistiller(fcfg.distill, task, cfg.seed, cache_dir=run_dir / "distill")
    strategy.setup(recorder, template, offset, cfg.seed, distiller, client_config=config, partitions=partitions)
    if task.fleet is not None:
        strategy.use_fleet(task.fleet, fcfg)
    if ckpt is not None:
        load_strategy_state(strategy, ckpt.strategy_state, ArrayRecord(state))
        load_privacy_state(strategy, ckpt.privacy_state, ckpt.round)

    last_confusion: dict[str, list] = {}

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        rnd = server_round + offset
        if server_round == 0 and offset:
            return None  # already evaluated before the interruption
        m = task.evaluate_central(arrays.to_torch_state_dict())
        last_confusion["matrix"] = m["confusion"]
        row = recorder.row(rnd)
        row.update(accuracy=m["accuracy"], macro_f1=m["macro_f1"], loss=m["loss"])
        if rnd > 0:
            if fcfg.attack.kind != "none":  # the clients draw the same ids from the run seed (attacks.attackers)
                row["attackers"] = attackers(fcfg, cfg.seed, task.num_clients, rnd)
            recorder.finish(rnd)
            save_checkpoint(run_dir, rnd, arrays.to_torch_state_dict(), strategy_state(strategy),
                            [recorder.rows[r] for r in sorted(recorder.rows)], privacy_state=privacy_state(strategy))
            write_federated_results(run_dir, cfg, task, recorder, final=False, confusion=m["confusion"],
                                    strategy=strategy)
            log.info("round %d/%d: central acc %.4f macro-F1 %.4f | clients %d failures %d | up %.2f MB down %.2f MB | %.1fs",
                     rnd, fcfg.rounds, m["accuracy"], m["macro_f1"], row.get("clients", 0), row.get("failures", 0),
                     row.get("bytes_up", 0) / 1e6, row.get("bytes_down", 0) / 1e6, row.get("seconds", 0.0))
        return MetricRecord({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})

    if remaining > 0:  # the strategy adds the config to each message; Flower's banner shows only this note
        banner = ConfigRecord({CONFIG_KEY: f"<{run_dir / 'config.yaml'}, added to each message>"})
        try:
            strategy.start(grid=grid, initial_arrays=ArrayRecord(state), num_rounds=remaining,
                           train_config=banner, evaluate_config=ConfigRecord(dict(banner)),
                           evaluate_fn=evaluate_fn)
        except PrivacyBudgetExhausted:  # raised before the round sent anything: the last round is saved
            log.warning("privacy budget: %s The run ends here.", strategy.stopped_by_budget)
    else:
        log.info("%s already finished all %d rounds.", run_dir, fcfg.rounds)
    confusion = last_confusion.get("matrix")
    if (last := load_checkpoint(run_dir)) is not None:  # the final global state
        if confusion is None:  # nothing left to run
            confusion = task.evaluate_central(last.global_state)["confusion"]
        log.info("final global model saved in %s", task.save_global_model(last.global_state, run_dir / "model"))
    write_federated_results(run_dir, cfg, task, recorder, final=True, confusion=confusion, strategy=strategy)


def make_server_app(cfg: ExperimentConfig, run_dir: Path, resume: bool = False) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, cfg, run_dir, resume)

    return server


def fit_to_federation(cfg: ExperimentConfig, nodes: int) -> ExperimentConfig:
    """One client per node: a config that leaves ``federated.num_clients`` open is cut into ``nodes``
    clients; one that fixes another count, or has fewer units than nodes, is refused with the fix."""
    if (have := get_task(cfg).num_clients) == nodes:
        return cfg
    fix = (f'run `flwr run . --federation-config "num-supernodes={have}"` (or start {have} SuperNodes), '
           f"or set `federated.num_clients` in the `overrides` run-config key")
    if cfg.federated.num_clients is None:
        with contextlib.suppress(ConfigError):  # a config that cannot be regrouped so is refused below
            fitted = derive(cfg, {"federated.num_clients": nodes}, source="the federation's node count")
            if get_task(fitted).num_clients == nodes:
                log.info("%d nodes: the config's %d clients are regrouped into %d.", nodes, have, nodes)
                return fitted
    raise FederationError(f"the federation has {nodes} nodes but the config yields {have} clients; {fix}.")


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """``flwr run .`` entry. The run config declares ``config-file`` (relative paths resolve against
    the app folder), ``overrides`` (``"federated.rounds=3 train.lr=1e-3"``, parsed like ``--set``),
    ``run-dir`` and ``resume``; e.g. ``--run-config 'overrides="federated.rounds=3"'``."""
    rc = context.run_config
    path = Path(str(rc["config-file"]))
    if not path.is_absolute() and not path.exists():
        import fedhar  # the FAB ships configs/ next to fedhar/

        path = Path(fedhar.__file__).resolve().parents[1] / path
    cfg = load_config(path, str(rc["overrides"]))
    if cfg.seeds is not None:
        raise ConfigError(f"{path}: `seeds` {cfg.seeds} asks for one run per seed, and `flwr run` runs one federation; "
                          "set `seed` instead, or run the seeds with `fedhar simulate --seeds ...`.")
    cfg = fit_to_federation(cfg, len(_nodes(grid, cfg.federated.min_available_clients)))
    run_dir = Path(str(rc["run-dir"]) or f"runs/flwr-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    log.info("run folder: %s", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        from fedhar.reporting import write_config

        write_config(run_dir, config_to_dict(cfg))
    run_server(grid, cfg, run_dir, bool(rc["resume"]))
