"""Configs as plain JSON: dataclass -> dict -> dataclass, no pickle, no eval.

Nested dataclasses become nested objects. A field typed as a union of dataclasses (a component
chosen by config class) is written with a ``"type"`` key holding the class name so it can be
loaded back. Enums are written by value, tuples as lists.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import math
import json
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from .atomic import atomic_write_json
from .errors import UserInputError

T = TypeVar("T")


def to_json_dict(obj: Any) -> Any:
    """A JSON-compatible copy of a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = to_json_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_json_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def from_json_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Rebuild a config of type ``cls`` from ``to_json_dict`` output.

    Unknown keys or values of the wrong type raise UserInputError naming the dotted field path.
    """
    return _convert(cls, data, where)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        dc_options = [o for o in options if dataclasses.is_dataclass(o)]
        if isinstance(value, dict) and dc_options:
            name = value.get("type")
            for o in dc_options:
                if o.__name__ == name:
                    return _convert(o, value, where)
            raise UserInputError(f"{where}: unknown type {name!r} (expected one of "
                                 f"{', '.join(o.__name__ for o in dc_options)})")
        errors = []
        for o in options:
            if o is type(None):
                continue
            try:
                return _convert(o, value, where)
            except UserInputError as err:
                errors.append(str(err))
        raise UserInputError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserInputError(f"{where}: expected an object, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = set(value) - names - {"type"}
        if unknown:
            raise UserInputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items() if k != "type"}
        try:
            return tp(**kwargs)
        except UserInputError as err:
            raise UserInputError(f"{where}: {err}") from None
        except (ValueError, TypeError) as err:     # a config's own __post_init__ checks
            raise UserInputError(f"{where}: {' '.join(str(err).split())}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise UserInputError(f"{where}: {value!r} is not one of "
                                 f"{', '.join(str(m.value) for m in tp)}") from None
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise UserInputError(f"{where}: {value!r} is not one of {', '.join(map(repr, get_args(tp)))}")
        return value
    if origin in (tuple,):
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserInputError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise UserInputError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (list,):
        (arg,) = get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise UserInputError(f"{where}: expected a list")
        return [_convert(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict,):
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserInputError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise UserInputError(f"{where}: number out of range") from None
        if not math.isfinite(number):
            raise UserInputError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserInputError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UserInputError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UserInputError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is type(None):
        if value is not None:
            raise UserInputError(f"{where}: expected null")
        return None
    return value


def save_config(path: str | Path, config: Any) -> None:
    """Write ``config`` as plain JSON (atomically)."""
    atomic_write_json(path, to_json_dict(config))


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config saved by ``save_config``; UserInputError on unreadable/invalid files."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such config file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: not valid JSON ({err})") from None
    return from_json_dict(cls, data, where=str(path))


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two configs (or their JSON dicts) differ, for clear resume errors."""
    da = to_json_dict(a) if dataclasses.is_dataclass(a) else a
    db = to_json_dict(b) if dataclasses.is_dataclass(b) else b
    if isinstance(da, dict) and isinstance(db, dict):
        out: list[str] = []
        for k in sorted(set(da) | set(db)):
            out += config_diff(da.get(k), db.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if da == db else [f"{prefix}: {da!r} -> {db!r}"]


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal written under that dataclass field (its documentation);
    {} when the class source cannot be read. Whitespace runs are collapsed to one space."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def settings(config: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """Every leaf setting of a (nested) config dataclass: (dotted key as ``--set`` takes it,
    current value as JSON, the field's documentation), in declaration order.

    A field holding a config dataclass is descended into (a union of dataclasses lists the
    fields of the class in use; its ``type`` is what selects another one)."""
    out: list[tuple[str, str, str]] = []
    docs = field_docs(type(config))
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += settings(value, key + ".")
        else:
            out.append((key, json.dumps(to_json_dict(value)), docs.get(f.name, "")))
    return out
