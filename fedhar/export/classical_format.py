"""The classical model (window features + random forest) as one ONNX graph from raw windows.

The features are :class:`~fedhar.models.classical_torch.WindowFeatures` exported with
``torch.onnx.export``; the forest is converted by skl2onnx; ``onnx.compose.merge_models`` joins
them at the feature vector. The forest's probabilities cover the classes it was fitted on;
classes it never saw get probability 0, as :meth:`ClassicalModel.scores` gives them. A forest
has no logits: the graph's ``logits`` output repeats the probabilities, so the parity check
compares probabilities.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from fedhar.exceptions import ExportError
from fedhar.export.runners import INPUT, OUTPUTS
from fedhar.models.classical_torch import WindowFeatures


class _Features(torch.nn.Module):
    def __init__(self, channels: int, window_length: int) -> None:
        super().__init__()
        self.features = WindowFeatures(channels, window_length)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.features(window)


def export_classical_onnx(forest, num_classes: int, channels: int, window_length: int, example: torch.Tensor,
                          path: Path, metadata: Mapping[str, str]) -> Path:
    """Features + forest as one checked ONNX file: ``window -> (probabilities, logits)``."""
    import onnx
    from onnx import compose, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    from fedhar.export.onnx_format import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        feats_path = export_onnx(_Features(channels, window_length), example, Path(tmp) / "features.onnx", {},
                                 output_names=("features",))
        feats = onnx.load(str(feats_path))
    opset = next(o.version for o in feats.opset_import if o.domain in ("", "ai.onnx"))
    width = int(WindowFeatures(channels, window_length)(example[:1]).shape[1])
    seen = [int(c) for c in forest.classes_]
    rf = convert_sklearn(forest, initial_types=[("features", FloatTensorType([None, width]))],
                         final_types=[("forest_label", Int64TensorType([None])),
                                      ("forest_probabilities", FloatTensorType([None, len(seen)]))],
                         options={id(forest): {"zipmap": False}}, target_opset={"": opset, "ai.onnx.ml": 3})
    for node in rf.graph.node:  # free the names the fedhar outputs take
        node.input[:] = [f"forest_raw_{n}" if n in OUTPUTS else n for n in node.input]
        node.output[:] = [f"forest_raw_{n}" if n in OUTPUTS else n for n in node.output]
    probs = "forest_probabilities"
    if seen != list(range(num_classes)):  # place the seen classes' probabilities among all classes
        scatter = np.zeros((len(seen), num_classes), dtype=np.float32)
        scatter[np.arange(len(seen)), seen] = 1.0
        rf.graph.initializer.append(onnx.numpy_helper.from_array(scatter, "forest_class_scatter"))
        rf.graph.node.append(helper.make_node("MatMul", [probs, "forest_class_scatter"], ["forest_all_probabilities"]))
        probs = "forest_all_probabilities"
    for name in OUTPUTS:
        rf.graph.node.append(helper.make_node("Identity", [probs], [name]))
    del rf.graph.output[:]
    rf.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, num_classes])
                           for name in OUTPUTS)
    rf.ir_version = feats.ir_version
    for entry in rf.opset_import:  # skl2onnx asks for the lowest opset its nodes need; one graph needs one
        if entry.domain in ("", "ai.onnx"):
            entry.version = opset
    try:
        merged = compose.merge_models(feats, rf, io_map=[("features", "features")])
    except Exception as exc:
        raise ExportError(f"could not join the classical features and the forest in one ONNX graph: {exc}") from None
    for key, value in metadata.items():
        merged.metadata_props.add(key=key, value=str(value))
    onnx.save_model(merged, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path
