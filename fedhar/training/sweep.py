"""Sweeps: one config value over a list (LoRA rank, label budget...), for one or more model
variants, each point a central run; a table and a plot of macro-F1, trainable parameters and
training time against the value.

    FEDHAR_DATA_DIR=../shared/data python simulations/sweep.py --config configs/sweep_rank.yaml --out runs/sweep_rank
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from fedhar.config import ExperimentConfig, Variant, derive
from fedhar.training.config import SweepConfig

if TYPE_CHECKING:
    from fedhar.reporting import RunFolder

log = logging.getLogger(__name__)


def point_config(cfg: ExperimentConfig, variant: Variant, value: Any) -> ExperimentConfig:
    """``cfg`` with the variant's changes and ``sweep.key = value`` (validated like any config)."""
    return derive(cfg, {**variant.changes, cfg.sweep.key: value, "train.progress": False},
                  source=f"sweep point {variant.label} / {cfg.sweep.key}={value}")


def run_sweep(cfg: ExperimentConfig, folder: RunFolder) -> dict:
    """Every (variant, value) as a central run; the folder's results and metrics.csv are updated
    after each point (a resume skips finished points), then report.md and sweep.png."""
    from fedhar.data.sources import load_splits
    from fedhar.reporting.plots import sweep_png
    from fedhar.training.central import model_info, train_and_evaluate

    scfg = cfg.sweep
    results = folder.results
    results.update(kind="sweep", key=scfg.key)
    rows = results.setdefault("rows", [])
    for variant in (Variant(str(v["label"]), dict(v.get("set", {}))) for v in scfg.variants):  # {label, set: {key: value}}
        for value in scfg.values:
            if folder.done(variant.label, json.dumps(value)):
                continue
            pcfg = point_config(cfg, variant, value)
            train, test = load_splits(pcfg.data, pcfg.seed)
            if scfg.steps is not None:
                epochs = max(1, math.ceil(scfg.steps / max(1, math.ceil(len(train) / pcfg.train.batch_size))))
                pcfg = derive(pcfg, {"train.epochs": epochs, "train.eval_every": epochs}, source="sweep.steps")
            t0 = time.perf_counter()
            model, history, m = train_and_evaluate(pcfg, train, test, desc=f"{variant.label} {value}")
            info = model_info(model)
            rows.append({"variant": variant.label, "value": value, "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                         "train_windows": len(train), "trainable_params": info["trainable_params"],
                         "train_seconds": float(sum(h.get("seconds", 0.0) for h in history)),
                         "seconds": time.perf_counter() - t0, "epochs": len(history),
                         "frozen_backbone_bytes": info.get("frozen_backbone_bytes")})
            folder.record(variant.label, json.dumps(value))
            folder.write_metrics(rows)
            log.info("%s, %s=%s: macro-F1 %.3f (%d train windows, %s trainable, %.1fs)", variant.label, scfg.key, value,
                     m["macro_f1"], len(train), f"{info['trainable_params']:,}", rows[-1]["train_seconds"])
    folder.write_metrics(rows)
    folder.write_report(sweep_markdown(results, scfg))
    folder.plot("sweep.png", lambda path: sweep_png(path, rows, scfg.label or scfg.key, scfg.log_x, cfg.name))
    return folder.complete()


def sweep_markdown(results: dict, scfg: SweepConfig) -> str:
    rows = results["rows"]
    lines = [f"# Sweep: {results['name']} ({scfg.label or scfg.key})", "",
             "| " + (scfg.label or scfg.key) + " | model | macro-F1 | accuracy | trainable params | train windows | train seconds |",
             "|---|---|---|---|---|---|---|"]
    for value in scfg.values:
        for r in rows:
            if json.dumps(r["value"]) == json.dumps(value):
                lines.append(f"| {value} | {r['variant']} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | "
                             f"{r['trainable_params']:,} | {r['train_windows']} | {r['train_seconds']:.1f} |")
    lines += ["", f"Total time: {results['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"
