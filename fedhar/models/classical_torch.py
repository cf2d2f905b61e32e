""":func:`~fedhar.models.classical.window_features` in torch, so the classical model's features can
be part of an exported graph (``fedhar export``). It computes the same statistics in the same
order; numpy and torch round differently, so values agree to float32 precision, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PERCENTILES = (10, 25, 50, 75, 90)


class WindowFeatures(nn.Module):
    """``(N, C, T) -> (N, F)``: the classical model's window features."""

    def __init__(self, channels: int, window_length: int) -> None:
        super().__init__()
        self.c, self.t = int(channels), int(window_length)
        iu = np.triu_indices(self.c, 1)
        self.register_buffer("iu0", torch.as_tensor(iu[0], dtype=torch.long), persistent=False)
        self.register_buffer("iu1", torch.as_tensor(iu[1], dtype=torch.long), persistent=False)
        bins = self.t // 2  # rfft bins after dropping the DC one
        self.register_buffer("freq", torch.arange(bins, dtype=torch.float32), persistent=False)
        # np.percentile's linear interpolation between the sorted samples at fixed positions
        pos = [q / 100 * (self.t - 1) for q in PERCENTILES]
        self.lo = [int(np.floor(p)) for p in pos]
        self.hi = [min(lo + 1, self.t - 1) for lo in self.lo]
        self.frac = [p - lo for p, lo in zip(pos, self.lo)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        mags = [torch.linalg.vector_norm(x[:, i : i + 3], dim=1, keepdim=True) for i in range(0, self.c - self.c % 3, 3)]
        s = torch.cat([x, *mags], dim=1) if mags else x
        d = s[:, :, 1:] - s[:, :, :-1]
        spec = torch.fft.rfft(s, dim=2).abs()[:, :, 1:]
        srt = torch.sort(s, dim=2).values
        pct = [srt[:, :, lo] + (srt[:, :, hi] - srt[:, :, lo]) * f for lo, hi, f in zip(self.lo, self.hi, self.frac)]
        feats = [s.mean(2), s.std(2, unbiased=False), s.amin(2), s.amax(2), *pct,
                 d.abs().mean(2), d.std(2, unbiased=False), (s**2).mean(2),
                 spec.argmax(2).float(), spec.amax(2), (spec * self.freq).sum(2) / (spec.sum(2) + 1e-8)]
        z = (x - x.mean(2, keepdim=True)) / (x.std(2, unbiased=False, keepdim=True) + 1e-8)
        corr = torch.einsum("nit,njt->nij", z, z) / self.t
        feats.append(corr[:, self.iu0, self.iu1])
        return torch.cat(feats, dim=1)
