"""The label-name head: logits are scaled cosine similarities to the LLM's own reading of each class name.

Each class becomes a text (``model.head.label_texts`` or its name with spaces, written into
``model.head.template``); its *prototype* is the frozen LLM's last hidden state averaged over the
text's tokens, computed once when the model is built. A window's pooled feature is compared with
every prototype, so a class with no training windows still gets a score from its name alone
(zero-shot by name). A random-init backbone gives random-weight prototypes: the fair ablation.

The prototypes are a fixed function of the frozen backbone and the configuration, rebuilt with the
model, so they are a non-persistent buffer and never part of the exchanged trainable state; only
the two projections and the logit scale train (part ``head``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from fedhar.data.smarthome.tokenize import load_tokenizer
from fedhar.exceptions import ConfigError, ModelError
from fedhar.models.backbones import Backbone, HFBackbone
from fedhar.models.config import HeadConfig

MAX_SCALE = 100.0
"""Ceiling on the learned logit scale (CLIP's clamp), so the temperature cannot collapse."""

MASKED_BELOW = -1e8
"""Logits at or below this are label-masked entries (the loop sets them to -1e9)."""


def check_label_texts(classes: Sequence[str], cfg: HeadConfig) -> None:
    """Every key of ``model.head.label_texts`` must be a class and every text non-empty."""
    if not isinstance(cfg.label_texts, dict):
        raise ConfigError(f"`model.head.label_texts` must be a mapping {{class: text}}; got {cfg.label_texts!r}.")
    unknown = sorted(str(k) for k in cfg.label_texts if k not in set(classes))
    if unknown:
        raise ConfigError(f"`model.head.label_texts` names classes the data does not have: {', '.join(unknown)}; "
                          f"valid: {', '.join(classes)}.")
    for key, text in cfg.label_texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"`model.head.label_texts.{key}` must be a non-empty text; got {text!r}.")


def class_texts(classes: Sequence[str], cfg: HeadConfig) -> list[str]:
    """The text embedded for each class: its ``label_texts`` entry (default: the name with spaces)
    written into ``template`` at ``{label}``."""
    return [cfg.template.replace("{label}", cfg.label_texts.get(c, c.replace("_", " "))) for c in classes]


@torch.no_grad()
def text_prototypes(backbone: HFBackbone, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """``[K, d]``: the backbone's last hidden state averaged over each text's tokens.

    One text per forward pass (no padding), and each distinct text once, so equal texts get
    bit-identical prototypes. Runs in eval mode; every module's mode is restored afterwards.
    """
    modes = {m: m.training for m in backbone.modules()}
    backbone.eval()
    try:
        device = next(backbone.model.parameters()).device
        cache: dict[str, torch.Tensor] = {}
        for text in texts:
            if text in cache:
                continue
            ids = tokenizer.encode(text, add_special_tokens=False)
            if not ids:
                raise ConfigError(f"`model.head.label_texts` / `template`: the class text {text!r} has no tokens.")
            ids_t = torch.tensor([ids], dtype=torch.long, device=device)  # [1, n]
            out = backbone.model(input_ids=ids_t, attention_mask=torch.ones_like(ids_t), use_cache=False)
            cache[text] = out.last_hidden_state[0].float().mean(0)  # [d]
        return torch.stack([cache[t] for t in texts]).cpu()  # [K, d]
    finally:
        for m, training in modes.items():
            m.train(training)


def _identity_linear(d: int) -> nn.Linear:
    layer = nn.Linear(d, d)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(d))
        layer.bias.zero_()
    return layer


class LabelNameHead(nn.Module):
    """``[B, L, d] -> [B, K]``: pooling, then ``scale * cos(window_proj(x), proto_proj(prototype_k))``.

    Same interface as :class:`~fedhar.models.har_model.PoolingHead` (``pool``, ``classify``,
    ``forward``), plus :meth:`extra_loss`, the optional CLIP-style text-to-window term.
    """

    def __init__(self, prototypes: torch.Tensor, classes: Sequence[str], texts: Sequence[str], cfg: HeadConfig) -> None:
        super().__init__()
        if prototypes.ndim != 2 or prototypes.shape[0] != len(classes):
            raise ModelError(f"label-name head: prototypes must be [K={len(classes)}, d]; got {tuple(prototypes.shape)}.")
        d = int(prototypes.shape[1])
        self.classes = tuple(classes)
        self.texts = tuple(texts)
        self.pooling = cfg.pooling
        self.contrastive = float(cfg.contrastive)
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("prototypes", prototypes.detach().float().clone(), persistent=False)
        self.window_proj = _identity_linear(d)  # always: the head's capacity to move windows to the names
        self.proto_proj: nn.Module = _identity_linear(d) if cfg.projection else nn.Identity()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def scale(self) -> torch.Tensor:
        """The multiplier of the cosines, ``exp(logit_scale)`` capped at :data:`MAX_SCALE`."""
        return self.logit_scale.clamp(max=math.log(MAX_SCALE)).exp()

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.mean(dim=1) if self.pooling == "mean" else hidden[:, -1]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` from pooled features ``[B, d]`` (the feature-cache path)."""
        windows = nn.functional.normalize(self.window_proj(self.drop(pooled)), dim=-1)  # [B, d]
        protos = nn.functional.normalize(self.proto_proj(self.prototypes.to(windows.dtype)), dim=-1)  # [K, d]
        return self.scale.to(windows.dtype) * windows @ protos.T

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(hidden))

    def extra_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Text-to-window InfoNCE, weighted by ``model.head.contrastive`` (0: a zero tensor).

        For each class present in the batch, a softmax over the batch of that class's logit
        column; the positives are the class's windows (their mean log-probability). Averaged
        over the present classes. Label-masked entries (-1e9) get ~0 probability and are never
        positives.
        """
        if self.contrastive == 0:
            return logits.new_zeros(())
        present = labels.unique()  # [P]
        cols = logits[:, present].float()  # [B, P]
        positive = (labels[:, None] == present[None, :]) & (cols > MASKED_BELOW)  # [B, P]
        counts = positive.sum(0)  # [P]
        keep = counts > 0
        if not bool(keep.any()):
            return logits.new_zeros(())
        log_prob = cols.log_softmax(dim=0)  # over the batch
        per_class = -(log_prob * positive).sum(0)[keep] / counts[keep]
        return self.contrastive * per_class.mean()


def build_label_head(backbone: Backbone, backbone_name: str, classes: Sequence[str], cfg: HeadConfig) -> LabelNameHead:
    """The label-name head over ``classes``, prototypes from ``backbone`` (an HF LLM) read with
    ``backbone_name``'s tokenizer. LoRA, if any, is still zero here, so it does not touch them."""
    if not isinstance(backbone, HFBackbone):
        raise ModelError(f"model.head.kind: text needs an LLM backbone to embed the class names; `model.backbone.name: "
                         f"{backbone_name}` ({type(backbone).__name__}) has no text side. Use smollm2-135m, "
                         "tiny-llama or a Hugging Face model, or `model.head.kind: linear`.")
    check_label_texts(classes, cfg)
    texts = class_texts(classes, cfg)
    prototypes = text_prototypes(backbone, load_tokenizer(backbone_name), texts)
    return LabelNameHead(prototypes, classes, texts, cfg)
