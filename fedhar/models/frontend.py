"""Structured convolutional frontend: one temporal-conv branch per sensor, fused into L tokens.

Why per-sensor branches: accelerometer and gyroscope triads have different units, noise and
dynamics; separate filters first and fusion later is what HAR convnets and the LLM-for-HAR
papers use. Why the norm scaling: a frozen LLM has only ever seen token embeddings of a
particular magnitude; inputs far outside it drive the attention into saturation.

Missing sensors: a window whose channels of one sensor are all exactly zero (how fedhar fills a
gyroscope a device does not have) is treated as *absent*. Its branch output is replaced by a
learned per-sensor "absent" feature map instead of the branch's response to a constant input,
so a gyroscope-less device and a still gyroscope look different to the model, and the other
sensors' branches are unaffected.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from fedhar.data.dataset import sensor_of
from fedhar.models.config import FrontendConfig
from fedhar.registry import Registry

FRONTENDS: Registry[type[nn.Module]] = Registry("frontend")


class SensorBranch(nn.Module):
    """Temporal conv stack over one sensor's channels: ``[B, c, T] -> [B, channels[-1], T']``."""

    def __init__(self, in_channels: int, cfg: FrontendConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, k, s in zip(cfg.channels, cfg.kernels, cfg.strides):
            layers += [nn.Conv1d(c_in, c_out, k, stride=s, padding=k // 2), nn.GroupNorm(1, c_out), nn.GELU()]
            c_in = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@FRONTENDS.register("conv")
class ConvFrontend(nn.Module):
    """``[B, C, T] -> [B, L, d_model]`` with one branch per sensor group of ``channels``."""

    def __init__(
        self,
        channels: Sequence[str],
        window_length: int,
        d_model: int,
        cfg: FrontendConfig,
        embedding_norm: float | None = None,
    ) -> None:
        super().__init__()
        groups: dict[str, list[int]] = {}
        for i, ch in enumerate(channels):
            groups.setdefault(sensor_of(ch), []).append(i)
        self.sensor_names = list(groups)
        for name, idx in groups.items():
            self.register_buffer(f"idx_{len(self._buffers)}", torch.tensor(idx), persistent=False)
        self._index_names = [f"idx_{i}" for i in range(len(groups))]
        self.branches = nn.ModuleList(SensorBranch(len(idx), cfg) for idx in groups.values())
        self.absent = nn.Parameter(torch.zeros(len(groups), cfg.channels[-1]))
        self.pool = nn.AdaptiveAvgPool1d(cfg.tokens)
        self.proj = nn.Linear(len(groups) * cfg.channels[-1], d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(cfg.dropout)
        # Per-token L2 norm after LayerNorm is ~sqrt(d); rescale to the backbone's embedding norm.
        scale = embedding_norm / math.sqrt(d_model) if (cfg.scale_to_embedding_norm and embedding_norm) else 1.0
        self.register_buffer("scale", torch.tensor(float(scale)))

    def presence(self, raw: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` bool: which sensors carry signal in each raw (un-normalised) window."""
        return torch.stack([raw.index_select(1, getattr(self, n)).ne(0).flatten(1).any(1) for n in self._index_names], 1)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        feats = [branch(x.index_select(1, getattr(self, n))) for branch, n in zip(self.branches, self._index_names)]
        if present is not None and not bool(present.all()):
            feats = [torch.where(present[:, i, None, None], f, self.absent[i][None, :, None].to(f.dtype))
                     for i, f in enumerate(feats)]
        h = self.pool(torch.cat(feats, dim=1))  # [B, S*c, T'] -> [B, S*c, L]
        h = self.proj(h.transpose(1, 2))  # [B, L, d_model]
        return self.drop(self.norm(h) * self.scale)


def build_frontend(
    cfg: FrontendConfig, channels: Sequence[str], window_length: int, d_model: int, embedding_norm: float | None
) -> nn.Module:
    cls = FRONTENDS.get(cfg.kind, "model.frontend.kind")
    return cls(channels, window_length, d_model, cfg, embedding_norm)
