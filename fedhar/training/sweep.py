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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedhar.exceptions import ConfigError

log = logging.getLogger(__name__)


@dataclass
class SweepConfig:
    """The ``sweep:`` section."""

    key: str = field(default="", metadata={"help": "Dotted config key to sweep, e.g. model.backbone.lora.r."})
    values: list[Any] = field(default_factory=list, metadata={"help": "Values of `key`, in plot order."})
    label: str = field(default="", metadata={"help": "Axis label (default: the key)."})
    log_x: bool = field(default=False, metadata={"help": "Logarithmic x axis (ranks, budgets)."})
    steps: int | None = field(default=None, metadata={"help": "Optimizer steps per run, whatever the training-set size (epochs derived); null: train.epochs."})
    variants: list[dict] = field(default_factory=lambda: [{"label": "configured model"}],
                                 metadata={"help": "Models compared at every value: {label, set: {dotted key: value}}."})

    def __post_init__(self) -> None:
        if self.key and not self.values:
            raise ConfigError(f"`sweep.values` must list the values of `{self.key}` to try.")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"`sweep.steps` must be at least 1; got {self.steps}.")
        for i, v in enumerate(self.variants):
            if not isinstance(v, dict) or not v.get("label") or not isinstance(v.get("set", {}), dict):
                raise ConfigError(f"`sweep.variants[{i}]` must be {{label: ..., set: {{key: value}}}}; got {v!r}.")


def point_config(cfg, variant: dict, value: Any):
    """``cfg`` with the variant's settings and ``sweep.key = value`` (validated like any config)."""
    from fedhar.config import build_config, config_to_dict

    sets = [f"{k}={json.dumps(v)}" for k, v in variant.get("set", {}).items()] + [f"{cfg.sweep.key}={json.dumps(value)}"]
    tree = config_to_dict(cfg)
    tree.pop("sweep", None)
    return build_config(tree, sets, source=f"sweep point {variant['label']} / {cfg.sweep.key}={value}")


def run_sweep(cfg, out: str | Path | None = None, resume: bool = False) -> dict:
    """Every (variant, value) as a central run; writes config.yaml, results.json, metrics.csv,
    report.md and sweep.png, updated after each point (``resume`` skips finished points)."""
    from fedhar.config import config_to_dict
    from fedhar.data.build import load_splits
    from fedhar.reporting import prepare_run_dir, write_config, write_json, write_metrics_csv
    from fedhar.reporting.plots import sweep_png
    from fedhar.training.central import model_info, train_and_evaluate

    scfg = cfg.sweep
    if not scfg.key:
        raise ConfigError("`sweep.key` is not set: name the config value to sweep, e.g. model.backbone.lora.r.")
    run_dir = prepare_run_dir(out, cfg.name)
    path = run_dir / "results.json"
    results = json.loads(path.read_text()) if resume and path.exists() else {"rows": []}
    write_config(run_dir, config_to_dict(cfg))
    done = {(r["variant"], json.dumps(r["value"])) for r in results["rows"]}
    t_start = time.perf_counter()
    for variant in scfg.variants:
        for value in scfg.values:
            if (variant["label"], json.dumps(value)) in done:
                continue
            pcfg = point_config(cfg, variant, value)
            train, test = load_splits(pcfg.data, pcfg.seed)
            if scfg.steps is not None:
                pcfg.train.epochs = max(1, math.ceil(scfg.steps / max(1, math.ceil(len(train) / pcfg.train.batch_size))))
                pcfg.train.eval_every = pcfg.train.epochs
            pcfg.train.progress = False
            t0 = time.perf_counter()
            model, history, m = train_and_evaluate(pcfg, train, test, desc=f"{variant['label']} {value}")
            info = model_info(model)
            row = {"variant": variant["label"], "value": value, "macro_f1": m["macro_f1"], "accuracy": m["accuracy"],
                   "train_windows": len(train), "trainable_params": info["trainable_params"],
                   "train_seconds": float(sum(h.get("seconds", 0.0) for h in history)),
                   "seconds": time.perf_counter() - t0, "epochs": len(history),
                   "frozen_backbone_bytes": info.get("frozen_backbone_bytes")}
            results["rows"].append(row)
            log.info("%s, %s=%s: macro-F1 %.3f (%d train windows, %s trainable, %.1fs)", variant["label"], scfg.key, value,
                     m["macro_f1"], len(train), f"{info['trainable_params']:,}", row["train_seconds"])
            results.update(kind="sweep", name=cfg.name, key=scfg.key, seconds=results.get("seconds", 0.0))
            write_json(path, results)
            write_metrics_csv(run_dir / "metrics.csv", results["rows"])
    results.update(kind="sweep", name=cfg.name, key=scfg.key, complete=True,
                   seconds=results.get("seconds", 0.0) + time.perf_counter() - t_start)
    write_json(path, results)
    write_metrics_csv(run_dir / "metrics.csv", results["rows"])
    (run_dir / "report.md").write_text(sweep_markdown(results, scfg))
    sweep_png(run_dir / "sweep.png", results["rows"], scfg.label or scfg.key, scfg.log_x, cfg.name)
    results["run_dir"] = str(run_dir)
    return results


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
