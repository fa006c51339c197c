"""Configs as plain JSON: dataclass -> dict -> dataclass, no pickle, no eval.

Nested dataclasses become nested objects. A field typed as a union of dataclasses (a component
chosen by config class), or as a class whose ``config_variants()`` lists them, is written with a
``"type"`` key holding the class name so it can be loaded back. Enums are written by value, tuples as lists.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import math
import json
import os
import re
import stat
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar, get_args, get_origin, get_type_hints

from .atomic import atomic_write_json
from .errors import UserInputError

T = TypeVar("T")

MAX_CONFIG_BYTES = 2**20
"""Largest accepted config file (bytes): a resolved GenerateConfig takes ~9 KB (every preset,
measured), so 1 MiB is over 100x that; a bigger file is refused from stat, before reading."""
MAX_JSON_NESTING = 32
"""Deepest accepted JSON nesting (objects/lists) of a file we read: a config needs 4, a
transforms.json 4. Checked on the raw text before parsing, so json's recursion limit
(RecursionError) is never reached."""
MAX_INT = 2**63 - 1
"""Largest accepted integer setting: every integer of a config ends in a 64-bit slot (numpy,
torch, a C library), where a bigger one overflows far from the file that gave it."""
MAX_SHOWN_CHARS = 60
"""A bad value is quoted in an error line up to this many characters (then "...")."""


def shown(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """A short one-line, ASCII rendering of a (bad) value for an error line: JSON-like, with
    newlines and undecodable characters escaped, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=True, default=repr)
    except (ValueError, TypeError, RecursionError):
        text = ascii(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(message).split())


# a JSON string (closing quote optional, so an unterminated one is consumed once, not retried at
# every later quote: the scan stays linear) or one bracket
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _nesting_exceeds(text: str, limit: int) -> bool:
    """True when brackets outside strings nest deeper than ``limit``. Linear in len(text)."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def read_json_file(path: str | os.PathLike, *, what: str, max_bytes: int,
                   parse_int: Callable[[str], Any] | None = None,
                   allow_nan: bool = False) -> Any:
    """Parse the JSON file at ``path`` (a ``what``, e.g. "config file"), refusing with one
    UserInputError line naming the path anything that is not a regular file of at most
    ``max_bytes`` bytes of UTF-8 JSON nested at most MAX_JSON_NESTING deep.

    Nothing but a regular file is opened (``/dev/zero`` never ends, a FIFO blocks until a writer
    comes); the read is bounded even if the file grows after ``stat``. ``parse_int`` turns an
    integer literal's text into a value (default: refused beyond MAX_INT, which also keeps
    Python's 4300-digit conversion limit from raising ValueError); ``allow_nan`` accepts the
    NaN / Infinity literals Python writes (default: refused, they are not JSON).
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such {what} (file not found)") from None
    except (OSError, ValueError) as err:          # ValueError: a NUL byte in the path
        raise UserInputError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserInputError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UserInputError(f"{path}: not a regular file (a device, pipe or socket), not a {what}")
    if st.st_size > max_bytes:
        raise UserInputError(f"{path}: {st.st_size} bytes, more than the {_size(max_bytes)} a {what} may have")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as err:
        raise UserInputError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(raw) > max_bytes:
        raise UserInputError(f"{path}: more than the {_size(max_bytes)} a {what} may have")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserInputError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if _nesting_exceeds(text, MAX_JSON_NESTING):
        raise UserInputError(f"{path}: JSON nested deeper than {MAX_JSON_NESTING} levels")

    def bounded_int(digits: str) -> int:
        if len(digits.lstrip("-")) > len(str(MAX_INT)) or abs(int(digits)) > MAX_INT:
            raise UserInputError(f"{path}: integer {shown(digits, 24)} is beyond the 64-bit range "
                                 f"(at most {MAX_INT})")
        return int(digits)

    def refuse_constant(name: str) -> Any:
        raise UserInputError(f"{path}: {name} is not a JSON number (give a finite number)")

    try:
        return json.loads(text, parse_int=parse_int or bounded_int,
                          parse_constant=None if allow_nan else refuse_constant)
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    except RecursionError:                      # unreachable after the depth check; kept as a guard
        raise UserInputError(f"{path}: JSON nested too deeply") from None


