"""Model configuration: frontend, backbone (+ LoRA) and head, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from fedhar.exceptions import ConfigError

Part = Literal["frontend", "lora", "head", "backbone", "norms"]
PARTS: tuple[str, ...] = get_args(Part)
"""Trainable parts of a HAR model: ``lora`` is an LLM's adapters, ``backbone`` a from-scratch backbone,
``norms`` a frozen LLM's normalisation layers and learned position embeddings when
``model.backbone.train_norms`` is on (the GPT4TS recipe)."""


@dataclass
class FrontendConfig:
    """Structured convolutional projection from sensor windows to backbone tokens."""

    kind: str = field(default="conv", metadata={"help": "Frontend name in the frontend registry."})
    tokens: int = field(default=32, metadata={"help": "Number of tokens L fed to the backbone."})
    channels: list[int] = field(default_factory=lambda: [32, 64], metadata={"help": "Conv channels per layer in each sensor branch."})
    kernels: list[int] = field(default_factory=lambda: [7, 5], metadata={"help": "Temporal kernel size per conv layer."})
    strides: list[int] = field(default_factory=lambda: [1, 1], metadata={"help": "Stride per conv layer."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the token embeddings."})
    scale_to_embedding_norm: bool = field(default=True, metadata={"help": "Scale tokens to the backbone's mean token-embedding norm."})
    patch_length: int = field(default=16, metadata={"help": "`patch` frontend: samples per patch."})
    patch_stride: int = field(default=8, metadata={"help": "`patch` frontend: hop between patches (< patch_length: overlapping)."})
    patch_per: Literal["sensor", "channel"] = field(default="sensor", metadata={"help": "`patch` frontend: one token stream per sensor triad, or per channel (PatchTST's channel independence; more tokens)."})
    instance_norm: bool = field(default=True, metadata={"help": "`patch` frontend: standardise each window per channel (RevIN); the removed mean and scale are embedded as one extra token, so level and scale are not lost."})

    def __post_init__(self) -> None:
        if self.patch_length <= 0 or self.patch_stride <= 0:
            raise ConfigError(f"`model.frontend.patch_length` and `patch_stride` must be positive; got "
                              f"{self.patch_length} and {self.patch_stride}.")
        if not (len(self.channels) == len(self.kernels) == len(self.strides)) or not self.channels:
            raise ConfigError(
                "`model.frontend.channels`, `kernels` and `strides` must be non-empty lists of the same "
                f"length; got {len(self.channels)}, {len(self.kernels)} and {len(self.strides)}."
            )
        for key in ("channels", "kernels", "strides"):
            if any(v <= 0 for v in getattr(self, key)):
                raise ConfigError(f"`model.frontend.{key}` must be positive integers; got {getattr(self, key)}.")
        if self.tokens <= 0:
            raise ConfigError(f"`model.frontend.tokens` must be positive; got {self.tokens}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"`model.frontend.dropout` must be in [0, 1); got {self.dropout}.")


@dataclass
class LoraSettings:
    """LoRA on the frozen backbone, passed to ``peft.LoraConfig``."""

    enabled: bool = field(default=True, metadata={"help": "Adapt the backbone with LoRA (false: backbone fully frozen)."})
    r: int = field(default=8, metadata={"help": "LoRA rank."})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    target_modules: list[str] | None = field(default=None, metadata={"help": "Module names to adapt; default per architecture (q/k/v/o for Llama/Qwen, c_attn for GPT-2)."})

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ConfigError(f"`model.backbone.lora.r` must be a positive rank; got {self.r}.")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"`model.backbone.lora.dropout` must be in [0, 1); got {self.dropout}.")


@dataclass
class BackboneConfig:
    """Which sequence model sits between frontend and head."""

    name: str = field(default="smollm2-135m", metadata={"help": "smollm2-135m (embedded), tiny-llama (random, tests), none, transformer, classical, a folder written by `fedhar pretrain` (MAE), or any HF model id / local folder."})
    layers: int | None = field(default=8, metadata={"help": "Keep only the first N decoder blocks (null: all)."})
    pretrained: bool = field(default=True, metadata={"help": "false: same architecture with random weights (ablation)."})
    allow_download: bool = field(default=False, metadata={"help": "Let a hub id that is not in the local Hugging Face cache be downloaded; false (the default): fedhar stays offline and an unknown name fails at once, listing the built-in names."})
    lora: LoraSettings = field(default_factory=LoraSettings, metadata={"help": "LoRA settings."})
    full_finetune: bool = field(default=False, metadata={"help": "Train every weight of an LLM backbone (no LoRA): the full fine-tuning comparison."})
    quantize: Literal[4, 8] | None = field(default=None, metadata={"help": "QLoRA: store the frozen backbone's linear layers in 4 bit (NF4) or 8 bit (int8) with bitsandbytes; null: fp32."})
    d_model: int = field(default=128, metadata={"help": "Width of the from-scratch `transformer` baseline."})
    heads: int = field(default=4, metadata={"help": "Attention heads of the `transformer` baseline."})
    trees: int = field(default=300, metadata={"help": "Trees of the `classical` random forest."})
    train_norms: bool = field(default=False, metadata={"help": "Also train the frozen LLM's normalisation layers and learned position embeddings (the GPT4TS recipe; trainable part `norms`). Llama-style models have no learned positions (RoPE), so there it is the RMSNorm weights alone."})

    def __post_init__(self) -> None:
        if self.layers is not None and self.layers <= 0:
            raise ConfigError(f"`model.backbone.layers` must be positive or null; got {self.layers}.")
        if not self.name:
            raise ConfigError("`model.backbone.name` must not be empty.")
        if self.quantize is not None and self.full_finetune:
            raise ConfigError("`model.backbone.quantize` freezes the backbone in low precision; it cannot be combined "
                              "with `model.backbone.full_finetune`.")
        if self.full_finetune and self.lora.enabled:
            # Full fine-tuning trains the weights LoRA would adapt; both at once is never what is meant.
            self.lora.enabled = False


@dataclass
class HeadConfig:
    """Pooling over tokens plus a classifier: linear, or scaled cosine similarity to the LLM's
    embeddings of the class names (``kind: text``, the label-name head)."""

    pooling: Literal["mean", "last"] = field(default="mean", metadata={"help": "mean or last (the last token; for text windows the last text token, which a causal LLM lets see the whole window). With a prompt prefix, mean pools the sensor tokens only."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout before the classifier."})
    kind: Literal["linear", "text"] = field(default="linear", metadata={"help": "linear, or text: logits are scaled cosine similarities to each class name's prototype, the frozen LLM's pooled hidden state of the name (zero-shot on classes never trained, by name). text needs an LLM backbone."})
    label_texts: dict[str, str] = field(default_factory=dict, metadata={"help": "text head: the text of a class (default: its name with spaces, e.g. `walking upstairs`), e.g. {biking: riding a bicycle}."})
    template: str = field(default="{label}", metadata={"help": "text head: how a class text is written before embedding, e.g. `a person {label}`."})
    projection: bool = field(default=True, metadata={"help": "text head: a trainable linear projection of the prototypes (initialised to identity)."})
    temperature: float = field(default=0.07, metadata={"help": "text head: initial temperature of the cosine logits (learned)."})
    contrastive: float = field(default=0.0, metadata={"help": "text head: weight of the CLIP-style text-to-window term (each class text picks its windows among the batch) added to the loss; 0: off."})

    def __post_init__(self) -> None:
        if not 0 < self.temperature:
            raise ConfigError(f"`model.head.temperature` must be positive; got {self.temperature}.")
        if self.contrastive < 0:
            raise ConfigError(f"`model.head.contrastive` must be >= 0; got {self.contrastive}.")
        if "{label}" not in self.template:
            raise ConfigError(f"`model.head.template` must contain `{{label}}`; got {self.template!r}.")


@dataclass
class PromptConfig:
    """A text prefix before the sensor tokens, embedded with the frozen LLM's own token embeddings."""

    enabled: bool = field(default=False, metadata={"help": "Put the prompt prefix before the sensor tokens (needs an LLM backbone)."})
    template: str = field(default="Sensor data, {channels} at {rate_hz:g} Hz.", metadata={"help": "Text before the sensor tokens; fields {channels}, {sensors}, {rate_hz}, {seconds}, {units}, {stats}, and any key of `fields`."})
    fields: dict[str, str] = field(default_factory=dict, metadata={"help": "Extra template fields known for the data, e.g. {dataset: UCI-HAR, device: phone, placement: waist}."})
    stats: bool = field(default=False, metadata={"help": "Fill {stats} per window with summary statistics in words and numbers (mean and std of |acc|, dominant frequency, mean |gyro|); appended when the template has no {stats}."})
    rate_hz: float | None = field(default=None, metadata={"help": "Sampling rate the windows have (for {rate_hz} and the dominant frequency); null: taken from the data."})
    units: str | None = field(default=None, metadata={"help": "Unit the text gives every channel, e.g. `standardized` for z-scored windows (a leave-one-dataset-out pool); null: the data's own units."})


