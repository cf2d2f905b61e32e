"""The export formats behind one interface: write a file from the export graph, load it back as
a runner (windows to ``(probabilities, logits)``), read its metadata."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import torch

from fedhar.exceptions import ExportError

FORMATS = ("onnx", "executorch")
QUANTIZE = ("none", "int8", "int4")
SUFFIX = {"onnx": ".onnx", "executorch": ".pte"}


def export_file(graph: torch.nn.Module, example: torch.Tensor, out: Path, fmt: str, quantize: str,
                metadata: Mapping[str, str]) -> Path:
    """Write ``graph`` to ``out`` in ``fmt``, quantised as asked, with ``metadata`` inside."""
    out = Path(out)
    if out.suffix != SUFFIX[fmt]:
        raise ExportError(f"--out {out}: a {fmt} file should end in {SUFFIX[fmt]}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        from fedhar.export.onnx_format import export_onnx, quantize_onnx

        if quantize == "none":
            return export_onnx(graph, example, out, metadata)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(graph, example, Path(tmp) / "fp32.onnx", metadata)
            return quantize_onnx(fp32, out, quantize)
    from fedhar.export.executorch_format import export_pte

    return export_pte(graph, example, out, quantize, metadata)
