"""Domain errors: each carries a one-paragraph, user-facing reason (no traceback needed)."""

from __future__ import annotations


class FedharError(Exception):
    """Base error. The CLI prints ``reason`` and exits non-zero instead of a traceback."""

    exit_code = 2

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(FedharError):
    """A configuration key or value is unknown, missing or invalid."""


class DataError(FedharError):
    """A data file is missing, malformed, or holds values that cannot be used."""


class ModelError(FedharError):
    """A model or backbone cannot be built or loaded as configured."""


class FederationError(FedharError):
    """A federated run cannot proceed (too few clients, corrupt checkpoint, ...)."""


class ExportError(FedharError):
    """A model cannot be exported, or the exported graph does not reproduce the PyTorch model."""
