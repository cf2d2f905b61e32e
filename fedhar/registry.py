"""Name -> implementation registries, so configs can name frontends, backbones, strategies..."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

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
