"""Models: conv frontend, backbones (frozen LLM + LoRA, none, transformer), head, baselines."""

from fedhar.models.backbones import BACKBONES, Backbone, HFBackbone, build_backbone, load_base
from fedhar.models.classical import ClassicalModel, window_features
from fedhar.models.config import BackboneConfig, FrontendConfig, HeadConfig, LoraSettings, ModelConfig
from fedhar.models.factory import NON_NEURAL, build_model
from fedhar.models.frontend import FRONTENDS, ConvFrontend
from fedhar.models.har_model import HARModel

__all__ = [
    "BACKBONES", "Backbone", "HFBackbone", "build_backbone", "load_base", "ClassicalModel", "window_features",
    "BackboneConfig", "FrontendConfig", "HeadConfig", "LoraSettings", "ModelConfig", "NON_NEURAL", "build_model",
    "FRONTENDS", "ConvFrontend", "HARModel",
]
