"""Sensor-window frontends: ``[B, C, T]`` (plus which sensors are present) to ``[B, L, d_model]`` tokens.

Two kinds, registered in :data:`FRONTENDS` and chosen by ``model.frontend.kind``:

* ``conv`` (:class:`ConvFrontend`): one temporal-conv branch per sensor, fused and pooled into
  ``model.frontend.tokens`` tokens.
* ``patch`` (:class:`PatchFrontend`): overlapping patches with instance normalisation, one token
  per patch and sensor (or channel): the GPT4TS / PatchTST recipe.

Why per-sensor grouping: accelerometer and gyroscope triads have different units, noise and
dynamics; separate embeddings first and fusion later is what HAR convnets and the LLM-for-HAR
papers use. Why the norm scaling: a frozen LLM has only ever seen token embeddings of a
particular magnitude; inputs far outside it drive the attention into saturation.

Missing sensors: a window whose channels of one sensor are all exactly zero (how fedhar fills a
gyroscope a device does not have) is treated as *absent* (:meth:`SensorFrontend.presence`). Its
features are replaced by a learned per-sensor "absent" embedding instead of the response to a
constant input, so a gyroscope-less device and a still gyroscope look different to the model,
and the other sensors' features are unaffected.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from fedhar.data.dataset import sensor_of
from fedhar.exceptions import ConfigError, ModelError
from fedhar.models.config import FrontendConfig
from fedhar.registry import Registry

FRONTENDS: Registry[type[nn.Module]] = Registry("frontend")


def embedding_scale(cfg: FrontendConfig, d_model: int, embedding_norm: float | None) -> float:
    """Factor that brings LayerNorm-ed tokens (L2 norm ~sqrt(d)) to the backbone's embedding norm."""
    return embedding_norm / math.sqrt(d_model) if (cfg.scale_to_embedding_norm and embedding_norm) else 1.0


