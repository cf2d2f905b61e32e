"""``fedhar export``: a finished run's model as one on-device file, with proof that it predicts
what the PyTorch model predicts, and optionally what it costs to run.

What can be exported: a central run, the global model of a federated run, or one client's
personalised model (``client=N``: ``<run>/clients/client_NNNN/<state>.safetensors`` on top of the
run's global model). Every neural backbone kind exports (LLM, MAE, from-scratch Transformer, no
LLM). A classical run exports too, to ONNX in float32: its window features written in torch and
its random forest converted by skl2onnx, joined in one graph
(:mod:`fedhar.export.classical_format`).

The parity windows are real test windows: the run's held-out test split, or for ``client=N`` that
client's own local test windows (cut as its federation cut them). ``windows`` caps how many
(the first ones; default all).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedhar import __version__
from fedhar.config import ExperimentConfig, load_config
from fedhar.data.dataset import WindowDataset
from fedhar.data.sources import load_splits
from fedhar.exceptions import ConfigError, ExportError
from fedhar.export.formats import FORMATS, QUANTIZE, export_file
from fedhar.export.runners import load_runner
from fedhar.export.graph import ExportGraph, merge_lora
from fedhar.export.parity import DEFAULT_MIN_AGREEMENT, measure_parity, require, run_batched
from fedhar.models import NON_NEURAL
from fedhar.training.loop import predict_logits
from fedhar.training.predict import (CLIENTS, CONFIG, MODEL, SavedModel, check_neural, load_saved_model, locate,
                                     match_channels, read_metadata)

log = logging.getLogger(__name__)


@dataclass
class ExportOptions:
    """What ``fedhar export`` was asked for (its command-line options)."""

    format: str = "onnx"
    quantize: str = "none"
    client: int | None = None
    personal: str | None = None
    """With ``client``: the stem of the client's state file when its folder holds several."""
    min_agreement: float | None = None
    """Argmax agreement the export must reach; None: :data:`DEFAULT_MIN_AGREEMENT` for ``quantize``."""
    windows: int | None = None
    bench: bool = False
    bench_windows: int = 200

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}.")
        if self.quantize not in QUANTIZE:
            raise ConfigError(f"--quantize {self.quantize!r}: expected one of {', '.join(QUANTIZE)}.")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ConfigError(f"--min-agreement {self.min_agreement}: expected a share in [0, 1], e.g. 0.995.")
        if self.windows is not None and self.windows < 1:
            raise ConfigError(f"--windows {self.windows}: expected a positive number of parity windows.")
        if self.bench_windows < 200:
            raise ConfigError(f"--bench-windows {self.bench_windows}: latency percentiles need at least 200 windows.")
        if self.personal is not None and self.client is None:
            raise ConfigError("--personal names a client's state file; give --client N too.")
        if self.min_agreement is None:
            self.min_agreement = DEFAULT_MIN_AGREEMENT[self.quantize]


def locate_export(run_dir: str | Path, opts: ExportOptions) -> SavedModel:
    """The saved model to export: the run's own, or client ``opts.client``'s personalised one."""
    if opts.client is None:
        return locate(run_dir)
    client = Path(run_dir) / CLIENTS / f"client_{opts.client:04d}"
    if not client.is_dir():
        found = sorted(p.name for p in (Path(run_dir) / CLIENTS).glob("client_*")) if (Path(run_dir) / CLIENTS).is_dir() else []
        raise ConfigError(f"--client {opts.client}: {client} does not exist; "
                          + (f"this run has personal states for {', '.join(found)}." if found else
                             f"{run_dir} has no {CLIENTS}/ folder (only personalisation runs and FedPer federations write one)."))
    if opts.personal is not None:
        state = client / f"{opts.personal}.safetensors"
        if not state.is_file():
            options = ", ".join(p.stem for p in sorted(client.glob("*.safetensors"))) or "none"
            raise ConfigError(f"--personal {opts.personal}: {state} does not exist; this client has: {options}.")
        return locate(state)
    return locate(client)


