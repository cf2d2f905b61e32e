"""Sequence backbones between frontend and head: frozen HF LLM (+ LoRA), a pretrained masked
autoencoder's encoder (+ LoRA), none, or a small from-scratch Transformer. All map
``[B, L, d] -> [B, L, d]``.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Callable

import numpy as np
import torch
from torch import nn

from fedhar.exceptions import ModelError
from fedhar.models.config import BackboneConfig
from fedhar.models.quantize import quantize_linears
from fedhar.hub import EMBEDDED, resolve_pretrained
from fedhar.registry import Registry

log = logging.getLogger(__name__)

BACKBONES: Registry[Callable[[BackboneConfig, int], "Backbone"]] = Registry("backbone")

NORM_PATTERN = re.compile(r"(norm|\.ln_\d|\.ln_f|\.wpe)")
"""Names of an HF LLM's normalisation layers and learned position embeddings (Llama's RMSNorms,
GPT-2's ``ln_*`` and ``wpe``): the ``norms`` part that ``model.backbone.train_norms`` trains."""

# LoRA targets per architecture (peft's own defaults adapt only q/v for Llama).
LORA_TARGETS = {**dict.fromkeys(("llama", "qwen2", "qwen3", "mistral"), ["q_proj", "k_proj", "v_proj", "o_proj"]),
                "gpt2": ["c_attn"]}


class Backbone(nn.Module):
    """Base class: ``hidden_size`` and the token-embedding norm the frontend should match."""

    hidden_size: int
    embedding_norm: float | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


@BACKBONES.register("none")
class IdentityBackbone(Backbone):
    """The no-LLM baseline: frontend tokens go straight to the pooling head."""

    def __init__(self, cfg: BackboneConfig, seed: int = 0) -> None:
        super().__init__()
        self.hidden_size = cfg.d_model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens


@BACKBONES.register("transformer")
class TransformerBackbone(Backbone):
    """Small from-scratch Transformer encoder, trained fully: the architecture-only baseline."""

    def __init__(self, cfg: BackboneConfig, seed: int = 0) -> None:
        super().__init__()
        self.hidden_size = cfg.d_model
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.heads, dim_feedforward=4 * cfg.d_model, dropout=0.1, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=cfg.layers or 4, enable_nested_tensor=False)
        self.pos = nn.Parameter(torch.zeros(1, 512, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens + self.pos[:, : tokens.shape[1]])


class HFBackbone(Backbone):
    """A frozen Hugging Face decoder fed with ``inputs_embeds``, optionally adapted with LoRA."""

    def __init__(self, base: nn.Module, cfg: BackboneConfig) -> None:
        super().__init__()
        self.hidden_size = int(base.config.hidden_size)
        with torch.no_grad():
            emb = base.get_input_embeddings().weight
            self.embedding_norm = float(emb.norm(dim=-1).mean())
        self.full_finetune = cfg.full_finetune
        for p in base.parameters():
            p.requires_grad_(cfg.full_finetune)
        base.get_input_embeddings().weight.requires_grad_(False)  # fed inputs_embeds: never used
        self.model_type = getattr(base.config, "model_type", "unknown")
        if cfg.quantize:
            self.quantized_layers = quantize_linears(base, cfg.quantize)
        if cfg.lora.enabled:
            from peft import LoraConfig, get_peft_model

            targets = cfg.lora.target_modules or LORA_TARGETS.get(self.model_type)
            lora_cfg = LoraConfig(
                r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules=targets,
                fan_in_fan_out=self.model_type == "gpt2",  # GPT-2 stores weights as Conv1D (in, out)
            )
            try:
                with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    base = get_peft_model(base, lora_cfg)
            except ValueError as exc:
                raise ModelError(
                    f"LoRA could not be attached to `{cfg.name}` ({self.model_type}): {exc}. "
                    "Set `model.backbone.lora.target_modules` to module names of this architecture."
                ) from None
        if cfg.train_norms:
            for name, p in base.named_parameters():
                if NORM_PATTERN.search("." + name) and "lora_" not in name:
                    p.requires_grad_(True)
        self.model = base

    @property
    def targeted_modules(self) -> list[str]:
        return sorted(getattr(self.model, "targeted_module_names", []) or [])

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model(inputs_embeds=tokens, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state

    def save_adapter(self, folder: str) -> None:
        """Write the LoRA adapter in PEFT's own format (``adapter_config.json`` + safetensors)."""
        if not hasattr(self.model, "save_pretrained") or not hasattr(self.model, "peft_config"):
            raise ModelError("This backbone has no LoRA adapter to save (`model.backbone.lora.enabled` is false).")
        self.model.save_pretrained(folder)


class MAEBackbone(Backbone):
    """The encoder of a pretrained masked autoencoder (``fedhar pretrain``), frozen and adapted with
    LoRA on ``q, k, v, o, fc1, fc2``, or fully fine-tuned. Its patch embedding is the frontend
    (:meth:`make_frontend`), so windows are cut into patches exactly as in pretraining."""

    def __init__(self, folder: str, cfg: BackboneConfig, seed: int = 0) -> None:
        super().__init__()
        from fedhar.models.mae import LORA_TARGETS, MaskedAutoencoder, load_mae

        mae = load_mae(folder)
        meta = mae.meta
        # The inputs the encoder was pretrained on were standardised with these statistics.
        self.norm_stats = (np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32)) if "mean" in meta else None
        if not cfg.pretrained:  # same architecture, random weights: the ablation
            torch.manual_seed(seed)
            mae = MaskedAutoencoder(mae.cfg, mae.channels, mae.window)
        self.folder, self.channels, self.window = folder, mae.channels, mae.window
        self.mae_cfg = mae.cfg
        self.hidden_size = mae.cfg.width
        self._embed_state = {k: v.clone() for k, v in mae.embed.state_dict().items()}
        self.encoder = mae.encoder
        if cfg.layers is not None and cfg.layers < len(self.encoder.blocks):
            del self.encoder.blocks[cfg.layers:]
        for p in self.encoder.parameters():
            p.requires_grad_(cfg.full_finetune)
        self.full_finetune = cfg.full_finetune
        self.encoder.eval()
        if cfg.quantize:
            self.quantized_layers = quantize_linears(self.encoder, cfg.quantize)
        if cfg.lora.enabled:
            from peft import LoraConfig, inject_adapter_in_model

            lora_cfg = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                  target_modules=cfg.lora.target_modules or LORA_TARGETS)
            try:
                inject_adapter_in_model(lora_cfg, self.encoder)
            except ValueError as exc:
                raise ModelError(f"LoRA could not be attached to the MAE encoder: {exc}. Its modules are "
                                 f"{', '.join(LORA_TARGETS)}.") from None

    @property
    def targeted_modules(self) -> list[str]:
        return sorted({n.rsplit(".lora_", 1)[0] for n, _ in self.encoder.named_parameters() if ".lora_" in n})

    def make_frontend(self, channels, window_length: int) -> nn.Module:
        """The pretrained patch embedding, for data shaped as in pretraining."""
        from fedhar.models.mae import PatchEmbed

        if tuple(channels) != tuple(self.channels) or int(window_length) != self.window:
            raise ModelError(
                f"the MAE backbone `{self.folder}` was pretrained on channels {', '.join(self.channels)} and windows of "
                f"{self.window} samples; the data has {', '.join(channels)} and {window_length}. Use `data.channels`, "
                "`data.rate_hz` and `data.window` to match, or pretrain on this data."
            )
        embed = PatchEmbed(len(self.channels), self.window, self.mae_cfg.patch, self.mae_cfg.width)
        embed.load_state_dict(self._embed_state)
        return embed

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(tokens)


