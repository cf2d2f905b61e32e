"""Shared pieces of the benchmarks: the machine's matmul ceiling, model configs, memory sampling,
and writing each section as JSON plus a Markdown table.

Every number a benchmark reports is measured in the same process and run; nothing is copied
from elsewhere. Timings use ``time.perf_counter`` around whole steps, including Python overhead.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from fedhar.config import ExperimentConfig, build_config

# The model of configs/central_uci.yaml: UCI-HAR windows (9 channels x 128 samples, 6 classes).
FRONTEND = {"tokens": 32, "channels": [32, 64], "kernels": [7, 5], "strides": [1, 1]}
UCI_CHANNELS = tuple(f"{s}_{a}" for s in ("body_acc", "body_gyro", "total_acc") for a in "xyz")
LORA = {"r": 8, "alpha": 16, "dropout": 0.05}


def experiment(backbone: dict, train: dict | None = None, data: dict | None = None, federated: dict | None = None,
               name: str = "bench", seed: int = 0) -> ExperimentConfig:
    """An ExperimentConfig with the benchmark's model settings and the given overrides."""
    raw: dict[str, Any] = {"name": name, "seed": seed,
                           "model": {"backbone": backbone, "frontend": dict(FRONTEND), "head": {"pooling": "mean"}},
                           "train": {"progress": False, **(train or {})}}
    if data:
        raw["data"] = data
    if federated:
        raw["federated"] = federated
    return build_config(raw)


def iid_federation(num_clients: int, rounds: int, smoke: bool, layers: int, batch_size: int, name: str,
                   **federated: Any) -> ExperimentConfig:
    """The federated benchmarks' run: a stratified 3000-window UCI-HAR sample split IID over
    ``num_clients`` clients, all of them every round, on the first ``layers`` SmolLM2 blocks with
    LoRA (``smoke``: synthetic windows and the tiny test backbone)."""
    if smoke:
        data = {"source": "synthetic", "split": "subject", "test_fraction": 0.3, "options": {"n_per_class": 20, "subjects": 6}}
        backbone = {"name": "tiny-llama", "layers": 2, "lora": {"r": 4, "alpha": 8}}
    else:
        data = {"source": "uci_har", "root": os.environ.get("FEDHAR_DATA_DIR"), "split": "official", "max_windows": 3000}
        backbone = {"name": "smollm2-135m", "layers": layers, "lora": LORA}
    fed = {"rounds": rounds, "partition": "iid", "num_clients": num_clients, "local_epochs": 1,
           "local_test_fraction": 0.2, "fraction_train": 1.0, "fraction_evaluate": 1.0,
           "min_train_clients": num_clients, "min_evaluate_clients": num_clients,
           "min_available_clients": num_clients, **federated}
    return experiment(backbone, {"batch_size": batch_size, "schedule": "constant", "precision": "bf16"}, data, fed, name=name)


def matmul_peak(dtype: torch.dtype, sizes: Sequence[int] = (1024, 2048, 3072), seconds: float = 1.5) -> dict:
    """The best square-matmul rate this process reaches (FLOP/s), the ceiling a model is compared to.

    Several sizes, each run for ``seconds`` after a warm-up; the maximum is the ceiling.
    """
    best, per_size = 0.0, {}
    for n in sizes:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        for _ in range(2):
            a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        rate = 2 * n**3 * reps / (time.perf_counter() - t0)
        per_size[n] = rate
        best = max(best, rate)
    return {"flops_per_s": best, "per_size": per_size}


def machine() -> dict:
    """What the numbers were measured on."""
    flags = ""
    try:
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    except (OSError, StopIteration):
        pass
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags}


class PeakMemory:
    """Peak summed memory of this process and all its children (Ray workers included).

    Reports both RSS (counts shared pages, such as a memory-mapped backbone, once per process)
    and PSS (splits shared pages between the processes that map them: the honest total).
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        rss = pss = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                info = p.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def md_table(rows: Iterable[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """Markdown table; ``columns`` are (key, header, format spec)."""
    rows = list(rows)
    out = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("n/a" if v is None else (format(v, fmt) if fmt else str(v)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def write_section(out: Path, name: str, payload: dict, markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    (out / f"{name}.md").write_text(markdown + "\n")


def section_main(run, doc: str | None, extra=None) -> None:
    """The command line every section script shares: ``--out``, ``--smoke`` (+ ``extra`` args)."""
    import argparse

    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--smoke", action="store_true", help="tiny models and data: checks the script runs (seconds)")
    for args, kwargs in extra or ():
        ap.add_argument(*args, **kwargs)
    ns = vars(ap.parse_args())
    out, smoke = Path(ns.pop("out")), ns.pop("smoke")
    print(run(out, smoke, **ns)["markdown"])
