"""Command-line plumbing: a typed dataclass config per command, its field docs as `--help`.

Each command module defines a dataclass (fields documented by the string under each field) and a
`run(config)` function; `add_arguments` / `from_arguments` turn the dataclass into argparse options
and back, so the CLI and the Python API share one definition and one set of defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal

from .config import build_config, field_docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one --option per field of dataclass `cls`; fields of nested dataclasses are flattened
    (their options carry no prefix, their destinations do: `augment.side_cameras`)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_arguments(parser, tp, prefix=f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "").replace("%", "%%")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if isinstance(default, tuple):
            shown = " ".join(str(v) for v in default)
        else:
            shown = default
        kwargs: dict[str, Any] = {"dest": prefix + f.name,
                                  "help": help_text if required else f"{help_text} (default: {shown})"}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kwargs["choices"] = list(typing.get_args(tp))
            kwargs["type"] = type(typing.get_args(tp)[0])
        elif origin in (tuple, list):
            args = typing.get_args(tp)
            kwargs["type"] = args[0] if args else str
            kwargs["nargs"] = len(args) if origin is tuple and args and args[-1] is not Ellipsis else "+"
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if tp is not bool and origin is not Literal:
            kwargs["metavar"] = f.name.upper()
        if optional and tp is not bool:
            base = kwargs["type"]
            kwargs["type"] = lambda v, base=base: None if v.lower() == "none" else base(v)
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = argparse.SUPPRESS
        parser.add_argument(flag, **kwargs)


def from_arguments(cls: type, namespace: argparse.Namespace) -> Any:
    """Build dataclass `cls` from the options given on the command line (others keep defaults)."""
    values: dict[str, Any] = {}
    for key, v in vars(namespace).items():
        parts = key.split(".")
        target, klass = values, cls
        ok = True
        for part in parts[:-1]:
            hints = typing.get_type_hints(klass) if dataclasses.is_dataclass(klass) else {}
            if part not in hints:
                ok = False
                break
            klass, _ = _unwrap_optional(hints[part])
            target = target.setdefault(part, {})
        if not ok or not dataclasses.is_dataclass(klass):
            continue
        hints = typing.get_type_hints(klass)
        if parts[-1] not in hints:
            continue
        tp, _ = _unwrap_optional(hints[parts[-1]])
        if typing.get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        target[parts[-1]] = v
    return build_config(cls, values)


def dataclass_help(cls: type) -> str:
    """First paragraph of the class docstring, for the subcommand's description."""
    return (cls.__doc__ or "").strip().split("\n\n")[0]
