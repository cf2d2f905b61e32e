"""Wall time to reach macro-F1 0.90 on UCI-HAR: LoRA on the frozen LLM, full fine-tuning of the
same LLM, the from-scratch Transformer and the no-LLM model, in one run on one machine.

Each variant trains on the official training subjects and is evaluated on the official test
subjects after every epoch; it stops at the first epoch that reaches the target. The time is
training seconds (evaluation excluded) up to that epoch, so the granularity is one epoch.

    python benchmarks/time_to_accuracy.py --out runs/bench
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import LORA, experiment, md_table, section_main, write_section
from fedhar.data import make_synthetic
from fedhar.data.sources import load_splits
from fedhar.data.config import DataConfig
from fedhar.schema import from_mapping
from fedhar.training.central import build_for_data
from fedhar.training.loop import fit

TARGET = 0.90
# (backbone, train overrides, max epochs). Learning rates: LoRA/scratch/no-LLM use the central
# config's 1e-3; full fine-tuning moves pretrained weights and needs a smaller one.
VARIANTS = {
    "LoRA on frozen LLM (8 blocks)": ({"name": "smollm2-135m", "layers": 8, "lora": LORA}, {"lr": 1e-3}, 4),
    # the same in fp32: does bf16 autocast cost F1? (same seed, same batches)
    "LoRA on frozen LLM (8 blocks), fp32": ({"name": "smollm2-135m", "layers": 8, "lora": LORA}, {"lr": 1e-3, "precision": "fp32"}, 4),
    "full fine-tuning (8 blocks)": ({"name": "smollm2-135m", "layers": 8, "full_finetune": True}, {"lr": 2e-4}, 4),
    "from-scratch Transformer": ({"name": "transformer", "layers": 4, "d_model": 128, "heads": 4}, {"lr": 1e-3}, 12),
    "no LLM": ({"name": "none", "d_model": 576}, {"lr": 1e-3}, 15),
}
SMOKE = {"tiny-llama LoRA": ({"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}}, {"lr": 3e-3}, 2),
         "no LLM": ({"name": "none", "d_model": 64}, {"lr": 3e-3}, 2)}


def run(out: Path, smoke: bool = False, target: float = TARGET) -> dict:
    if smoke:
        train = test = make_synthetic(n_per_class=12, subjects=3, seed=0, window=64)
    else:
        cfg = from_mapping(DataConfig, {"source": "uci_har", "root": os.environ.get("FEDHAR_DATA_DIR"), "split": "official"}, "data")
        train, test = load_splits(cfg, 0)
    rows = []
    for name, (backbone, overrides, max_epochs) in (SMOKE if smoke else VARIANTS).items():
        cfg = experiment(backbone, {"epochs": max_epochs, "batch_size": 64, "precision": "bf16", **overrides})
        model = build_for_data(cfg, train)
        reached: dict = {}
        t_wall = time.perf_counter()
        clock = {"train": 0.0}

        def on_epoch(row: dict) -> bool:
            clock["train"] += row["seconds"]
            print(f"  {name}: epoch {row['epoch']} macro-F1 {row['macro_f1']:.3f} ({clock['train']:.0f}s training)", flush=True)
            if row["macro_f1"] >= target and not reached:
                reached.update(epoch=row["epoch"], seconds=clock["train"], macro_f1=row["macro_f1"])
                return True
            return False

        history = fit(model, train, cfg.train, seed=0, eval_data=test, on_epoch=on_epoch, desc=name)
        counts = model.param_counts()
        rows.append({"variant": name, "reached": bool(reached), "epochs": reached.get("epoch"),
                     "seconds_to_target": reached.get("seconds"), "best_macro_f1": max(h["macro_f1"] for h in history),
                     "seconds_per_epoch": clock["train"] / len(history), "wall_seconds": time.perf_counter() - t_wall,
                     "trainable_params": counts["trainable_params"], "lr": cfg.train.lr, "max_epochs": max_epochs,
                     "precision": cfg.train.precision, "first_epoch_macro_f1": history[0]["macro_f1"],
                     "history": history})
    lora = rows[0]["seconds_to_target"]
    fastest = min((r["seconds_to_target"] for r in rows if r["reached"]), default=None)
    for r in rows:
        r["ratio_to_lora"] = r["seconds_to_target"] / lora if (r["reached"] and lora) else None
        r["ratio_to_fastest"] = r["seconds_to_target"] / fastest if (r["reached"] and fastest) else None
    md = (f"### Time to macro-F1 {target:.2f} on UCI-HAR (official split, batch 64, evaluated every epoch)\n\n"
          + md_table(rows, [("variant", "model", ""), ("precision", "precision", ""), ("reached", "reached", ""), ("epochs", "epochs", ""),
                            ("seconds_to_target", "training s to target", ".0f"), ("ratio_to_lora", "time / LoRA's", ".2f"), ("ratio_to_fastest", "time / fastest", ".1f"),
                            ("first_epoch_macro_f1", "macro-F1 after epoch 1", ".3f"), ("best_macro_f1", "best macro-F1", ".3f"), ("seconds_per_epoch", "s / epoch", ".1f"),
                            ("trainable_params", "trainable params", ",")]) + "\n")
    payload = {"target_macro_f1": target, "rows": rows}
    write_section(out, "time_to_accuracy", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    section_main(run, __doc__)