def parity_windows(cfg: ExperimentConfig, saved: SavedModel, meta: dict, client: int | None) -> WindowDataset:
    """Real test windows for the parity check (see the module docstring), in the model's channels."""
    if client is None:
        test = load_splits(cfg.data, cfg.seed)[1]
    else:
        from fedhar.federated.task import FederatedTask

        test = FederatedTask(cfg).client_data(client)[1]
        if len(test) == 0:
            raise ExportError(f"client {client} has no local test windows to check the export on "
                              f"(`federated.local_test_fraction` in {saved.run_dir / CONFIG}).")
    return match_channels(test, meta["channels"], saved.model_dir)


def export_metadata(classes, channels, backbone: str, cfg: ExperimentConfig, data: WindowDataset,
                  opts: ExportOptions, source: Path) -> dict[str, str]:
    """What a device app needs to feed and read the model, stored inside the exported file."""
    return {
        "fedhar.version": __version__,
        "fedhar.input": "window: float32 (N, C, T), raw sensor values in the channel order below (not normalised)",
        "fedhar.outputs": "probabilities: float32 (N, K) softmax; logits: float32 (N, K)",
        "fedhar.classes": json.dumps(list(classes)),
        "fedhar.channels": json.dumps(list(channels)),
        "fedhar.window_length": str(data.window_length),
        "fedhar.rate_hz": str(data.rate_hz),
        "fedhar.backbone": backbone,
        "fedhar.blocks": str(cfg.model.backbone.layers) if backbone != "classical" else "",
        "fedhar.quantize": opts.quantize,
        "fedhar.source": str(source),
    }


def _example(data: WindowDataset) -> torch.Tensor:
    """The two windows an export traces the graph with (the batch size stays dynamic)."""
    return torch.from_numpy(np.ascontiguousarray(data.X[:2]))


def _export_neural(run_dir, out: Path, opts: ExportOptions, overrides) -> tuple[np.ndarray, WindowDataset, dict, int]:
    """Write a neural run's graph; returns (PyTorch logits, parity windows, metadata, LoRA layers merged)."""
    saved = locate_export(run_dir, opts)
    cfg = load_config(saved.run_dir / CONFIG, list(overrides))
    if cfg.model.backbone.name in NON_NEURAL:
        raise ExportError(f"{saved.personal}: a classical run keeps no personal states; export the run itself.")
    check_neural(saved, cfg)
    meta = read_metadata(saved.model_dir)
    data = _first(parity_windows(cfg, saved, meta, opts.client), opts.windows)
    model = load_saved_model(cfg, saved, meta, data.window_length, data.rate_hz, data.units)
    reference = predict_logits(model, data.X, cfg.train.eval_batch_size, "fp32")
    merged = merge_lora(model)
    metadata = export_metadata(model.classes, model.channels, model.backbone_name, cfg, data, opts,
                             saved.personal or saved.model_dir)
    log.info("export: %s -> %s (%s, quantize %s, %d LoRA layers merged)", metadata["fedhar.source"], out,
             opts.format, opts.quantize, merged)
    export_file(ExportGraph(model), _example(data), out, opts.format,
                opts.quantize, metadata)
    return reference, data, metadata, merged


def _classical_run(run_dir: Path, overrides) -> tuple[Path, ExperimentConfig] | None:
    """``(run folder, config)`` when ``run_dir`` (or its ``model/`` folder) is a classical run, else None."""
    folder = run_dir if (run_dir / CONFIG).is_file() else run_dir.parent
    if not (folder / CONFIG).is_file():
        return None
    cfg = load_config(folder / CONFIG, list(overrides))
    return (folder, cfg) if cfg.model.backbone.name in NON_NEURAL else None


