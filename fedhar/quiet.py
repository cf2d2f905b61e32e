"""Silence known, harmless third-party warnings, and only those, in fedhar and its Ray workers.

Each filter names the exact message prefix, category and emitting module, so a new or changed
warning, and anything fedhar itself warns about, still shows. Warnings raised through
:mod:`warnings` are filtered in this process and, through ``PYTHONWARNINGS``, in the processes it
spawns (Flower's Simulation Engine starts Ray workers that inherit the environment); messages
logged through :mod:`logging` get a :class:`logging.Filter` on their logger.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass

ENV = "PYTHONWARNINGS"


@dataclass(frozen=True)
class KnownWarning:
    """A ``warnings.warn`` call in a dependency: message prefix, category name, emitting module."""

    message: str
    category: str
    module: str

    def option(self) -> str:
        """The ``-W`` / ``PYTHONWARNINGS`` entry (``action:message:category:module``) that ignores it."""
        return f"ignore:{self.message}:{self.category}:{self.module}"

    def install(self) -> None:
        """The in-process filter equal to :meth:`option` (literal prefix, literal full module name)."""
        category = getattr(__import__("builtins"), self.category)
        warnings.filterwarnings("ignore", message=re.escape(self.message), category=category,
                                module=re.escape(self.module) + r"\Z")


# torch.jit warns "`torch.jit.<fn>` is deprecated ..." from each of these modules (torch 2.13).
_TORCH_JIT_MODULES = ("_script", "_trace", "_serialization", "_async", "_freeze", "_fuser")
KNOWN_WARNINGS: tuple[KnownWarning, ...] = tuple(
    KnownWarning("`torch.jit.", "DeprecationWarning", f"torch.jit.{m}") for m in _TORCH_JIT_MODULES)
"""torch.jit deprecations, raised while transformers/peft import TorchScript helpers."""

KNOWN_LOG_MESSAGES: dict[str, tuple[str, ...]] = {
    # flwr/simulation/run_simulation.py: warn_deprecated_feature(...) logs through the `flwr` logger
    "flwr": ("DEPRECATED FEATURE: The `run_simulation` function is deprecated",),
    # bitsandbytes/backends/cpu/ops.py: logged when the optional `kernels` package is not installed
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community: No module "
                                      "named 'kernels'",),
}
"""Logger name -> message prefixes (as formatted) of known, harmless log records."""


class KnownMessageFilter(logging.Filter):
    """Drops a logger's records whose formatted message starts with a known prefix."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge: let it through
            return True
        return not message.lstrip().startswith(self.prefixes)


_LOG_FILTERS = {name: KnownMessageFilter(prefixes) for name, prefixes in KNOWN_LOG_MESSAGES.items()}


def extended_pythonwarnings(current: str | None) -> str:
    """``current`` (the user's own entries kept first) plus each known entry not yet in it."""
    entries = [e for e in (current or "").split(",") if e.strip()]
    entries += [opt for opt in (w.option() for w in KNOWN_WARNINGS) if opt not in entries]
    return ",".join(entries)


def install_known_filters() -> None:
    """Filter the known dependency warnings here and in child processes; safe to call twice."""
    for known in KNOWN_WARNINGS:
        known.install()
    os.environ[ENV] = extended_pythonwarnings(os.environ.get(ENV))
    for name, flt in _LOG_FILTERS.items():
        logging.getLogger(name).addFilter(flt)  # addFilter ignores a filter already present


def remove_known_log_filters() -> None:
    """Undo the logging part of :func:`install_known_filters` (for tests)."""
    for name, flt in _LOG_FILTERS.items():
        logging.getLogger(name).removeFilter(flt)
