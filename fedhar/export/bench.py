"""What an exported model costs on a device-like CPU: size, memory, latency, throughput.

Latency is measured on **one thread** (intra-op and inter-op), which stands in for one phone or
watch core: a single window at a time, p50 and p95 over at least 200 windows after a warm-up.
Throughput is windows per second at batch 32 on the same single thread. Peak memory is measured
in a fresh process: its resident set before loading the model and its peak after loading it and
answering one window (Linux ``ru_maxrss``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fedhar.exceptions import ExportError


def latency(runner, X: np.ndarray, windows: int = 200, warmup: int = 5) -> dict:
    """Per-window latency of ``runner`` in milliseconds over ``windows`` single windows of ``X``
    (cycled when ``X`` has fewer)."""
    if windows < 1:
        raise ExportError(f"latency needs at least one window; got {windows}.")
    for i in range(warmup):
        runner(X[i % len(X)][None])
    times = []
    for i in range(windows):
        x = X[i % len(X)][None]
        t0 = time.perf_counter()
        runner(x)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000
    return {"windows": windows, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean())}


def throughput(runner, X: np.ndarray, batch: int = 32, batches: int = 5) -> dict:
    """Windows per second at ``batch`` windows per call."""
    reps = int(np.ceil(batch / len(X)))
    xb = np.concatenate([X] * reps)[:batch] if len(X) < batch else X[:batch]
    runner(xb)  # warm-up
    t0 = time.perf_counter()
    for _ in range(batches):
        runner(xb)
    seconds = time.perf_counter() - t0
    return {"batch": batch, "windows_per_s": float(batch * batches / seconds)}


def peak_memory(path: Path, fmt: str, shape: tuple[int, int]) -> dict:
    """Resident memory of a fresh process answering one window of ``shape`` ``(C, T)``: before
    loading the model, and the peak after (MB)."""
    cmd = [sys.executable, "-m", "fedhar.export.memory", str(path), fmt, str(shape[0]), str(shape[1])]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise ExportError(f"the memory probe for {path} failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench(runner, path: Path, fmt: str, X: np.ndarray, windows: int = 200) -> dict:
    """The cost report of one exported file (``--bench``)."""
    size = Path(path).stat().st_size
    return {"file_bytes": size, "file_mb": size / 1e6, "threads": 1,
            "note": "one thread (intra- and inter-op) stands in for one phone core",
            "latency": latency(runner, X, windows), "throughput": throughput(runner, X),
            "memory": peak_memory(path, fmt, X.shape[1:])}
