"""fedhar's Flower ServerApp: Flower's strategy loop, plus central evaluation, checkpoints and
result files each round.

Two entry points share :func:`run_server`: the module-level ``app`` for ``flwr run .`` (config
from ``context.run_config``) and :func:`make_server_app` for ``fedhar simulate`` (config object
passed in directly).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

from fedhar.config import ExperimentConfig, config_to_dict
from fedhar.exceptions import FederationError
from fedhar.federated.checkpoint import load_checkpoint, save_checkpoint
from fedhar.federated.client_app import CONFIG_KEY
from fedhar.federated.results import write_federated_results
from fedhar.federated.strategy import RoundRecorder, load_strategy_state, make_strategy, strategy_state
from fedhar.federated.task import get_task, pooled_normaliser

log = logging.getLogger(__name__)


def _query_stats(grid: Grid, cfg_text: str, min_nodes: int, timeout: float = 600) -> tuple[np.ndarray, np.ndarray]:
    """Ask every node for per-channel sums and pool them into the global normaliser."""
    t0 = time.time()
    while len(node_ids := sorted(grid.get_node_ids())) < min_nodes:
        if time.time() - t0 > timeout:
            raise FederationError(f"only {len(node_ids)} of {min_nodes} nodes connected within {timeout:.0f}s.")
        time.sleep(1)
    msgs = [Message(content=RecordDict({"config": ConfigRecord({CONFIG_KEY: cfg_text})}),
                    message_type="query.stats", dst_node_id=n) for n in node_ids]
    replies = [r for r in grid.send_and_receive(msgs, timeout=timeout) if not r.has_error()]
    if not replies:
        raise FederationError("no client answered the normalisation-statistics query.")
    stats = []
    for r in replies:
        count, s, sq = r.content["stats"].to_numpy_ndarrays()
        stats.append({"count": count, "sum": s, "sumsq": sq})
    return pooled_normaliser(stats)


def run_server(grid: Grid, cfg: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    run_dir = Path(run_dir)
    task = get_task(cfg)
    fcfg = cfg.federated
    cfg_text = yaml.safe_dump(config_to_dict(cfg), sort_keys=True)
    initial = task.initial_state()
    template = {k: tuple(v.shape) for k, v in initial.items()}  # every valid update has these
    ckpt = load_checkpoint(run_dir) if resume else None
    if ckpt is not None:
        state, offset, recorder = ckpt.global_state, ckpt.round, RoundRecorder(ckpt.rounds)
        log.info("resuming %s after round %d of %d", run_dir, offset, fcfg.rounds)
    else:
        state, offset, recorder = initial, 0, RoundRecorder()
        if "normalizer.mean" in state:  # text models have no normaliser
            mean, std = _query_stats(grid, cfg_text, min(fcfg.min_available_clients, task.num_clients))
            state["normalizer.mean"] = torch.as_tensor(mean, dtype=torch.float32)
            state["normalizer.std"] = torch.as_tensor(std, dtype=torch.float32)
    remaining = fcfg.rounds - offset
    strategy = make_strategy(fcfg, task.num_clients)
    distiller = None
    if fcfg.distill.enabled:
        from fedhar.federated.distill import ServerDistiller

        distiller = ServerDistiller(fcfg.distill, task, cfg.seed, cache_dir=run_dir / "distill")
    strategy.setup(recorder, template, offset, cfg.seed, distiller)
    if ckpt is not None:
        load_strategy_state(strategy, ckpt.strategy_state, ArrayRecord(state))

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
            recorder.finish(rnd)
            save_checkpoint(run_dir, rnd, arrays.to_torch_state_dict(), strategy_state(strategy),
                            [recorder.rows[r] for r in sorted(recorder.rows)])
            write_federated_results(run_dir, cfg, task, recorder, final=False, confusion=m["confusion"])
            log.info("round %d/%d: central acc %.4f macro-F1 %.4f | clients %d failures %d | up %.2f MB down %.2f MB | %.1fs",
                     rnd, fcfg.rounds, m["accuracy"], m["macro_f1"], row.get("clients", 0), row.get("failures", 0),
                     row.get("bytes_up", 0) / 1e6, row.get("bytes_down", 0) / 1e6, row.get("seconds", 0.0))
        return MetricRecord({"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})

    if remaining > 0:
        config = ConfigRecord({CONFIG_KEY: cfg_text})
        strategy.start(grid=grid, initial_arrays=ArrayRecord(state), num_rounds=remaining,
                       train_config=config, evaluate_config=ConfigRecord(dict(config)),
                       evaluate_fn=evaluate_fn)
    else:
        log.info("%s already finished all %d rounds.", run_dir, fcfg.rounds)
    confusion = last_confusion.get("matrix")
    if confusion is None and (last := load_checkpoint(run_dir)) is not None:  # nothing left to run
        confusion = task.evaluate_central(last.global_state)["confusion"]
    write_federated_results(run_dir, cfg, task, recorder, final=True, confusion=confusion)


def make_server_app(cfg: ExperimentConfig, run_dir: Path, resume: bool = False) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, cfg, run_dir, resume)

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """``flwr run .`` entry: ``config-file``, ``run-dir`` and ``resume`` come from the run config;
    any other dotted key overrides the YAML (e.g. ``--run-config 'federated.rounds=3'``)."""
    from fedhar.config import load_config

    rc = dict(context.run_config)
    config_file = str(rc.pop("config-file", "configs/smoke.yaml"))
    run_dir = Path(str(rc.pop("run-dir", "")) or f"runs/flwr-{time.strftime('%Y%m%d-%H%M%S')}")
    resume = bool(rc.pop("resume", False))
    overrides = [f"{k.replace('-', '_')}={v}" for k, v in rc.items()]
    path = Path(config_file)
    if not path.is_absolute() and not path.exists():
        # Relative to the app folder (the FAB ships configs/ next to fedhar/).
        import fedhar

        path = Path(fedhar.__file__).resolve().parents[1] / config_file
    cfg = load_config(path, overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        from fedhar.reporting import write_config

        write_config(run_dir, config_to_dict(cfg))
    run_server(grid, cfg, run_dir, resume)
