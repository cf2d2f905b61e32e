"""ONNX: export with ``torch.onnx.export`` (dynamo), check with ``onnx.checker``, quantise with
onnxruntime's own quantisers, run with ``onnxruntime``.

Quantisation:

- ``int8``: ``onnxruntime.quantization.quantize_dynamic``: weights of MatMul/Gemm as int8, per
  channel; activations quantised on the fly. The usual choice for transformers on a phone CPU.
- ``int4``: ``MatMulNBitsQuantizer``: MatMul weights as 4-bit blocks of 32 (symmetric), run by
  onnxruntime's ``MatMulNBits`` kernel.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Mapping

import torch

from fedhar.exceptions import ExportError
from fedhar.export.runners import INPUT, OUTPUTS

log = logging.getLogger(__name__)



def export_onnx(graph: torch.nn.Module, example: torch.Tensor, path: Path, metadata: Mapping[str, str],
                output_names: tuple[str, ...] = OUTPUTS) -> Path:
    """``graph`` as a checked ONNX file with a dynamic batch axis and ``metadata`` in its
    ``metadata_props``."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        # torch.onnx prints its progress with print(); keep a CLI's output to fedhar's own lines
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, (example,), dynamo=True, input_names=[INPUT], output_names=list(output_names),
                                        dynamic_shapes={"window": {0: batch}}, external_data=False, verbose=False)
    except Exception as exc:  # torch.export's errors are long; the first lines say what it could not trace
        first = "\n".join(str(exc).strip().splitlines()[:4])
        raise ExportError(f"torch.onnx.export could not export this model: {first}") from None
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def quantize_onnx(src: Path, dst: Path, mode: str) -> Path:
    """``src`` quantised to ``dst`` (``int8`` or ``int4``), with ``src``'s metadata kept."""
    import onnx

    if mode == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    elif mode == "int4":
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        q = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=32, is_symmetric=True)
        q.process()
        q.model.save_model_to_file(str(dst), use_external_data_format=False)
    else:
        raise ExportError(f"unknown quantisation {mode!r}; expected none, int8 or int4.")
    model = onnx.load(str(dst))
    if not model.metadata_props:  # the quantisers rebuild the model; carry the metadata over
        for entry in onnx.load(str(src), load_external_data=False).metadata_props:
            model.metadata_props.add(key=entry.key, value=entry.value)
        onnx.save_model(model, str(dst))
    onnx.checker.check_model(str(dst))
    return dst
