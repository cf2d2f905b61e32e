"""On-device export: every backbone kind trained on UCI-HAR, exported to ONNX in fp32 and int8,
checked against PyTorch on all 2,947 test windows, and timed on one thread.

Rows: SmolLM2-135M at 4, 8 and 30 blocks with LoRA r8 (merged), the no-LLM model, the
from-scratch Transformer, and the MAE (pretrained here on UCI-HAR's training windows). Each is
``configs/central_uci.yaml`` with its backbone changed; the 30-block model trains 1 epoch (the
others 6) to fit the session: its F1 is a 1-epoch F1. Columns: file size, one-thread p50/p95 per
window, batch-32 throughput, peak memory of one window's inference, macro-F1 of the exported file
and of PyTorch, argmax agreement, max |logit difference|.

A finished training run in ``<out>/export_runs/<row>`` is reused (delete it to train again).

    FEDHAR_DATA_DIR=../shared/data python benchmarks/export.py --out runs/bench
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from common import md_table, section_main, write_section
from fedhar.config import derive, load_config
from fedhar.export.run import ExportOptions, export_run
from fedhar.studies import run_study

REPO = Path(__file__).resolve().parents[1]
MAE = {"patch": 8, "width": 128, "depth": 6, "heads": 4, "mlp_ratio": 4, "mask_ratio": 0.75, "decoder_width": 64,
       "decoder_depth": 2}
TINY_MAE = {"patch": 8, "width": 32, "depth": 2, "heads": 4, "mlp_ratio": 2, "mask_ratio": 0.75, "decoder_width": 16,
            "decoder_depth": 1}


def rows(smoke: bool) -> list[tuple[str, dict, int]]:
    """(label, config changes, epochs) per row; the MAE row's backbone folder is filled in by :func:`run`."""
    if smoke:
        return [("LLM 1 block", {"model.backbone.layers": 1}, 1), ("LLM 2 blocks", {}, 1),
                ("no LLM", {"model.backbone.name": "none"}, 1),
                ("Transformer (from scratch)", {"model.backbone.name": "transformer"}, 1),
                ("MAE", {"model.backbone.lora": {"r": 2, "alpha": 4}}, 1)]
    return [("LLM 4 blocks", {"model.backbone.layers": 4}, 6), ("LLM 8 blocks", {}, 6),
            ("LLM 30 blocks", {"model.backbone.layers": 30}, 1), ("no LLM", {"model.backbone.name": "none"}, 6),
            ("Transformer (from scratch)", {"model.backbone.name": "transformer"}, 6),
            ("MAE", {"model.backbone.layers": None}, 6)]


def base_config(smoke: bool):
    return load_config(REPO / "configs" / ("smoke.yaml" if smoke else "central_uci.yaml"))


def finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "results.json").read_text()).get("status") == "complete" and \
            (run_dir / "model").is_dir()
    except (OSError, ValueError):
        return False


def pretrain_mae(out: Path, smoke: bool) -> Path:
    """A MAE pretrained on the benchmark's training windows (a few epochs: its export cost does
    not depend on how well it was pretrained)."""
    folder = out / "export_runs" / "mae_backbone"
    if not (folder / "mae.json").exists():
        cfg = derive(base_config(smoke), {"name": "export-mae-pretrain",
                                          "pretrain": {"mae": TINY_MAE if smoke else MAE, "epochs": 1 if smoke else 20,
                                                       "batch_size": 64, "lr": 1e-3, "precision": "fp32",
                                                       "eval_every": 1 if smoke else 10}})
        run_study("pretrain", cfg, str(folder), force=True)
    return folder


def train(out: Path, label: str, changes: dict, epochs: int, smoke: bool) -> Path:
    run_dir = out / "export_runs" / label.lower().replace(" ", "_").replace("(", "").replace(")", "")
    if not finished(run_dir):
        t0 = time.perf_counter()
        cfg = derive(base_config(smoke), {"name": f"export-{run_dir.name}", "train.epochs": epochs, **changes})
        run_study("train", cfg, str(run_dir), force=True)
        print(f"  trained {label} in {time.perf_counter() - t0:.0f} s", flush=True)
    return run_dir


def run(out: Path, smoke: bool = False) -> dict:
    table = []
    for label, changes, epochs in rows(smoke):
        if label == "MAE":
            changes = {**changes, "model.backbone.name": str(pretrain_mae(out, smoke).resolve())}
        run_dir = train(out, label, changes, epochs, smoke)
        torch_f1 = json.loads((run_dir / "results.json").read_text())["final"]["macro_f1"]
        for quantize in ("none", "int8"):
            file = out / "export_files" / f"{run_dir.name}_{quantize}.onnx"
            t0 = time.perf_counter()
            r = export_run(run_dir, file, ExportOptions(quantize=quantize, bench=True, min_agreement=0.0))
            p, b = r["parity"], r["bench"]
            table.append({"model": label, "epochs": epochs, "quantize": "fp32" if quantize == "none" else quantize,
                          "mb": b["file_mb"], "p50_ms": b["latency"]["p50_ms"], "p95_ms": b["latency"]["p95_ms"],
                          "batch32_windows_per_s": b["throughput"]["windows_per_s"],
                          "peak_mb": b["memory"]["model_peak_mb"], "macro_f1": p["macro_f1"],
                          "macro_f1_torch": p["macro_f1_torch"], "run_macro_f1": torch_f1,
                          "agreement": p["agreement"], "max_abs_logit_diff": p["max_abs_logit_diff"],
                          "windows": p["windows"], "seconds": time.perf_counter() - t0})
            print(f"  {label} {table[-1]['quantize']}: {b['file_mb']:.1f} MB, p50 {b['latency']['p50_ms']:.1f} ms, "
                  f"F1 {p['macro_f1']:.3f}, agreement {100 * p['agreement']:.2f}%", flush=True)
    md = ("### Export to ONNX: size, one-thread latency and parity "
          f"({'tiny models, generated signals' if smoke else 'UCI-HAR, 2,947 test windows of 9 x 128 (2.56 s at 50 Hz)'})\n\n"
          + md_table(table, [("model", "model", ""), ("epochs", "epochs", ""), ("quantize", "weights", ""),
                             ("mb", "MB", ".1f"), ("p50_ms", "p50 ms", ".1f"), ("p95_ms", "p95 ms", ".1f"),
                             ("batch32_windows_per_s", "windows/s at batch 32", ".0f"), ("peak_mb", "peak MB", ".0f"),
                             ("macro_f1", "macro-F1 (export)", ".4f"), ("macro_f1_torch", "macro-F1 (PyTorch fp32)", ".4f"),
                             ("agreement", "argmax agreement", ".4f"), ("max_abs_logit_diff", "max abs logit diff", ".2e")])
          + "\n\nLatency and throughput on one thread (intra- and inter-op), standing in for one phone core; peak MB "
            "is the memory one window's inference adds to a fresh onnxruntime process.\n")
    payload = {"rows": table}
    write_section(out, "export", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    section_main(run, __doc__)
