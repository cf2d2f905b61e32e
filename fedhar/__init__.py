"""fedhar: federated and continual adaptation of HAR models on frozen pretrained LLMs."""

__version__ = "0.1.0"
