"""Name -> implementation registries, so configs can name frontends, backbones, strategies...; and
packages' lazy re-exports (:func:`lazy_exports`), which keep light submodules light."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from fedhar.exceptions import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named registry whose unknown-name error lists the valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T | None = None) -> Callable[[T], T] | T:
        """Register ``item`` under ``name``; usable as a decorator when ``item`` is omitted."""

        def _add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} `{name}` is already registered")
            self._items[name] = obj
            return obj

        return _add(item) if item is not None else _add

    def get(self, name: str, where: str | None = None) -> T:
        if name not in self._items:
            loc = f" (in `{where}`)" if where else ""
            raise ConfigError(
                f"Unknown {self.kind} `{name}`{loc}. Valid choices: {', '.join(sorted(self._items))}."
            )
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)


def check_options(options: Iterable[str], valid: Sequence[str], what: str) -> None:
    """Refuse an option that ``what`` (e.g. "data format `npz`") does not take, naming those it does."""
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"Unknown option `{unknown[0]}` for {what}. Valid options: {', '.join(valid) or '(none)'}.")


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A package's ``(__getattr__, __all__)`` that imports each re-exported name on first use
    (PEP 562), from ``{"fedhar.data.sources": "load_source load_splits", ...}``. Importing a light
    submodule (``fedhar.data.config``) then runs no heavy one, so ``import fedhar.config`` needs no torch."""
    where = {name: module for module, names in exports.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__, sorted(where)
