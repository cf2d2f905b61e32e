"""ExecuTorch: ``torch.export`` lowered to XNNPACK, one ``.pte`` file, run back with ExecuTorch's
Python runtime.

ExecuTorch is an optional extra (``pip install -e '.[executorch]'``): it brings torchao, which
PEFT then imports in every fedhar process (with CUDA-library load errors printed on CPU
machines), so the default install leaves it out. Measured with executorch 1.5.1 and torch 2.13.

- The batch axis is dynamic up to :data:`MAX_BATCH`. XNNPACK's lowering sizes its buffers from
  the example input, so the example has exactly that many windows; the runner splits larger
  batches.
- Float32 only. Quantised ExecuTorch export (PT2E with ``XNNPACKQuantizer``) fails on the Hugging
  Face decoders' position ids and causal-mask construction under ``prepare_pt2e`` without changes to
  the backbone, so ``--quantize`` is refused here; ONNX has int8 and int4.
- The metadata is stored in the program as a constant method ``fedhar_metadata`` returning the
  JSON as bytes, so it travels inside the file.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Mapping

import torch

from fedhar.exceptions import ExportError

MAX_BATCH = 64
METADATA_METHOD = "fedhar_metadata"


def _require_executorch() -> None:
    try:
        import executorch  # noqa: F401
    except ImportError:
        raise ExportError("--format executorch needs the `executorch` package, an optional extra: "
                          "pip install -e '.[executorch]' (or pip install executorch). --format onnx needs nothing more.") from None
    logging.getLogger("torchao").setLevel(logging.ERROR)


def export_pte(graph: torch.nn.Module, example: torch.Tensor, path: Path, quantize: str,
               metadata: Mapping[str, str]) -> Path:
    """``graph`` lowered to XNNPACK as a ``.pte`` with ``metadata`` as a constant method."""
    if quantize != "none":
        raise ExportError(f"--format executorch --quantize {quantize}: quantised ExecuTorch export is not supported "
                          "(PT2E quantisation fails on the Hugging Face decoder's position ids and mask); use "
                          f"--format onnx --quantize {quantize}, or --format executorch in float32.")
    _require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    reps = -(-MAX_BATCH // len(example))
    full = torch.cat([example] * reps)[:MAX_BATCH]
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    blob = torch.tensor(list(json.dumps(dict(metadata)).encode()), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(graph, (full,), dynamic_shapes=({0: batch},))
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                                  constant_methods={METADATA_METHOD: blob})
            buffer = lowered.to_executorch().buffer
    except Exception as exc:
        first = "\n".join(str(exc).strip().splitlines()[:4])
        raise ExportError(f"ExecuTorch could not export this model: {first}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer)
    return path
