"""Models: conv frontend, backbones (frozen LLM + LoRA, none, transformer), head, baselines."""

from fedhar.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.models.backbones": "BACKBONES Backbone HFBackbone build_backbone load_base",
    "fedhar.models.classical": "ClassicalModel window_features",
    "fedhar.models.config": "BackboneConfig FrontendConfig HeadConfig LoraSettings ModelConfig",
    "fedhar.models.factory": "NON_NEURAL build_model",
    "fedhar.models.frontend": "FRONTENDS ConvFrontend",
    "fedhar.models.har_model": "HARModel",
})