def _export_classical(run_dir: Path, cfg: ExperimentConfig, out: Path, opts: ExportOptions
                      ) -> tuple[np.ndarray, WindowDataset, dict, int]:
    """Write a classical run's features + forest graph (ONNX only, float32); returns as :func:`_export_neural`."""
    from fedhar.export.classical_format import export_classical_onnx
    from fedhar.models.classical import CLASSICAL_META, ClassicalModel, load_classical

    model_dir = run_dir / MODEL
    if out.suffix != ".onnx":
        raise ExportError(f"--out {out}: a classical run exports to ONNX; the file should end in .onnx.")
    if not (model_dir / CLASSICAL_META).is_file():
        raise ExportError(f"{run_dir}: this classical run saved no forest ({model_dir / CLASSICAL_META} does not exist); "
                          "runs trained before `fedhar export` existed did not save one. Train it again.")
    if opts.format != "onnx" or opts.quantize != "none":
        raise ExportError(f"a classical run exports to --format onnx without --quantize (a random forest is no torch "
                          f"module, and its trees hold thresholds, not weights to quantise); got --format {opts.format} "
                          f"--quantize {opts.quantize}.")
    forest, meta = load_classical(model_dir)
    data = _first(match_channels(load_splits(cfg.data, cfg.seed)[1], tuple(meta["channels"]), model_dir), opts.windows)
    classical = ClassicalModel(seed=cfg.seed)
    classical.forest = forest
    classes = tuple(meta["classes"])
    reference = classical.scores(data.X, len(classes))
    metadata = export_metadata(classes, tuple(meta["channels"]), "classical", cfg, data, opts, model_dir)
    metadata["fedhar.outputs"] = "probabilities: float32 (N, K) from the forest; logits: the same probabilities (a forest has none)"
    log.info("export: %s -> %s (window features + random forest of %d trees, skl2onnx)", model_dir, out,
             len(forest.estimators_))
    export_classical_onnx(forest, len(classes), len(meta["channels"]), data.window_length,
                          _example(data), out, metadata)
    return reference, data, metadata, 0


def _first(data: WindowDataset, windows: int | None) -> WindowDataset:
    return data if windows is None else data.subset(np.arange(min(windows, len(data))))


def export_run(run_dir: str | Path, out: str | Path, opts: ExportOptions | None = None,
               overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Export the model of ``run_dir`` to ``out``, check parity on real test windows, and write the
    report ``<out>.json`` beside it. Raises ExportError (after writing the report, and removing
    the file) when the argmax agreement is below ``opts.min_agreement``.

    Returns the report: ``file``, ``format``, ``quantize``, ``metadata``, ``parity`` and, with
    ``opts.bench``, ``bench``.
    """
    opts = opts or ExportOptions()
    out = Path(out)
    t0 = time.perf_counter()
    classical = _classical_run(Path(run_dir), overrides) if opts.client is None else None
    if classical is not None:
        reference, data, metadata, merged = _export_classical(*classical, out, opts)
    else:
        reference, data, metadata, merged = _export_neural(run_dir, out, opts, overrides)
    runner = load_runner(out, opts.format)
    parity = measure_parity(reference, run_batched(runner, data.X), data.y, reference.shape[1], opts.min_agreement)
    report = {"file": str(out), "format": opts.format, "quantize": opts.quantize, "source": metadata["fedhar.source"],
              "client": opts.client, "file_bytes": out.stat().st_size, "lora_layers_merged": merged,
              "metadata": metadata, "parity": parity.to_dict(), "export_seconds": time.perf_counter() - t0}
    if opts.bench and parity.passed:
        from fedhar.export.bench import bench

        log.info("export: measuring size, memory and single-thread latency over %d windows", opts.bench_windows)
        report["bench"] = bench(load_runner(out, opts.format, threads=1), out, opts.format, data.X, opts.bench_windows)
    report_path = Path(f"{out}.json")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    if not parity.passed:
        out.unlink(missing_ok=True)
    require(parity, str(out))
    return report
