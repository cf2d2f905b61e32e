"""Turn plain YAML mappings into typed config dataclasses, with errors that name the key.

Every config dataclass in fedhar is built through :func:`from_mapping`, so unknown keys,
wrong types and missing required fields fail the same way everywhere.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar, Union, get_args, get_origin, get_type_hints

from fedhar.exceptions import ConfigError

T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc.reason)
        name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        raise ConfigError(errors[0] if len(errors) == 1 else f"`{where}`: {value!r} matches none of {name}.")
    if origin is typing.Literal:
        choices = get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):  # 4.0 or True is not 4 or 1
            raise ConfigError(f"`{where}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"`{where}` must be a mapping of {tp.__name__} fields; got {value!r}.")
        return from_mapping(tp, value, where)
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{where}` must be a list; got {value!r}.")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"`{where}` must be a mapping; got {value!r}.")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, k_tp, where): _coerce(v, v_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"`{where}` must be true or false; got {value!r}.")
    if tp in (int, float):  # an int field takes no float; neither takes a bool
        ok, what = ((int, str), "an integer") if tp is int else ((int, float, str), "a number")
        try:
            if isinstance(value, bool) or not isinstance(value, ok):
                raise ValueError
            return tp(value)
        except ValueError:
            raise ConfigError(f"`{where}` must be {what}; got {value!r}.") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"`{where}` must be a string; got {value!r}.")
        return str(value)
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ConfigError."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    prefix = f"{where}." if where else ""
    if unknown:
        raise ConfigError(
            f"Unknown key `{prefix}{unknown[0]}`. Valid keys{' under `' + where + '`' if where else ''}: "
            f"{', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            value = data[name]
            if isinstance(value, Mapping) and f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
                if dataclasses.is_dataclass(default):  # a partial section changes only the keys it names
                    value = {**to_mapping(default), **value}
            kwargs[name] = _coerce(value, hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required key `{prefix}{name}`.")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if where and not exc.reason.startswith("`"):
            raise ConfigError(f"In `{where}`: {exc.reason}") from None
        raise


def to_mapping(obj: Any) -> Any:
    """Plain dict/list form of a (nested) config dataclass, ready for YAML."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def named_or_mapping(spec: Any, registry: Any, cls: type[T], what: str, where: str) -> T:
    """A config object from a registry name (a copy, so callers never change a built-in), a
    mapping of ``cls`` fields (optionally ``base: <name>`` plus overrides; the name then defaults
    to ``<base>_custom``) or a ready ``cls`` instance (returned as is)."""
    import copy

    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        return copy.deepcopy(registry.get(spec, where))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"`{where}` must be a {what} name or a mapping of its fields; got {spec!r}.")
    fields = dict(spec)
    if "base" in fields:
        base = fields.pop("base")
        if not isinstance(base, str):
            raise ConfigError(f"`{where}.base` must be a {what} name; got {base!r}.")
        fields = {**dataclasses.asdict(registry.get(base, f"{where}.base")), "name": f"{base}_custom", **fields}
    return from_mapping(cls, fields, where)
