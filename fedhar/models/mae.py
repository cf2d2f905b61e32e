"""A masked-autoencoder HAR transformer: patches of a window, 75% hidden, the rest encoded, the
hidden patches reconstructed (He et al.'s MAE, applied to IMU windows as in the LoRA/QLoRA HAR
work fedhar reproduces).

After pretraining (``fedhar pretrain``) the encoder is a backbone like the LLMs: frozen, adapted
with LoRA on every attention projection (``q``, ``k``, ``v``, ``o``) and both feed-forward layers
(``fc1``, ``fc2``), or fully fine-tuned; its patch embedding becomes the model's frontend.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fedhar.exceptions import ModelError
from fedhar.models.config import MAEConfig

CONFIG_FILE = "mae.json"
WEIGHTS_FILE = "mae.safetensors"
LORA_TARGETS = ["q", "k", "v", "o", "fc1", "fc2"]


class Block(nn.Module):
    """Pre-norm transformer block with plainly named linears, so LoRA can target each of them."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        h = self.norm1(x)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, L, self.heads, D // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)))
        x = x + self.o(a.transpose(1, 2).reshape(B, L, D))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PatchEmbed(nn.Module):
    """``[B, C, T] -> [B, N, width]``: non-overlapping patches of ``patch`` samples over all
    channels, linearly embedded, plus a learned position embedding. Also the fine-tuned model's
    frontend."""

    def __init__(self, num_channels: int, window: int, patch: int, width: int) -> None:
        super().__init__()
        if window < patch:
            raise ModelError(f"a window of {window} samples is shorter than one patch ({patch} samples).")
        self.patch, self.num_patches = patch, window // patch
        self.proj = nn.Linear(num_channels * patch, width)
        self.pos = nn.Parameter(torch.zeros(1, self.num_patches, width))
        nn.init.normal_(self.pos, std=0.02)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T] -> [B, N, C * patch]`` (trailing samples beyond ``N * patch`` dropped)."""
        B, C, _ = x.shape
        x = x[:, :, : self.num_patches * self.patch].reshape(B, C, self.num_patches, self.patch)
        return x.permute(0, 2, 1, 3).reshape(B, self.num_patches, C * self.patch)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(self.patches(x)) + self.pos


class Encoder(nn.Module):
    def __init__(self, cfg: MAEConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def random_mask(batch: int, n: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B, N]`` bool, True where a patch is hidden: exactly ``round(N * ratio)`` per window,
    at least one hidden and one visible."""
    hidden = min(max(1, int(round(n * ratio))), n - 1)
    order = torch.rand(batch, n, generator=generator).argsort(dim=1)
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask.scatter_(1, order[:, :hidden], True)
    return mask


class MaskedAutoencoder(nn.Module):
    """Encoder on the visible patches, light decoder over all positions, MSE on hidden ones."""

    def __init__(self, cfg: MAEConfig, channels: Sequence[str], window: int) -> None:
        super().__init__()
        self.cfg, self.channels, self.window = cfg, tuple(channels), int(window)
        self.embed = PatchEmbed(len(channels), window, cfg.patch, cfg.width)
        self.encoder = Encoder(cfg)
        n = self.embed.num_patches
        self.dec_embed = nn.Linear(cfg.width, cfg.decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_width))
        self.dec_pos = nn.Parameter(torch.zeros(1, n, cfg.decoder_width))
        nn.init.normal_(self.dec_pos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.decoder = nn.ModuleList(Block(cfg.decoder_width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.dec_norm = nn.LayerNorm(cfg.decoder_width)
        self.pred = nn.Linear(cfg.decoder_width, len(channels) * cfg.patch)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, reconstruction [B, N, C*patch], mask [B, N])``; the loss covers hidden patches only."""
        target = self.embed.patches(x)
        B, n, _ = target.shape
        if mask is None:
            mask = random_mask(B, n, self.cfg.mask_ratio, generator)
        tokens = self.embed(x)
        keep = (~mask).nonzero(as_tuple=False)[:, 1].view(B, -1)  # same count per row
        visible = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        encoded = self.dec_embed(self.encoder(visible))
        full = self.mask_token.expand(B, n, -1).clone()
        full = full.scatter(1, keep[..., None].expand(-1, -1, full.shape[-1]), encoded) + self.dec_pos
        for block in self.decoder:
            full = block(full)
        recon = self.pred(self.dec_norm(full))
        per_patch = ((recon - target) ** 2).mean(-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, recon, mask

    # ------------------------------------------------------------------ files
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """``mae.json`` (shape, channels, window) + ``mae.safetensors``: what ``model.backbone.name`` names."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"kind": "fedhar-mae", "mae": asdict(self.cfg), "channels": list(self.channels), "window": self.window,
                **(extra or {})}
        (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        return folder


def is_mae_checkpoint(name: str) -> bool:
    return (Path(name).expanduser() / CONFIG_FILE).is_file()


def load_mae(folder: str | Path) -> MaskedAutoencoder:
    """The pretrained autoencoder saved by :meth:`MaskedAutoencoder.save`."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        model = MaskedAutoencoder(MAEConfig(**meta["mae"]), meta["channels"], meta["window"])
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        model.meta = meta
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: not a readable fedhar MAE checkpoint ({str(exc).splitlines()[0]}); "
                         "create one with `fedhar pretrain CONFIG --out DIR`.") from None
    return model
