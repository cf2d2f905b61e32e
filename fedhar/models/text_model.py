"""Text windows (token ids) -> frozen LLM + LoRA -> mean over the text tokens -> head.

The same :class:`~fedhar.models.har_model.HARModel` interface as the sensor model (trainable
state, parts, ``features`` for head-only training), so the one training loop, the Flower layer
and distillation serve both paths. The frontend is the LLM's own token embedding, frozen;
only LoRA and the head train, and only they cross the network.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from fedhar.exceptions import ModelError
from fedhar.models.har_model import HARModel, Normalizer, PoolingHead

TOKEN_CHANNELS = ("token",)


class TokenEmbedding(nn.Module):
    """Ids ``[B, L]`` (``-1`` = padding) -> embeddings ``[B, L, d]``, frozen.

    With ``keep_ids`` only those rows of the LLM's table are kept (vocabulary trimming); every
    other id maps to one extra row, the mean of the kept ones.
    """

    def __init__(self, table: nn.Embedding, keep_ids: np.ndarray | None = None) -> None:
        super().__init__()
        vocab = table.num_embeddings
        if keep_ids is None:
            self.table = table
            self.register_buffer("remap", torch.empty(0, dtype=torch.long), persistent=False)
        else:
            keep = np.unique(np.asarray(keep_ids, dtype=np.int64))
            keep = keep[(keep >= 0) & (keep < vocab)]
            with torch.no_grad():
                rows = table.weight[torch.from_numpy(keep)].detach().clone()
                rows = torch.cat([rows, rows.mean(0, keepdim=True)])
            self.table = nn.Embedding.from_pretrained(rows, freeze=True)
            remap = torch.full((vocab,), len(keep), dtype=torch.long)
            remap[torch.from_numpy(keep)] = torch.arange(len(keep))
            self.register_buffer("remap", remap, persistent=False)
        self.vocab_size = vocab
        self.table.weight.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.clamp(min=0)
        if self.remap.numel():
            ids = self.remap[ids.clamp(max=self.vocab_size - 1)]
        return self.table(ids)


class TextHARModel(HARModel):
    """Token-id windows ``[B, 1, L]`` to class logits ``[B, K]``."""

    def __init__(self, frontend: TokenEmbedding, backbone, head: PoolingHead, backbone_name: str,
                 classes: Sequence[str]) -> None:
        super().__init__(Normalizer(1), frontend, backbone, head, backbone_name, TOKEN_CHANNELS, tuple(classes))
        # Token ids are not standardised: the normaliser is not part of the exchanged state.
        self._state_keys = tuple(k for k in self._state_keys if not k.startswith("normalizer."))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids = x[:, 0, :].long()  # [B, 1, L] -> [B, L]
        mask = ids >= 0  # [B, L]
        if not bool(mask.any(1).all()):
            raise ModelError("a text window has no tokens (all padding); drop empty windows before training.")
        hidden = self.backbone(self.frontend(ids), attention_mask=mask.long())  # [B, L, d]
        return hidden, mask

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled final hidden states ``[B, d]``: ``last`` is the last text token (which a causal
        LLM lets attend to the whole window), ``mean`` the mean over the text tokens; padding is
        excluded either way."""
        hidden, mask = self._encode(x)
        if self.head.pooling == "last":
            last = mask.long().sum(1) - 1  # right padding: the last real token
            return hidden[torch.arange(hidden.shape[0]), last]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.classify(self.features(x))

    def param_counts(self) -> dict[str, int]:
        """As for sensor models; ``backbone_params`` includes the (possibly trimmed) token table,
        which for text is part of what the LLM needs."""
        counts = super().param_counts()
        table = self.frontend.table.weight.numel()
        shared = any(p is self.frontend.table.weight for p in self.backbone.parameters())
        counts["embedding_params"] = int(table)
        if not shared:
            counts["backbone_params"] += int(table)
        return counts


def build_text_model(cfg, classes: Sequence[str], seed: int = 0, vocab_ids: np.ndarray | None = None) -> TextHARModel:
    """An LLM backbone over token ids. ``cfg`` is a :class:`~fedhar.models.config.ModelConfig`;
    ``vocab_ids`` are the training texts' ids, needed with ``model.text.trim_vocab``."""
    from fedhar.models.backbones import HFBackbone, build_backbone

    unsupported = [key for key, on in (("model.head.kind: text", cfg.head.kind == "text"),
                                       ("model.prompt.enabled", cfg.prompt.enabled),
                                       ("model.frontend.kind: patch", cfg.frontend.kind == "patch")) if on]
    if unsupported:
        raise ModelError(f"{', '.join(unsupported)}: the sensor-window couplings do not apply to text windows (token "
                         "ids already go through the LLM's own embedding); drop them for this data.")
    torch.manual_seed(seed)
    backbone = build_backbone(cfg.backbone, seed)
    if not isinstance(backbone, HFBackbone):
        raise ModelError(f"text windows need an LLM backbone with a token embedding; `model.backbone.name: "
                         f"{cfg.backbone.name}` has none. Use smollm2-135m, tiny-llama or a HF model.")
    table = backbone.model.get_input_embeddings()
    if cfg.text.trim_vocab:
        if vocab_ids is None:
            raise ModelError("`model.text.trim_vocab` needs the training token ids (build_model(..., vocab_ids=...)).")
        frontend = TokenEmbedding(table, vocab_ids)
        # The full table is never used again (the frontend feeds inputs_embeds): free it.
        backbone.model.set_input_embeddings(nn.Embedding(1, table.embedding_dim))
        backbone.model.get_input_embeddings().weight.requires_grad_(False)
    else:
        frontend = TokenEmbedding(table)
    torch.manual_seed(seed)
    head = PoolingHead(backbone.hidden_size, len(classes), cfg.head)
    return TextHARModel(frontend, backbone, head, cfg.backbone.name, classes)
