"""Typed validation of recipe sections: plain dicts (from YAML) into dataclasses.

One configuration system: recipes are YAML, and each section is described by a dataclass whose
field types are the schema. `from_dict` checks every key and type before anything runs, and
every problem raises one `RecipeError` naming the file, the key path (`train.lr[1]`) and what is
allowed. Design choices:

- Supported field types: dataclasses (nested sections), bool, int, float (ints accepted), str,
  `Literal[...]`, `list[T]`, `dict[str, T]`, `T | None`, unions tried left to right, and `Any`.
- Extra checks ride on the field: `field(metadata={"check": fn})`; `fn(value)` raises
  ValueError with a message, or returns a normalised value.
- Unknown keys are errors, with a "did you mean" hint, so a typo never silently falls back to a
  default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class RecipeError(Exception):
    """A recipe problem: one message naming the file, the key path and what is wrong."""

    def __init__(self, message: str, *, path: str = "", file: str | Path | None = None):
        self.message = message
        self.path = path
        self.file = str(file) if file is not None else None
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        return f"{where}: {self.message}" if where else self.message

    def with_file(self, file: str | Path) -> RecipeError:
        if self.file is None:
            return RecipeError(self.message, path=self.path, file=file)
        return self


def _join(path: str, key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin is dict:
        args = get_args(tp) or (str, Any)
        return f"a mapping of {_type_name(args[1])}"
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    if tp is Any:
        return "anything"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise RecipeError(f"expected null, got {value!r}", path=path)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        # A mapping can only mean the dataclass option: report its precise error, not "expected X or Y".
        structured = [o for o in options if dataclasses.is_dataclass(o)]
        if isinstance(value, dict) and len(structured) == 1:
            return _convert(structured[0], value, path)
        for option in options:
            try:
                return _convert(option, value, path)
            except RecipeError:
                continue
        raise RecipeError(f"expected {_type_name(tp)}, got {value!r}", path=path)
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        raise RecipeError(
            f"{value!r} is not allowed; choose one of {', '.join(repr(a) for a in allowed)}",
            path=path,
        )
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise RecipeError(f"expected {_type_name(tp)}, got {value!r}", path=path)
        return [_convert(inner, v, _join(path, i)) for i, v in enumerate(value)]
    if origin is dict:
        _, inner = get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise RecipeError(f"expected {_type_name(tp)}, got {value!r}", path=path)
        return {str(k): _convert(inner, v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise RecipeError(f"expected {_type_name(tp)}, got {value!r}", path=path)


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking keys, types and field checks."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping ({cls.__name__}), got {data!r}", path=path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            allowed = ", ".join(fields) or "(none)"
            raise RecipeError(
                f"unknown key {key!r}{hint} (allowed here: {allowed})", path=_join(path, key)
            )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name not in data:
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing:
                raise RecipeError(
                    f"missing required key (expected {_type_name(hints[name])})", path=sub
                )
            continue
        value = _convert(hints[name], data[name], sub)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            try:
                checked = check(value)
            except (ValueError, TypeError, KeyError) as exc:
                raise RecipeError(str(exc).strip("'\""), path=sub) from None
            if checked is not None:
                value = checked
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """A dataclass (tree) back to plain YAML/JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def describe(cls: type, indent: int = 0) -> str:
    """A readable listing of a section's keys, types and defaults (for docs and --help)."""
    hints = typing.get_type_hints(cls)
    lines = []
    pad = "  " * indent
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = " = (default)"
        else:
            default = " (required)"
        help_ = f.metadata.get("help", "")
        lines.append(f"{pad}{f.name}: {_type_name(tp)}{default}{'  # ' + help_ if help_ else ''}")
        if dataclasses.is_dataclass(tp):
            lines.append(describe(tp, indent + 1))
    return "\n".join(lines)