@dataclasses.dataclass(frozen=True)
class Bound:
    """The values a numeric or named-choice config field accepts (checked by ``config_problems``
    before a run starts): a range [low, high] (either end open with ``low_open`` / ``high_open``,
    either end None = no limit), or ``choices``, or ``unbounded`` = why any finite value is fine.
    A tuple field's bound applies to each of its values; None (an optional field unset) passes."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    unbounded: str = ""

    def describe(self) -> str:
        """The accepted values in words, e.g. ">= 1", "in (0, 1]", "one of 'sum', 'concat'"."""
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{_num(self.low)}, "
                    f"{_num(self.high)}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {_num(self.high)}"
        return "any finite value"

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is accepted, else one line saying what was given and what is."""
        if value is None or self.unbounded:
            return None
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                bad = self.problem(v)
                if bad:
                    return f"value [{i}] {bad}"
            return None
        if self.choices:
            return None if value in self.choices else f"{shown(value)} is not {self.describe()}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None                 # a wrong type is the type check's to report
        low_bad = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"{shown(value)} is out of range; expected {self.describe()}" if low_bad or high_bad else None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


CONFIG_BOUNDS: dict[type, dict[str, Bound]] = {}
"""config class -> field name -> Bound: the one table of value ranges (filled by
``register_bounds``; the pipeline's table is scenedreamer/pipeline/config_bounds.py). Keyed by
class, so a class used at several places of the config tree (FitConfig under `fit` and
`export.distill.fit`) is checked at each with the same rule."""


def register_bounds(cls: type, **bounds: Bound) -> None:
    """Declare the accepted values of ``cls``'s fields (names must be fields of ``cls``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(bounds) - names
    if unknown:
        raise TypeError(f"register_bounds({cls.__name__}): no field(s) {', '.join(sorted(unknown))}")
    CONFIG_BOUNDS.setdefault(cls, {}).update(bounds)


def field_problems(cls: type, values: dict[str, Any]) -> list[tuple[str, str]]:
    """(field name, problem) for each of ``values`` (field name -> value) outside the bound
    declared for ``cls`` (fields without a declared bound are not checked here)."""
    bounds = CONFIG_BOUNDS.get(cls, {})
    out = []
    for name, value in values.items():
        bound = bounds.get(name)
        bad = bound.problem(value) if bound is not None else None
        if bad:
            out.append((name, bad))
    return out


def config_problems(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key as ``--set`` takes it, problem) for every field of the (nested) config
    dataclass ``config`` outside its declared bound, in declaration order."""
    out: list[tuple[str, str]] = []
    values = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += config_problems(value, f"{prefix}{f.name}.")
        else:
            values[f.name] = value
    out += [(prefix + name, bad) for name, bad in field_problems(type(config), values)]
    return out


