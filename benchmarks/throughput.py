"""Training and inference throughput against the machine's matmul ceiling.

FLOPs per window are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real
training step (forward + backward, as executed: a frozen weight gets no weight-gradient matmul,
so it costs 2x its forward FLOPs, a trained one 3x) and on one inference forward. It counts
matmuls, convolutions and attention, not element-wise ops, so the ratio to the ceiling is the
share of the machine's matmul peak that the model's real work reaches.

    python benchmarks/throughput.py --out runs/bench
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import LORA, UCI_CHANNELS, experiment, machine, matmul_peak, md_table, section_main, write_section
from fedhar.models import build_model
from fedhar.training.loop import autocast

VARIANTS = {
    "llm-4 (LoRA)": {"name": "smollm2-135m", "layers": 4, "lora": LORA},
    "llm-8 (LoRA)": {"name": "smollm2-135m", "layers": 8, "lora": LORA},
    "llm-30 (LoRA)": {"name": "smollm2-135m", "layers": 30, "lora": LORA},
    "transformer (scratch)": {"name": "transformer", "layers": 4, "d_model": 128, "heads": 4},
    "no LLM": {"name": "none", "d_model": 576},
}
SMOKE_VARIANTS = {"tiny-llama (LoRA)": {"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}},
                  "no LLM": {"name": "none", "d_model": 64}}
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _timed(fn, min_steps: int, min_seconds: float) -> tuple[int, float]:
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < min_seconds:
        fn()
        steps += 1
    return steps, time.perf_counter() - t0


def _flops_and_rate(step, batch: int, min_steps: int, min_seconds: float) -> tuple[float, float]:
    """FLOPs per window of one counted ``step``, then windows/s after one warm-up step."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    step()
    steps, secs = _timed(step, min_steps, min_seconds)
    return counter.get_total_flops() / batch, steps * batch / secs


def measure(backbone: dict, precision: str, batch: int = 64, eval_batch: int = 256, min_steps: int = 4,
            min_seconds: float = 8.0) -> dict:
    """Windows per second for training (fwd+bwd+AdamW step) and inference, with FLOPs per window."""
    cfg = experiment(backbone, {"precision": precision})
    model = build_model(cfg.model, UCI_CHANNELS, 128, [str(i) for i in range(6)], 0)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, len(UCI_CHANNELS), 128, generator=g)
    y = torch.randint(0, 6, (batch,), generator=g)
    Xe = torch.randn(eval_batch, len(UCI_CHANNELS), 128, generator=g)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def train_step() -> None:
        with autocast(precision):
            logits = model(X)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.inference_mode()
    def infer_step() -> None:
        with autocast(precision):
            model(Xe)

    model.train()
    train_flops, train_wps = _flops_and_rate(train_step, batch, min_steps, min_seconds)
    model.eval()
    infer_flops, infer_wps = _flops_and_rate(infer_step, eval_batch, min_steps, min_seconds / 2)
    counts = model.param_counts()
    return {"train_windows_per_s": train_wps, "infer_windows_per_s": infer_wps,
            "train_gflop_per_window": train_flops / 1e9, "infer_gflop_per_window": infer_flops / 1e9,
            "train_flops_per_s": train_wps * train_flops, "infer_flops_per_s": infer_wps * infer_flops,
            "trainable_params": counts["trainable_params"], "total_params": counts["total_params"]}


def run(out: Path, smoke: bool = False) -> dict:
    variants = SMOKE_VARIANTS if smoke else VARIANTS
    kw = {"min_steps": 1, "min_seconds": 0.0, "batch": 8, "eval_batch": 16} if smoke else {}
    peaks = {p: matmul_peak(dt, sizes=(256,) if smoke else (1024, 2048, 3072), seconds=0.2 if smoke else 1.5)
             for p, dt in PRECISIONS.items()}
    rows = []
    for name, backbone in variants.items():
        for precision in PRECISIONS:
            r = measure(backbone, precision, **kw)
            peak = peaks[precision]["flops_per_s"]
            r.update(variant=name, precision=precision, ceiling_gflop_per_s=peak / 1e9,
                     train_ratio_to_ceiling=r["train_flops_per_s"] / peak, infer_ratio_to_ceiling=r["infer_flops_per_s"] / peak)
            rows.append(r)
            print(f"  {name:22s} {precision}: train {r['train_windows_per_s']:.1f} w/s ({r['train_ratio_to_ceiling']:.2f} of ceiling), "
                  f"infer {r['infer_windows_per_s']:.1f} w/s", flush=True)
    for r in rows:  # bf16 speed-up over fp32, same variant
        fp32 = next(x for x in rows if x["variant"] == r["variant"] and x["precision"] == "fp32")
        r["train_speedup_vs_fp32"] = r["train_windows_per_s"] / fp32["train_windows_per_s"]
    table = md_table(rows, [("variant", "model", ""), ("precision", "precision", ""),
                            ("train_windows_per_s", "train windows/s", ".1f"), ("infer_windows_per_s", "infer windows/s", ".1f"),
                            ("train_gflop_per_window", "train GFLOP/window", ".3f"),
                            ("train_ratio_to_ceiling", "train / ceiling", ".2f"), ("infer_ratio_to_ceiling", "infer / ceiling", ".2f"),
                            ("train_speedup_vs_fp32", "train speed-up vs fp32", ".2f")])
    ceiling = ", ".join(f"{p} {v['flops_per_s'] / 1e9:.0f} GFLOP/s" for p, v in peaks.items())
    md = (f"### Throughput (batch 64 training with AdamW, batch 256 inference; UCI-HAR-shaped windows 9x128, 32 tokens)\n\n"
          f"Measured matmul ceiling: {ceiling}.\n\n{table}\n")
    payload = {"machine": machine(), "ceiling": {p: v["flops_per_s"] for p, v in peaks.items()}, "rows": rows,
               "flop_counting": "torch FlopCounterMode on one executed training step / inference forward"}
    write_section(out, "throughput", payload, md)
    return {"payload": payload, "markdown": md}


if __name__ == "__main__":
    section_main(run, __doc__)
