"""The module that gets exported: a raw window ``(N, C, T)`` float32 to class probabilities.

Everything a deployed model needs is inside: the normaliser (its statistics are part of the
trained state), the frontend, the backbone with LoRA merged into its weights, pooling and the
head. The graph returns ``(probabilities, logits)``: the app uses the first, the parity check the
second.
"""

from __future__ import annotations

import torch
from torch import nn

from fedhar.exceptions import ExportError
from fedhar.models.har_model import HARModel


def merge_lora(model: HARModel) -> int:
    """Fold every LoRA adapter of ``model`` into its base weights and drop the adapter modules
    (PEFT's ``merge_and_unload``); returns the number of merged layers. A merged layer computes
    ``W + s B A`` in one matmul, so the exported graph has the frozen model's shape and cost."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    backbone = model.backbone
    inner = getattr(backbone, "model", None)
    if isinstance(inner, PeftModel):
        count = sum(isinstance(m, BaseTunerLayer) for m in inner.modules())
        backbone.model = inner.merge_and_unload()
        return count
    # LoRA injected without a PeftModel wrapper (the MAE encoder): merge each layer, then put its
    # base layer back where the LoRA layer was.
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BaseTunerLayer):
                child.merge()
                setattr(parent, name, child.get_base_layer())
                count += 1
    return count


class ExportGraph(nn.Module):
    """``window (N, C, T) -> (probabilities (N, K), logits (N, K))`` in float32."""

    def __init__(self, model: HARModel) -> None:
        super().__init__()
        if model.prompt is not None:
            raise ExportError("models with a prompt prefix (`model.prompt`) build their prefix from text at run time; "
                              "they cannot be exported as one graph. Export a model without `model.prompt`.")
        self.model = model.float().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def forward(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(window).float()
        return torch.softmax(logits, dim=-1), logits
