"""The HAR model: normaliser -> frontend -> backbone -> head, and its exchangeable state.

With a prompt prefix (:mod:`fedhar.models.prompt`) the backbone reads the embedded prompt text
of each raw window before its sensor tokens; the head pools the sensor positions only.

The *trainable state* is what later issues send over the network and what continual
strategies snapshot: every parameter that is trained (frontend, LoRA, head; all of a
from-scratch backbone) plus the normalisation statistics. Its key set is fixed when the model
is built, so freezing parts later (head-only adaptation) does not change what is exchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from fedhar.exceptions import ModelError
from fedhar.models.backbones import NORM_PATTERN, Backbone
from fedhar.models.config import PARTS, HeadConfig


def part_of(name: str) -> str:
    """Which trainable part a state key belongs to: frontend, lora, head, backbone, norms or normalizer."""
    part = name.split(".", 1)[0]
    if part == "backbone":
        if "lora_" in name:
            return "lora"
        # An HF LLM sits under ``backbone.model``; a from-scratch backbone's own norms stay ``backbone``.
        if name.startswith("backbone.model.") and NORM_PATTERN.search(name):
            return "norms"
        return "backbone"
    return part


class Normalizer(nn.Module):
    """Per-channel standardisation with statistics fitted on training data, saved with the model."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_channels))
        self.register_buffer("std", torch.ones(num_channels))

    def set_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean[None, :, None]) / self.std[None, :, None]


class PoolingHead(nn.Module):
    """``[B, L, d] -> [B, K]``: mean or last-token pooling, then a linear classifier."""

    def __init__(self, d_model: int, num_classes: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.pooling = cfg.pooling
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(d_model, num_classes)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden.mean(dim=1) if self.pooling == "mean" else hidden[:, -1]

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features: the head's half after :meth:`pool` (feature-cache path)."""
        return self.classifier(self.drop(pooled))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(hidden))


class HARModel(nn.Module):
    """Sensor windows ``[B, C, T]`` to class logits ``[B, K]``."""

    def __init__(self, normalizer: Normalizer, frontend: nn.Module, backbone: Backbone, head: PoolingHead,
                 backbone_name: str, channels: tuple[str, ...], classes: tuple[str, ...],
                 prompt: nn.Module | None = None) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.frontend = frontend
        self.backbone = backbone
        self.head = head
        self.prompt = prompt  # holds no parameters: the state keys below are the same with or without it
        self.backbone_name = backbone_name
        self.channels = tuple(channels)
        self.classes = tuple(classes)
        trainable = [n for n, p in self.named_parameters() if p.requires_grad]
        self._state_keys = tuple(trainable + ["normalizer.mean", "normalizer.std"])
        self._frozen: frozenset[str] = frozenset()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features ``[B, d]`` (what a head-only adaptation sees)."""
        if self.prompt is not None:
            return self.head.pool(self._prompted_hidden(x))
        tokens = self._tokens(x)  # [B, L, d]
        hidden = self.backbone(tokens)  # [B, L, d]
        return self.head.pool(hidden)  # [B, d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prompt is not None:
            return self.head(self._prompted_hidden(x))
        return self.head(self.backbone(self._tokens(x)))

    def _prompted_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, d]`` of the sensor positions, read after the prompt prefix."""
        tokens = self._tokens(x)  # [B, L, d]
        prefix, prefix_mask = self.prompt(x)  # [B, P, d], [B, P] from the raw window
        seq = torch.cat([prefix.to(tokens.dtype), tokens], dim=1)  # [B, P + L, d]
        ones = torch.ones(tokens.shape[:2], dtype=prefix_mask.dtype, device=prefix_mask.device)
        hidden = self.backbone(seq, attention_mask=torch.cat([prefix_mask, ones], dim=1))
        return hidden[:, prefix.shape[1]:]  # mean pools the sensor tokens; `last` is the last sensor token

    @torch.no_grad()
    def tokens_per_window(self, x: torch.Tensor) -> float:
        """Sequence length the backbone sees per window of ``x``: sensor tokens plus the mean prompt
        prefix length (the cost column of a study)."""
        sensor = self._tokens(x[:1]).shape[1]
        return float(sensor) + (float(self.prompt.tokens_per_window(x)) if self.prompt is not None else 0.0)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise and embed; sensors that are all-zero in the raw window count as absent."""
        present = self.frontend.presence(x) if hasattr(self.frontend, "presence") else None
        return self.frontend(self.normalizer(x), present) if present is not None else self.frontend(self.normalizer(x))

    # ---------------------------------------------------------- exchangeable state
    @property
    def state_keys(self) -> tuple[str, ...]:
        return self._state_keys

    def trainable_state(self) -> "OrderedDict[str, torch.Tensor]":
        """Flat ``{name: tensor}`` of frontend + LoRA + head (+ trained backbone) + normaliser."""
        full = dict(self.named_parameters())
        full.update(dict(self.named_buffers()))
        return OrderedDict((k, full[k].detach().clone()) for k in self._state_keys)

    def load_trainable_state(self, state: dict[str, torch.Tensor | np.ndarray], where: str = "state") -> None:
        """Load a flat state; missing, unexpected or wrong-shape entries raise ModelError."""
        missing = [k for k in self._state_keys if k not in state]
        unexpected = [k for k in state if k not in self._state_keys]
        if missing or unexpected:
            raise ModelError(
                f"{where} does not match this model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}. Was it saved from a model "
                "with the same backbone, LoRA and frontend settings?"
            )
        full = dict(self.named_parameters())
        full.update(dict(self.named_buffers()))
        with torch.no_grad():
            for k in self._state_keys:
                value = torch.as_tensor(np.asarray(state[k]) if not isinstance(state[k], torch.Tensor) else state[k])
                if tuple(value.shape) != tuple(full[k].shape):
                    raise ModelError(f"{where}: `{k}` has shape {tuple(value.shape)}, expected {tuple(full[k].shape)}.")
                full[k].copy_(value.to(full[k].dtype))

    def state_bytes(self) -> int:
        """Bytes of the trainable state, the size of one federated update."""
        return int(sum(t.numel() * t.element_size() for t in self.trainable_state().values()))

    def param_counts(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        backbone = sum(p.numel() for p in self.backbone.parameters())
        return {"total_params": int(total), "trainable_params": int(trainable), "backbone_params": int(backbone)}

    def freeze(self, keys: list[str]) -> None:
        """Keep these state keys frozen whatever :meth:`set_trainable` later asks. They stay in the
        state (a federated client under ``shared_a`` loads its seeded A but never trains it)."""
        unknown = sorted(set(keys) - set(self._state_keys))
        if unknown:
            raise ModelError(f"Cannot freeze {unknown[:3]}: not in this model's trainable state.")
        self._frozen = frozenset(keys)
        for name, p in self.named_parameters():
            if name in self._frozen:
                p.requires_grad_(False)

    def set_trainable(self, parts: tuple[str, ...] = PARTS) -> None:
        """Choose which parts train (e.g. ``("head",)`` for head-only adaptation).

        ``lora`` means the adapter weights of an LLM backbone; ``backbone`` means a from-scratch
        backbone's own weights. Frozen pretrained weights never train.
        """
        valid = set(PARTS)
        if not set(parts) <= valid:
            raise ModelError(f"Unknown trainable parts {sorted(set(parts) - valid)}; valid: {sorted(valid)}.")
        trainable_names = set(self._state_keys)
        for name, p in self.named_parameters():
            if name not in trainable_names:
                continue
            p.requires_grad_(part_of(name) in parts and name not in self._frozen)
