"""Save and load a model's trainable state (safetensors) and its LoRA adapter (PEFT format)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from fedhar.exceptions import ModelError
from fedhar.models.backbones import HFBackbone
from fedhar.models.har_model import HARModel

STATE_FILE = "trainable_state.safetensors"


def save_model(model: HARModel, folder: str | Path) -> Path:
    """Write ``trainable_state.safetensors`` and, for LoRA backbones, ``adapter/`` in PEFT format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.trainable_state().items()}
    save_file(state, str(folder / STATE_FILE), metadata={"backbone": model.backbone_name,
                                                         "classes": "\n".join(model.classes),
                                                         "channels": "\n".join(model.channels)})
    if isinstance(model.backbone, HFBackbone) and hasattr(model.backbone.model, "peft_config"):
        model.backbone.save_adapter(str(folder / "adapter"))
    return folder / STATE_FILE


def load_model_state(model: HARModel, path: str | Path) -> None:
    """Load a saved trainable state into a model built with the same configuration."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise ModelError(f"No saved model state at {path}.")
    model.load_trainable_state(load_file(str(path)), where=str(path))
