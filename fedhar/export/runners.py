"""Exported files run back, without torch: each runner maps windows ``(N, C, T)`` float32 to
``(probabilities, logits)``. The parity check, the benchmark and the memory probe use them, the
last in a process that never imports torch, as a device app would not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT, OUTPUTS = "window", ("probabilities", "logits")


class OnnxRunner:
    """An exported ONNX file run by onnxruntime on the CPU, with ``threads`` intra-op threads
    (None: onnxruntime's default, every core)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = Path(path)

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, logits = self.session.run(list(OUTPUTS), {INPUT: np.ascontiguousarray(X, dtype=np.float32)})
        return probs, logits

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)


def read_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}



def load_runner(path: Path, fmt: str, threads: int | None = None):
    """The exported file as a callable ``X (N, C, T) -> (probabilities, logits)``."""
    if fmt == "onnx":
        return OnnxRunner(path, threads)
    return PteRunner(path, threads)


def file_metadata(path: Path, fmt: str) -> dict[str, str]:
    """The metadata stored inside an exported file."""
    return read_metadata(path) if fmt == "onnx" else load_runner(path, fmt).metadata


class PteRunner:
    """An ExecuTorch ``.pte`` run by ExecuTorch's Python runtime (XNNPACK), ``threads`` threads in
    its pool (None: its default, every core). Batches above the program's bound are split."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import logging

        logging.getLogger("torchao").setLevel(logging.ERROR)
        try:
            from executorch.runtime import Runtime
        except ImportError:
            from fedhar.exceptions import ExportError

            raise ExportError(f"{path}: running a .pte needs the `executorch` package (pip install -e "
                              "'.[executorch]').") from None
        if threads is not None:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(threads)
        self.program = Runtime.get().load_program(str(path))
        self.method = self.program.load_method("forward")
        self.path = Path(path)

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from fedhar.export.executorch_format import MAX_BATCH

        probs, logits = [], []
        for i in range(0, len(X), MAX_BATCH):
            p, lg = self.method.execute([torch.from_numpy(np.ascontiguousarray(X[i : i + MAX_BATCH], dtype=np.float32))])
            probs.append(p.numpy().copy())
            logits.append(lg.numpy().copy())
        return np.concatenate(probs), np.concatenate(logits)

    @property
    def metadata(self) -> dict[str, str]:
        import json

        from fedhar.export.executorch_format import METADATA_METHOD

        blob = self.program.load_method(METADATA_METHOD).execute([])[0]
        return json.loads(bytes(blob.numpy().astype(np.uint8).tolist()).decode())