def truncate_blocks(model: nn.Module, layers: int | None) -> None:
    """Keep the first ``layers`` decoder blocks of an HF model, in place (None: all)."""
    if layers is None:
        return
    blocks = getattr(model, "layers", None) or getattr(model, "h", None)
    if blocks is None:
        raise ModelError(f"`model.backbone.layers`: cannot find the decoder blocks of {type(model).__name__}.")
    if layers > len(blocks):
        raise ModelError(f"`model.backbone.layers` is {layers} but the backbone has only {len(blocks)} blocks.")
    del blocks[layers:]
    cfg = model.config
    for key in ("num_hidden_layers", "n_layer"):
        if hasattr(cfg, key):
            setattr(cfg, key, layers)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:layers]


def load_base(cfg: BackboneConfig, seed: int = 0) -> nn.Module:
    """The bare (headless) HF model named by ``cfg``, truncated, pretrained or randomly initialised."""
    from transformers import AutoConfig, AutoModel, LlamaConfig

    if cfg.name == "tiny-llama":
        config = LlamaConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        )
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    else:
        source = resolve_pretrained(cfg.name, cfg.allow_download, builtin_names())
        offline = {} if cfg.allow_download else {"local_files_only": True}
        try:
            if cfg.pretrained:
                model = AutoModel.from_pretrained(source, dtype=torch.float32, **offline)
            else:
                config = AutoConfig.from_pretrained(source, **offline)
                if cfg.layers is not None:
                    for key in ("num_hidden_layers", "n_layer"):
                        if hasattr(config, key):
                            setattr(config, key, min(cfg.layers, getattr(config, key)))
                torch.manual_seed(seed)
                model = AutoModel.from_config(config)
        except (OSError, ValueError) as exc:
            hint = "" if cfg.name in EMBEDDED else " Is it a local folder with config.json, or a hub id with the hub reachable?"
            raise ModelError(f"Could not load backbone `{cfg.name}`: {str(exc).splitlines()[0]}.{hint}") from None
    truncate_blocks(model, cfg.layers)
    model.eval()
    return model


def builtin_names() -> list[str]:
    """Every backbone name fedhar knows without a folder or hub id."""
    from fedhar.models.factory import NON_NEURAL

    return sorted({*BACKBONES.names(), *EMBEDDED, "tiny-llama", *NON_NEURAL})


def build_backbone(cfg: BackboneConfig, seed: int = 0) -> Backbone:
    from fedhar.models.mae import is_mae_checkpoint

    if cfg.name in BACKBONES:
        return BACKBONES.get(cfg.name)(cfg, seed)
    if is_mae_checkpoint(cfg.name):
        return MAEBackbone(cfg.name, cfg, seed)
    return HFBackbone(load_base(cfg, seed), cfg)
