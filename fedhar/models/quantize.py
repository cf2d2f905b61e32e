"""QLoRA's frozen side on CPU: the backbone's linear layers stored in 4 bit (NF4) or 8 bit
(LLM.int8) with bitsandbytes, under LoRA adapters that stay in full precision.

Why bitsandbytes: since 0.46 it quantises and runs these layers on CPU, and PEFT wraps its
``Linear4bit``/``Linear8bitLt`` with LoRA directly. (torchao's int4 CPU path needs a kernel
package that is CUDA-only here; its int8 works, but PEFT's LoRA over it is less established.)
Weights are dequantised on the fly in the forward pass, so a quantised backbone saves memory,
not time, on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from fedhar.exceptions import ModelError

BITS = (4, 8)


def quantize_linear(layer: nn.Linear, bits: int) -> nn.Module:
    """A frozen bitsandbytes copy of ``layer``: NF4 with fp32 compute (4), or int8 (8)."""
    try:
        import bitsandbytes as bnb
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelError(f"`model.backbone.quantize` needs bitsandbytes ({exc}); pip install bitsandbytes.") from None
    weight = layer.weight.data.detach().to(torch.float32).clone()
    if bits == 4:
        q = bnb.nn.Linear4bit(layer.in_features, layer.out_features, bias=layer.bias is not None,
                              compute_dtype=torch.float32, quant_type="nf4", device="meta")
        q.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
        # bitsandbytes repacks NF4 weights for its AVX512-BF16 kernel at the first eval-mode call;
        # a training step after that adds the bias in place into an autograd graph and fails
        # (bitsandbytes 0.50.2), so keep the one layout that serves both evaluation and training.
        q.support_avx512bf16_for_cpu = False
    elif bits == 8:
        q = bnb.nn.Linear8bitLt(layer.in_features, layer.out_features, bias=layer.bias is not None,
                                has_fp16_weights=False, threshold=0.0, device="meta")
        q.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        raise ModelError(f"`model.backbone.quantize` must be one of {BITS}; got {bits}.")
    if layer.bias is not None:
        q.bias = nn.Parameter(layer.bias.data.detach().to(torch.float32).clone(), requires_grad=False)
    return q.to("cpu")  # bitsandbytes quantises on this move


def quantize_linears(module: nn.Module, bits: int) -> int:
    """Replace every ``nn.Linear`` inside ``module`` in place; returns how many were replaced."""
    targets = [(name, m) for name, m in module.named_modules() if type(m) is nn.Linear]
    for name, layer in targets:
        parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        setattr(parent, name.rsplit(".", 1)[-1], quantize_linear(layer, bits))
    return len(targets)


def frozen_bytes(module: nn.Module) -> int:
    """Bytes held by ``module``'s frozen weights, quantisation statistics included (what a
    quantised backbone saves; trainable adapters are not counted)."""
    total = 0
    seen: set[int] = set()
    for t in list(module.parameters()) + list(module.buffers()):
        if t.requires_grad or id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
        state = getattr(t, "quant_state", None)  # NF4: per-block absmax (and its own statistics)
        if state is not None:
            for part in (getattr(state, "absmax", None), getattr(getattr(state, "state2", None), "absmax", None),
                         getattr(state, "offset", None)):
                if isinstance(part, torch.Tensor):
                    total += part.numel() * part.element_size()
        scb = getattr(t, "SCB", None)  # int8: one scale per output row
        if isinstance(scb, torch.Tensor):
            total += scb.numel() * scb.element_size()
    return int(total)
