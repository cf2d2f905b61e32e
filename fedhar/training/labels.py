"""What a model is, in words, derived from its resolved backbone config.

A study's report names the configured model; a fixed default such as "pretrained LLM" would name a
random 2-block test model, a ``pretrained: false`` ablation or the no-LLM model wrongly. Every study
derives the name here, from what the backbone actually builds, unless the user sets a label.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fedhar.models.config import BackboneConfig
from fedhar.models.mae import is_mae_checkpoint

log = logging.getLogger(__name__)

TINY = "tiny-llama"
"""The random test Llama: always random weights, whatever ``pretrained`` says."""
FIXED = {"none": "no LLM", "transformer": "from-scratch Transformer", "classical": "classical RF"}
"""Backbones that are no pretrained model: their label is their kind."""


def effective_backbone(cfg: BackboneConfig) -> dict[str, Any]:
    """The settings that change the built model; settings a backbone ignores are left out, so two
    configs that build the same model (tiny-llama with and without ``pretrained``) compare equal."""
    if cfg.name == "none":
        return {"name": "none", "d_model": cfg.d_model}
    if cfg.name == "transformer":
        return {"name": "transformer", "layers": cfg.layers or 4, "d_model": cfg.d_model, "heads": cfg.heads}
    if cfg.name == "classical":
        return {"name": "classical", "trees": cfg.trees}
    lora = ({"r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout,
             "target_modules": cfg.lora.target_modules} if cfg.lora.enabled else None)
    return {"name": cfg.name, "pretrained": cfg.pretrained and cfg.name != TINY, "layers": cfg.layers,
            "lora": lora, "full_finetune": cfg.full_finetune, "quantize": cfg.quantize}


def _model_name(name: str) -> str:
    """A local folder by its own name (a long path would swamp a legend); a hub id as written."""
    path = Path(name).expanduser()
    return path.name if path.is_absolute() or name.startswith(".") or path.exists() else name


def _details(eff: dict[str, Any]) -> list[str]:
    """What sets this model apart from a plain LoRA-adapted, whole backbone."""
    out = [f"first {eff['layers']} blocks"] if eff["layers"] is not None else []
    if eff["full_finetune"]:
        out.append("fully fine-tuned")
    elif eff["lora"] is None:
        out.append("frozen, no LoRA")
    if eff["quantize"]:
        out.append(f"{eff['quantize']}-bit")
    return out


def backbone_label(cfg: BackboneConfig) -> str:
    """``pretrained LLM (smollm2-135m, first 8 blocks)``, ``random-init LLM (tiny-llama, first 2
    blocks)``, ``no LLM``, ``pretrained MAE encoder (mae)``, ...: the model as built."""
    if cfg.name in FIXED:
        return FIXED[cfg.name]
    return weights_label(cfg, "MAE encoder" if is_mae_checkpoint(cfg.name) else "LLM", _model_name(cfg.name))


def weights_label(cfg: BackboneConfig, kind: str, name: str) -> str:
    """``<pretrained|random-init> <kind> (<name>, <details>)`` of a neural backbone; for a study
    whose backbone is only named later (an MAE pretrained per fold)."""
    eff = effective_backbone(cfg)
    weights = "pretrained" if eff["pretrained"] else "random-init"
    return f"{weights} {kind} ({', '.join([name, *_details(eff)])})"


def same_model(cfg: BackboneConfig, others: dict[str, BackboneConfig]) -> str | None:
    """The label of the first of ``others`` that builds the same model as ``cfg`` (None: none does)."""
    mine = effective_backbone(cfg)
    return next((label for label, other in others.items() if effective_backbone(other) == mine), None)


def model_label(label: str | None, cfg: BackboneConfig) -> str:
    """The user's ``label`` when set, else the derived one; a set label that claims pretrained
    weights for a random backbone is kept (it is the user's word) but warned about."""
    if not label:
        return backbone_label(cfg)
    if "pretrained" in label.lower() and "random" not in label.lower() and cfg.name not in FIXED \
            and not effective_backbone(cfg)["pretrained"]:
        log.warning("The label `%s` says pretrained, but the backbone is %s; leave the label unset (null) to "
                    "derive it from the backbone.", label, backbone_label(cfg))
    return label


def repeated_models(models: list[tuple[str, BackboneConfig]]) -> dict[str, str]:
    """``{label: earlier label}`` for each model that builds the same model as an earlier one, each
    warned about: the same model twice under two names would read as two models compared."""
    seen: dict[str, BackboneConfig] = {}
    out: dict[str, str] = {}
    for label, cfg in models:
        twin = same_model(cfg, seen)
        if twin is None:
            seen[label] = cfg
            continue
        out[label] = twin
        log.warning("Baseline `%s` builds the same model as `%s` (%s); it is left out.", label, twin, backbone_label(cfg))
    return out
