"""What a teacher and a student cost: parameters, weight memory and inference time, side by side."""

from __future__ import annotations

import time

import numpy as np
import torch

from fedhar.training.loop import predict_logits


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by every parameter and buffer (shared tensors counted once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return int(total)


def cost_report(model, X: np.ndarray, precision: str = "bf16", batch_size: int = 64) -> dict:
    """Parameters (total, backbone, trainable), weight bytes, and measured inference ms per window on ``X``."""
    counts = model.param_counts()
    t0 = time.perf_counter()
    predict_logits(model, X, batch_size, precision)
    seconds = time.perf_counter() - t0
    return {**counts, "weight_bytes": weight_bytes(model), "inference_ms_per_window": 1000 * seconds / max(1, len(X)),
            "inference_windows": int(len(X)), "threads": torch.get_num_threads()}
