"""Build any configured model from the data it will see (channels, window length, classes)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from fedhar.models.backbones import build_backbone
from fedhar.models.config import ModelConfig
from fedhar.models.frontend import build_frontend
from fedhar.models.har_model import HARModel, Normalizer, PoolingHead
from fedhar.models.text_model import TOKEN_CHANNELS, build_text_model

NON_NEURAL = ("classical",)


def build_model(
    cfg: ModelConfig, channels: Sequence[str], window_length: int, classes: Sequence[str], seed: int = 0,
    vocab_ids: np.ndarray | None = None, rate_hz: float | None = None, units: Sequence[str] | None = None,
) -> HARModel:
    """Frozen backbone first (its hidden size and embedding norm shape the frontend), then the rest.

    Seeded before the backbone too: PEFT draws the LoRA ``A`` matrices from torch's global
    generator, so without it two models built in one process would start from different adapters.

    Text windows (the single channel ``token``) get a :class:`~fedhar.models.text_model.TextHARModel`;
    ``vocab_ids`` (the training token ids) serve its optional vocabulary trimming.

    Language couplings: ``model.head.kind: text`` builds the label-name head (prototypes from the
    frozen LLM's hidden states of the class names); ``model.prompt.enabled`` a text prefix before
    the sensor tokens (``rate_hz``, the windows' sampling rate, fills its template where
    ``model.prompt.rate_hz`` is null, and ``units``, one per channel, its units unless
    ``model.prompt.units`` overrides them).
    """
    if tuple(channels) == TOKEN_CHANNELS:
        return build_text_model(cfg, classes, seed, vocab_ids)
    torch.manual_seed(seed)
    backbone = build_backbone(cfg.backbone, seed)
    torch.manual_seed(seed)
    if hasattr(backbone, "make_frontend"):  # an MAE brings its own pretrained patch embedding
        frontend = backbone.make_frontend(channels, window_length)
    else:
        frontend = build_frontend(cfg.frontend, channels, window_length, backbone.hidden_size, backbone.embedding_norm)
    if cfg.head.kind == "text":
        from fedhar.models.label_head import build_label_head

        head = build_label_head(backbone, cfg.backbone.name, classes, cfg.head)
    else:
        head = PoolingHead(backbone.hidden_size, len(classes), cfg.head)
    prompt = None
    if cfg.prompt.enabled:
        from fedhar.models.prompt import build_prompt

        units = [cfg.prompt.units] * len(channels) if cfg.prompt.units else units
        prompt = build_prompt(cfg.prompt, backbone, cfg.backbone.name, channels, window_length, rate_hz, units)
    return HARModel(Normalizer(len(channels)), frontend, backbone, head, cfg.backbone.name, tuple(channels),
                    tuple(classes), prompt=prompt)
