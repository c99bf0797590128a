"""Typed configs: strict construction from dicts, field docs for `--help`, validation, seed lists.

highway-env silently accepts misspelled config keys; SteerBench does not. `build_config` turns a
mapping (or an existing instance, or None for the defaults) into a dataclass, recursing into nested
dataclass fields, and rejects an unknown key with an error that names it and lists the valid ones.

Field documentation lives in attribute docstrings (a string literal right after the field), which
`field_docs` reads back from the source so that CLIs can show them as `--help`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config mapping with an unknown key or an invalid value."""


def build_config(cls: type[T], data: Any = None, *, where: str | None = None) -> T:
    """Return an instance of dataclass `cls` from `data` (None, an instance, or a mapping)."""
    where = where or cls.__name__
    if data is None:
        return cls()
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping or {cls.__name__}, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; valid keys are: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_in(hints.get(name))
        if sub is not None and (isinstance(value, Mapping) or value is None):
            value = build_config(sub, value, where=f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from exc


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass named by a type hint such as `Foo` or `Foo | None`, if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of dataclass `cls` to the docstring written under it in the source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds (for __post_init__ checks)."""
    if not condition:
        raise ConfigError(message)


def parse_seeds(text: str) -> list[int]:
    """'0-19' -> 0..19, '1,4,7-9' -> [1, 4, 7, 8, 9], '' -> []."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"bad seed list {text!r}: use forms like '0-19' or '1,4,7-9'") from None
    return seeds
