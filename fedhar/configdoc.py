"""Every config key with its type, default, choices and help, for ``fedhar config keys``.

The reference is generated from the dataclasses themselves (``ExperimentConfig`` and the
sections it nests), so it cannot drift from what :mod:`fedhar.schema` validates.
"""

from __future__ import annotations

import dataclasses
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from fedhar.config import ExperimentConfig
from fedhar.exceptions import ConfigError


@dataclass(frozen=True)
class KeyDoc:
    """One config key: what ``fedhar config keys`` prints about it."""

    key: str
    type: str
    default: str
    choices: tuple[str, ...]
    help: str


def _is_section(tp: Any) -> bool:
    """A nested dataclass type (not an instance, not a union holding one) is a section of keys."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def format_type(tp: Any) -> str:
    """``tp`` as a reader writes it: ``int | None``, ``list[str]``; a Literal by its values' type."""
    if tp is Any:
        return "Any"
    if tp is type(None):
        return "None"
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return " | ".join(dict.fromkeys(type(a).__name__ for a in args))
    if origin in (Union, types.UnionType):
        return " | ".join(dict.fromkeys(format_type(a) for a in args))
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(format_type(a) for a in args)}]" if args else name
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def choices_of(tp: Any) -> tuple[str, ...]:
    """The allowed values of a Literal anywhere in ``tp`` (``Literal[4, 8] | None``, ``list[Literal[...]]``)."""
    if get_origin(tp) is Literal:
        return tuple(format_value(a) for a in get_args(tp))
    found: list[str] = []
    for arg in get_args(tp):
        found.extend(c for c in choices_of(arg) if c not in found)
    return tuple(found)


def format_value(value: Any) -> str:
    """A default as it would be written in YAML, on one line."""
    if isinstance(value, str) and value and yaml.safe_load(value) == value and ":" not in value:
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True).strip().removesuffix("\n...").strip()


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return format_value(f.default)
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return format_value(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value)
    return "(required)"


def key_docs(cls: type | None = None, prefix: str = "") -> list[KeyDoc]:
    """Every leaf key of ``cls`` (default: ``ExperimentConfig``), dotted, in declaration order."""
    cls = cls or ExperimentConfig
    hints = get_type_hints(cls)
    rows: list[KeyDoc] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, key = hints[f.name], prefix + f.name
        if _is_section(tp):
            rows.extend(key_docs(tp, key + "."))
            continue
        rows.append(KeyDoc(key, format_type(tp), _default(f), choices_of(tp), " ".join(f.metadata.get("help", "").split())))
    return rows


def sections(cls: type | None = None, prefix: str = "") -> list[str]:
    """Every section name, dotted (``train``, ``model.backbone``, ``model.backbone.lora``, ...)."""
    cls = cls or ExperimentConfig
    hints = get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        if _is_section(hints[f.name]):
            out.append(prefix + f.name)
            out.extend(sections(hints[f.name], prefix + f.name + "."))
    return out


def select(rows: list[KeyDoc], section: str | None, valid: list[str] | None = None) -> list[KeyDoc]:
    """The rows under ``section`` (or the one key it names); an unknown name is a ConfigError."""
    if not section:
        return rows
    section = section.strip(".")
    chosen = [r for r in rows if r.key == section or r.key.startswith(section + ".")]
    if not chosen:
        valid = valid if valid is not None else sections()
        raise ConfigError(f"`fedhar config keys {section}`: `{section}` is not a config section or key; "
                          f"valid sections: {', '.join(valid)}.")
    return chosen


def format_rows(rows: list[KeyDoc], width: int = 100) -> str:
    """One header line per key (``key  type = default  one of: ...``), its help wrapped and indented below."""
    blocks = []
    for r in rows:
        head = f"{r.key}  {r.type} = {r.default}" + (f"  (one of: {', '.join(r.choices)})" if r.choices else "")
        lines = textwrap.wrap(head, width=width, subsequent_indent="      ", break_on_hyphens=False)
        if r.help:
            lines += textwrap.wrap(r.help, width=width, initial_indent="    ", subsequent_indent="    ",
                                   break_on_hyphens=False)
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def describe_keys(section: str | None = None, width: int = 100) -> str:
    """The text of ``fedhar config keys [SECTION]``."""
    return format_rows(select(key_docs(), section), width)
