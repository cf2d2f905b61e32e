"""Head-only few-shot adaptation with and without the frozen-feature cache.

When only the head trains, the frontend and backbone are frozen and run in eval mode, so their
pooled features are constant: ``fit`` computes them once (``train.feature_cache``) instead of
every epoch. This measures the wall time of both paths on the same k-shot UCI-HAR subset and
checks the results are the same.

    python benchmarks/head_cache.py --out runs/bench
"""

from __future__ import annotations

import os
import time
from pathlib import Path


from common import LORA, experiment, md_table, section_main, write_section
from fedhar.data import make_synthetic
from fedhar.data.sources import load_splits
from fedhar.data.config import DataConfig
from fedhar.data.splits import label_budget
from fedhar.schema import from_mapping
from fedhar.training.central import build_for_data
from fedhar.training.loop import fit, predict_logits


def _data(smoke: bool):
    if smoke:
        ds = make_synthetic(n_per_class=12, subjects=3, seed=0, window=64)
        return ds, ds
    root = os.environ.get("FEDHAR_DATA_DIR")
    cfg = from_mapping(DataConfig, {"source": "uci_har", "root": root, "split": "official"}, "data")
    return load_splits(cfg, 0)


def run(out: Path, smoke: bool = False, shots: tuple[int, ...] = (1, 5, 10), epochs: int = 30) -> dict:
    train, test = _data(smoke)
    backbone = {"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}} if smoke else {"name": "smollm2-135m", "layers": 8, "lora": LORA}
    rows = []
    for k in shots:
        subset = label_budget(train, k_per_class=k, seed=0)
        results = {}
        for cache in (False, True):
            cfg = experiment(backbone, {"epochs": epochs, "batch_size": 16, "trainable": ["head"], "feature_cache": cache,
                                        "lr": 3e-3, "precision": "bf16"})
            model = build_for_data(cfg, train)
            t0 = time.perf_counter()
            fit(model, subset, cfg.train, seed=0)
            seconds = time.perf_counter() - t0
            logits = predict_logits(model, test.X[:512], 256, "bf16")
            results[cache] = (seconds, model.trainable_state(), logits)
        (t_off, s_off, l_off), (t_on, s_on, l_on) = results[False], results[True]
        max_diff = max(float((s_off[n] - s_on[n]).abs().max()) for n in s_off)
        rows.append({"k_per_class": k, "windows": len(subset), "epochs": epochs, "seconds_uncached": t_off,
                     "seconds_cached": t_on, "speedup": t_off / t_on, "max_weight_diff": max_diff,
                     "prediction_agreement": float((l_off.argmax(1) == l_on.argmax(1)).mean())})
        print(f"  k={k}: uncached {t_off:.2f}s, cached {t_on:.2f}s, x{t_off / t_on:.1f}, max |dW| {max_diff:.2e}", flush=True)
    # Equivalence in fp32 (bf16 matmuls round differently at different batch sizes, so the bf16
    # paths agree in predictions but not to the last bit).
    k = max(shots)
    subset = label_budget(train, k_per_class=k, seed=0)
    states = []
    for cache in (False, True):
        cfg = experiment(backbone, {"epochs": 5, "batch_size": 16, "trainable": ["head"], "feature_cache": cache,
                                    "lr": 3e-3, "precision": "fp32"})
        model = build_for_data(cfg, train)
        fit(model, subset, cfg.train, seed=0)
        states.append(model.trainable_state())
    fp32_diff = max(float((states[0][n] - states[1][n]).abs().max()) for n in states[0])
    print(f"  fp32 equivalence (k={k}, 5 epochs): max |dW| {fp32_diff:.2e}", flush=True)
    md = (f"### Head-only few-shot adaptation: frozen-feature cache ({backbone['name']}, {backbone['layers']} blocks + LoRA, bf16, batch 16, UCI-HAR k-shot)\n\n"
          + md_table(rows, [("k_per_class", "k per class", ""), ("windows", "windows", ""), ("epochs", "epochs", ""),
                            ("seconds_uncached", "s without cache", ".2f"), ("seconds_cached", "s with cache", ".2f"),
                            ("speedup", "speed-up", ".1f"), ("max_weight_diff", "max weight diff", ".1e"),
                            ("prediction_agreement", "same predictions", ".3f")])
          + f"\n\nIn fp32 (k={k}, 5 epochs) the cached and uncached heads differ by at most {fp32_diff:.1e} per weight.\n")
    payload = {"rows": rows, "fp32_max_weight_diff": fp32_diff}
    write_section(out, "head_cache", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    section_main(run, __doc__)