class SensorFrontend(nn.Module):
    """Base of the frontends: channels grouped by sensor (``acc_x, acc_y, acc_z`` -> ``acc``) and
    per-window sensor presence. Holds no parameters, so subclasses' initialisation is unchanged."""

    def __init__(self, channels: Sequence[str]) -> None:
        super().__init__()
        groups: dict[str, list[int]] = {}
        for i, ch in enumerate(channels):
            groups.setdefault(sensor_of(ch), []).append(i)
        self.sensor_names = list(groups)
        self.group_sizes = [len(idx) for idx in groups.values()]
        self._index_names = [f"idx_{i}" for i in range(len(groups))]
        for name, idx in zip(self._index_names, groups.values()):
            self.register_buffer(name, torch.tensor(idx), persistent=False)
        # Sensor index of each channel, for per-channel token streams.
        sensor_ids = {name: s for s, name in enumerate(groups)}
        self.register_buffer("channel_sensor", torch.tensor([sensor_ids[sensor_of(ch)] for ch in channels]),
                             persistent=False)

    def sensor_channels(self, x: torch.Tensor, s: int) -> torch.Tensor:
        """``[B, C, ...] -> [B, c_s, ...]``: the channels of sensor ``s``."""
        return x.index_select(1, getattr(self, self._index_names[s]))

    def presence(self, raw: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` bool: which sensors carry signal in each raw (un-normalised) window."""
        return torch.stack([self.sensor_channels(raw, s).ne(0).flatten(1).any(1)
                            for s in range(len(self.sensor_names))], 1)


def some_absent(present: torch.Tensor | None) -> bool:
    """Whether the absent-sensor path must run: a sensor is absent in some window. Skipping it
    when all are present saves time; while exporting (``torch.export``, ONNX) it always runs, since
    a graph cannot branch on the data and the path is exact when every sensor is present."""
    if present is None:
        return False
    return torch.compiler.is_exporting() or not bool(present.all())


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
class ConvFrontend(SensorFrontend):
    """``[B, C, T] -> [B, L, d_model]`` with one branch per sensor group of ``channels``;
    ``L = model.frontend.tokens``."""

    def __init__(
        self,
        channels: Sequence[str],
        window_length: int,
        d_model: int,
        cfg: FrontendConfig,
        embedding_norm: float | None = None,
    ) -> None:
        super().__init__(channels)
        groups = len(self.sensor_names)
        self.branches = nn.ModuleList(SensorBranch(c, cfg) for c in self.group_sizes)
        self.absent = nn.Parameter(torch.zeros(groups, cfg.channels[-1]))
        self.pool = nn.AdaptiveAvgPool1d(cfg.tokens)
        self.proj = nn.Linear(groups * cfg.channels[-1], d_model)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("scale", torch.tensor(float(embedding_scale(cfg, d_model, embedding_norm))))

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        feats = [branch(self.sensor_channels(x, s)) for s, branch in enumerate(self.branches)]
        if some_absent(present):
            feats = [torch.where(present[:, i, None, None], f, self.absent[i][None, :, None].to(f.dtype))
                     for i, f in enumerate(feats)]
        h = self.pool(torch.cat(feats, dim=1))  # [B, S*c, T'] -> [B, S*c, L]
        h = self.proj(h.transpose(1, 2))  # [B, L, d_model]
        return self.drop(self.norm(h) * self.scale)


def num_patches(window_length: int, patch_length: int, patch_stride: int) -> int:
    """Patches that cover a window completely (the last one padded by repeating the last sample)."""
    if patch_length > window_length:
        raise ConfigError(f"`model.frontend.patch_length` ({patch_length}) exceeds the window length "
                          f"({window_length} samples); use a patch length of at most {window_length}.")
    return math.ceil((window_length - patch_length) / patch_stride) + 1


@FRONTENDS.register("patch")
class PatchFrontend(SensorFrontend):
    """``[B, C, T] -> [B, L, d_model]``: overlapping patches as tokens (GPT4TS / PatchTST).

    Each window is cut into ``n = ceil((T - patch_length) / patch_stride) + 1`` patches
    (``unfold``; the end is padded by repeating the last sample, so every sample is covered).

    * ``patch_per: sensor``: a sensor's patch (its channels x patch_length) goes through that
      sensor's own Linear; ``L = n * S`` tokens for ``S`` sensors, plus a learned per-sensor
      embedding.
    * ``patch_per: channel`` (PatchTST's channel independence): every channel's patch goes through
      one shared ``Linear(patch_length -> d_model)``; ``L = n * C`` tokens for ``C`` channels, plus
      a learned per-channel embedding.

    Tokens are ordered sensor- (or channel-) major, each stream in time order, and carry a learned
    positional embedding over the patch index.

    ``instance_norm`` (RevIN): each window is standardised per channel over time before patching, so
    patch tokens see shape, not level or scale; the removed per-channel mean and log-std are embedded
    by a ``Linear(2C -> d_model)`` into one *stats token* prepended to the patch tokens, so that
    information is not lost (``L`` is then one more). Statistics of absent sensors are zeroed.

    An absent sensor's patch embeddings are replaced by its learned absent embedding (the sensor
    and positional embeddings are still added). All tokens are then LayerNorm-ed and scaled to the
    backbone's token-embedding norm, as in :class:`ConvFrontend`.

    ``model.frontend.tokens`` (and ``channels``, ``kernels``, ``strides``) are ignored: the number
    of tokens follows from the window length, ``patch_length``, ``patch_stride`` and ``patch_per``.
    """

    eps = 1e-5

    def __init__(
        self,
        channels: Sequence[str],
        window_length: int,
        d_model: int,
        cfg: FrontendConfig,
        embedding_norm: float | None = None,
    ) -> None:
        super().__init__(channels)
        self.patch_length, self.patch_stride = cfg.patch_length, cfg.patch_stride
        self.window_length = int(window_length)
        self.n_patches = num_patches(self.window_length, cfg.patch_length, cfg.patch_stride)
        self.pad = (self.n_patches - 1) * cfg.patch_stride + cfg.patch_length - self.window_length
        self.per_channel = cfg.patch_per == "channel"
        self.instance_norm = cfg.instance_norm
        sensors, n_channels = len(self.sensor_names), len(channels)
        if self.per_channel:
            self.embed = nn.Linear(cfg.patch_length, d_model)
            self.stream = nn.Parameter(torch.randn(n_channels, d_model) * 0.02)  # per-channel embedding
        else:
            self.embeds = nn.ModuleList(nn.Linear(c * cfg.patch_length, d_model) for c in self.group_sizes)
            self.stream = nn.Parameter(torch.randn(sensors, d_model) * 0.02)  # per-sensor embedding
        self.position = nn.Parameter(torch.randn(self.n_patches, d_model) * 0.02)
        self.absent = nn.Parameter(torch.randn(sensors, d_model) * 0.02)
        self.stats = nn.Linear(2 * n_channels, d_model) if cfg.instance_norm else None
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.register_buffer("scale", torch.tensor(float(embedding_scale(cfg, d_model, embedding_norm))))

    @property
    def num_tokens(self) -> int:
        """Tokens per window: ``n_patches * streams`` (+1 stats token with instance_norm)."""
        streams = len(self.channel_sensor) if self.per_channel else len(self.sensor_names)
        return self.n_patches * streams + int(self.instance_norm)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, C, n, patch_length]``."""
        if self.pad:
            x = torch.cat([x, x[..., -1:].expand(*x.shape[:-1], self.pad)], dim=-1)
        return x.unfold(-1, self.patch_length, self.patch_stride)

    def _stats_token(self, mean: torch.Tensor, std: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        """``[B, 1, d]`` from the per-channel mean and log-std that instance normalisation removed."""
        stats = torch.stack([mean, std.log()], dim=1)  # [B, 2, C]
        if present is not None:
            stats = stats * present[:, self.channel_sensor].unsqueeze(1).to(stats.dtype)
        return self.stats(stats.flatten(1)).unsqueeze(1)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.window_length:
            raise ModelError(f"the patch frontend was built for windows of {self.window_length} samples; got "
                              f"{x.shape[-1]} (check `data.window`).")
        stats = None
        if self.instance_norm:
            mean = x.mean(dim=-1)  # [B, C]
            std = torch.sqrt(x.var(dim=-1, unbiased=False) + self.eps)
            x = (x - mean[..., None]) / std[..., None]
            stats = self._stats_token(mean, std, present)
        patches = self._patches(x)  # [B, C, n, P]
        absent = some_absent(present)
        if self.per_channel:
            h = self.embed(patches)  # [B, C, n, d]
            if absent:
                keep = present[:, self.channel_sensor][..., None, None]  # [B, C, 1, 1]
                h = torch.where(keep, h, self.absent[self.channel_sensor][None, :, None].to(h.dtype))
        else:
            streams = []
            for s, embed in enumerate(self.embeds):
                p = self.sensor_channels(patches, s)  # [B, c, n, P]
                hs = embed(p.transpose(1, 2).flatten(2))  # [B, n, c*P] -> [B, n, d]
                if absent:
                    hs = torch.where(present[:, s, None, None], hs, self.absent[s].to(hs.dtype))
                streams.append(hs)
            h = torch.stack(streams, dim=1)  # [B, S, n, d]
        h = h + self.stream[None, :, None] + self.position[None, None]
        h = h.flatten(1, 2)  # [B, streams * n, d]
        if stats is not None:
            h = torch.cat([stats, h], dim=1)
        return self.drop(self.norm(h) * self.scale)


def build_frontend(
    cfg: FrontendConfig, channels: Sequence[str], window_length: int, d_model: int, embedding_norm: float | None
) -> nn.Module:
    cls = FRONTENDS.get(cfg.kind, "model.frontend.kind")
    return cls(channels, window_length, d_model, cfg, embedding_norm)