def check_config(config: Any, prefix: str = "") -> None:
    """UserInputError naming the user's dotted key (e.g. "init.fit_steps: -5 is out of range;
    expected >= 0") when any field of ``config`` is outside its bound; the first three
    problems are named, in declaration order."""
    problems = config_problems(config, prefix)
    if problems:
        text = "; ".join(f"{key}: {bad}" for key, bad in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserInputError(one_line(text + more))


def _size(n: int) -> str:
    return f"{n // 2**20} MB" if n >= 2**20 else f"{n // 2**10} KB"


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
    variants = getattr(tp, "config_variants", None)
    if origin in (typing.Union, types.UnionType) or callable(variants):
        # a class with config_variants() stands for the union of the config classes it lists
        # now (e.g. representation.registry.RepresentationConfig: one per registered kind)
        options = variants() if callable(variants) else get_args(tp)
        if value is None and type(None) in options:
            return None
        dc_options = [o for o in options if dataclasses.is_dataclass(o)]
        if isinstance(value, dict) and dc_options:
            name = value.get("type")
            for o in dc_options:
                if o.__name__ == name:
                    return _convert(o, value, where)
            raise UserInputError(f"{where}: unknown type {shown(name)} (expected one of "
                                 f"{', '.join(o.__name__ for o in dc_options)})")
        errors = []
        for o in options:
            if o is type(None):
                continue
            try:
                return _convert(o, value, where)
            except UserInputError as err:
                errors.append(str(err))
        raise UserInputError(errors[0] if errors else f"{where}: bad value {shown(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserInputError(f"{where}: expected an object, got {type(value).__name__}")
        hints = get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = set(value) - names - {"type"}
        if unknown:
            # a key may hold a newline or an undecodable character: quote it, one line
            raise UserInputError(f"{where}: unknown field(s) {', '.join(shown(k) for k in sorted(unknown))}")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items() if k != "type"}
        # the declared bounds first, so the message names the field's own dotted key
        problems = field_problems(tp, {k: v for k, v in kwargs.items()
                                       if not (dataclasses.is_dataclass(v) and not isinstance(v, type))})
        if problems:
            raise UserInputError(f"{where}.{problems[0][0]}: {problems[0][1]}")
        try:
            return tp(**kwargs)
        except UserInputError as err:
            raise UserInputError(f"{where}: {one_line(err)}") from None
        except (ValueError, TypeError, ArithmeticError) as err:     # a config's own __post_init__ checks
            raise UserInputError(f"{where}: {one_line(err)}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise UserInputError(f"{where}: {shown(value)} is not one of "
                                 f"{', '.join(str(m.value) for m in tp)}") from None
    if origin is typing.Literal:
        if not any(type(value) is type(option) and value == option for option in get_args(tp)):
            raise UserInputError(f"{where}: {shown(value)} is not one of {', '.join(map(repr, get_args(tp)))}")
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
    if origin in (dict,) or tp is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise UserInputError(f"{where}: expected an object, got {shown(value)}")
        key_type, value_type = get_args(tp) or (str, Any)
        return {_convert(key_type, k, _key(where, k)): _plain(_convert(value_type, v, _key(where, k)), _key(where, k))
                for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserInputError(f"{where}: expected a number, got {shown(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise UserInputError(f"{where}: number out of range") from None
        if not math.isfinite(number):
            raise UserInputError(f"{where}: expected a finite number, got {shown(value)}")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserInputError(f"{where}: expected an integer, got {shown(value)}")
        if abs(value) > MAX_INT:
            raise UserInputError(f"{where}: {shown(value, 24)} is beyond the 64-bit range (at most {MAX_INT})")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UserInputError(f"{where}: expected true/false, got {shown(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UserInputError(f"{where}: expected a string, got {shown(value)}")
        return _text(value, where)
    if tp is type(None):
        if value is not None:
            raise UserInputError(f"{where}: expected null")
        return None
    return value


def _text(value: str, where: str) -> str:
    """``value`` if it can be written as UTF-8 (a JSON escape like "\\ud800" gives a lone
    surrogate, which fails only when the text is written, e.g. after a run's first step)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserInputError(f"{where}: not valid text (undecodable character at position {err.start}; "
                             "use UTF-8)") from None
    return value


def _key(where: str, key: str) -> str:
    """The dotted path of ``key`` under ``where``, the key quoted unless it is a plain name (so a
    newline in a key cannot split an error line)."""
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{shown(key)}]"


def _plain(value: Any, where: str) -> Any:
    """``value`` (free-form JSON under a dict field) if it holds only what can be saved back:
    finite numbers, integers in the 64-bit range, UTF-8 text."""
    if isinstance(value, dict):
        return {_text(k, _key(where, k)): _plain(v, _key(where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return _convert(int, value, where)
    if isinstance(value, float):
        return _convert(float, value, where)
    raise UserInputError(f"{where}: expected plain JSON, got {shown(value)}")


RECORD_KEYS = frozenset({"prompt_reading"})
"""Top-level keys a saved config may carry beside its fields: records of what the run made of
its inputs (not settings), written by ``save_config(notes=...)`` and skipped by ``load_config``."""


def save_config(path: str | Path, config: Any, notes: dict | None = None) -> None:
    """Write ``config`` as plain JSON (atomically), with ``notes`` (keys of RECORD_KEYS) beside
    its fields."""
    data = to_json_dict(config)
    for key, value in (notes or {}).items():
        if key not in RECORD_KEYS or key in data:
            raise ValueError(f"save_config: {key!r} is not a record key")   # a programming error
        data[key] = value
    atomic_write_json(path, data)


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a config saved by ``save_config`` (its RECORD_KEYS notes are skipped); one
    UserInputError line naming the file (and the field) for a missing, unreadable, oversized
    (MAX_CONFIG_BYTES) or invalid file."""
    path = Path(path)
    data = read_json_file(path, what="config file", max_bytes=MAX_CONFIG_BYTES)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in RECORD_KEYS}
    return from_json_dict(cls, data, where=str(path))


def with_unrecorded_fields(config: T, saved: T, recorded: Any) -> T:
    """``config`` with every field that the saved file ``recorded`` (its JSON dict, as
    ``save_config`` wrote it) does not hold taken from ``saved`` (that file loaded, so such a
    field has its class default).

    For a resume: a field added to the program after the run was made is absent from its
    config.json, while a preset of today may set another value than the default; without this
    the resume would be refused as a changed setting. The default is what loading the old file
    gives everywhere else (extend, render), so the run continues with one value throughout.
    Fields the file holds are untouched, so a setting the user really changed is still reported
    by ``config_diff``. Nested configs are followed while both sides are the same config class.
    """
    if not (dataclasses.is_dataclass(config) and type(config) is type(saved) and isinstance(recorded, dict)):
        return config
    changes = {}
    for f in dataclasses.fields(config):
        mine, theirs = getattr(config, f.name), getattr(saved, f.name)
        if f.name not in recorded:
            if mine != theirs:
                changes[f.name] = theirs
        else:
            nested = with_unrecorded_fields(mine, theirs, recorded[f.name])
            if nested is not mine:
                changes[f.name] = nested
    return dataclasses.replace(config, **changes) if changes else config


def with_moved_defaults(config: T, saved: T, prefix: str = "") -> tuple[T, list[str]]:
    """``config`` with every leaf field that holds its class default today, where ``saved`` (a
    run's config.json, loaded) holds another value, taken from ``saved``; and the dotted keys
    so taken.

    For a resume: a default that moved after the run was made (a tuning that a later release
    measured better), or a setting the run was made with and the resuming command omits, is not
    a change the user asked for, and the run continues with the value it was made with, as
    extend and render read it. A value the user or today's preset set
    (not the class default) is untouched, so ``config_diff`` still reports a real change; a
    preset whose own value moved is still refused. Nested configs are followed while both sides
    are the same config class.
    """
    if not (dataclasses.is_dataclass(config) and type(config) is type(saved)):
        return config, []
    changes, kept = {}, []
    for f in dataclasses.fields(config):
        mine, theirs = getattr(config, f.name), getattr(saved, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(mine):
            nested, inner = with_moved_defaults(mine, theirs, key)
            if inner:
                changes[f.name], kept = nested, kept + inner
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        if mine == default and theirs != mine:
            changes[f.name] = theirs
            kept.append(key)
    return (dataclasses.replace(config, **changes) if changes else config), kept


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