@dataclass
class TextModelConfig:
    """Text windows (token ids, :mod:`fedhar.data.smarthome`): how the LLM's token embedding is kept."""

    trim_vocab: bool = field(default=False, metadata={"help": "Keep only the embedding rows of tokens seen in the training texts (others map to one unknown row): a home's texts use a few hundred of the 49k tokens, so a small student's parameters are mostly its blocks."})


@dataclass
class ModelConfig:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    text: TextModelConfig = field(default_factory=TextModelConfig)


@dataclass
class MAEConfig:
    """Shape of the masked autoencoder (the ``pretrain.mae`` section)."""

    patch: int = field(default=8, metadata={"help": "Samples per patch (each patch covers every channel)."})
    width: int = field(default=128, metadata={"help": "Encoder width."})
    depth: int = field(default=6, metadata={"help": "Encoder blocks."})
    heads: int = field(default=4, metadata={"help": "Attention heads."})
    mlp_ratio: int = field(default=4, metadata={"help": "Feed-forward width / model width."})
    mask_ratio: float = field(default=0.75, metadata={"help": "Share of patches hidden from the encoder."})
    decoder_width: int = field(default=64, metadata={"help": "Decoder width."})
    decoder_depth: int = field(default=2, metadata={"help": "Decoder blocks."})

    def __post_init__(self) -> None:
        for key in ("patch", "width", "depth", "heads", "mlp_ratio", "decoder_width", "decoder_depth"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`pretrain.mae.{key}` must be at least 1; got {getattr(self, key)}.")
        if self.width % self.heads or self.decoder_width % self.heads:
            raise ConfigError(f"`pretrain.mae.width` ({self.width}) and `decoder_width` ({self.decoder_width}) must be "
                              f"multiples of `heads` ({self.heads}).")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"`pretrain.mae.mask_ratio` must be in (0, 1); got {self.mask_ratio}.")


def check_variants(variants: list[dict], where: str, keys: tuple[str, ...] = ("label", "backbone")) -> None:
    """Baseline variants of a study: ``{label, backbone: {model.backbone overrides}}`` (and ``keys``)."""
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or not v.get("label") or not isinstance(v.get("backbone", {}), dict):
            raise ConfigError(f"`{where}[{i}]` must be {{label: ..., backbone: {{...}}}}; got {v!r}.")
        unknown = sorted(set(v) - set(keys))
        if unknown:
            raise ConfigError(f"`{where}[{i}]`: unknown key `{unknown[0]}`; valid: {', '.join(keys)}.")
