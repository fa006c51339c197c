"""Save and load a scene representation (and optionally the fitting state) as one file.

File layout (all written atomically through scenedreamer.atomic):
    line 1: the magic ``SCENEDREAMER-CHECKPOINT``
    line 2: a JSON header {"version", "kind", "payload_bytes", "payload_sha256"}
    rest:   a ``torch.save`` payload of plain data only: {"config": dict, "state_dict",
            "optimizer_state", "extra"}; loaded with ``weights_only=True`` (no arbitrary pickle).
The header names the kind before the payload is parsed, and the length + SHA-256 make a truncated
or corrupted file fail with a clear message instead of a deep unpickling error or silent garbage.
Representations are rebuilt from their config: the kind's class (representation/registry.py) .from_config(config, device),
with the config dataclass rebuilt from its saved dict (``config_class`` attribute of the class, or
the type annotation of its ``config`` attribute).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes
from ..errors import UserInputError
from .base import SceneRepresentation

MAGIC = b"SCENEDREAMER-CHECKPOINT\n"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt representation and what was saved beside it."""

    path: Path
    kind: str
    representation: SceneRepresentation
    optimizer_state: dict[str, Any] | None
    extra: dict[str, Any]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A (possibly nested) config dataclass -> plain dict of JSON-like values."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"representation.config must be a dataclass, got {type(config).__name__}")
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass (nested dataclasses and tuples included) from ``config_to_dict``."""
    hints = typing.get_type_hints(config_class)
    kwargs = {}
    for f in dataclasses.fields(config_class):
        if f.name not in data:
            continue  # a field added since the file was written keeps its default
        value, hint = data[f.name], hints.get(f.name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value)
        elif isinstance(value, list) and typing.get_origin(hint) in (tuple, typing.Union, None) \
                and "tuple" in str(hint):
            value = tuple(value)
        kwargs[f.name] = value
    return config_class(**kwargs)


def _config_class_of(cls: type) -> type:
    explicit = getattr(cls, "config_class", None)
    if explicit is not None:
        return explicit
    hint = typing.get_type_hints(cls).get("config")
    if hint is None or not dataclasses.is_dataclass(hint):
        raise TypeError(f"{cls.__name__} needs a `config_class` attribute (its config dataclass)")
    return hint


def save_checkpoint(path: str | os.PathLike, representation: SceneRepresentation,
                    optimizer_state: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write ``representation`` (config + parameters/buffers) to ``path`` atomically.

    optimizer_state: an optimizer state_dict to resume fitting (e.g. FitState.optimizer_state).
    extra: plain data (numbers, strings, lists, dicts, tensors) stored alongside.
    """
    payload = _interned({"config": config_to_dict(representation.config),
                         "state_dict": {k: v.detach().cpu() for k, v in representation.state_dict().items()},
                         "optimizer_state": optimizer_state, "extra": dict(extra or {})})
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    header = {"version": FORMAT_VERSION, "kind": representation.kind, "payload_bytes": len(body),
              "payload_sha256": hashlib.sha256(body).hexdigest()}
    atomic_write_bytes(path, MAGIC + json.dumps(header).encode("utf-8") + b"\n" + body)


def _interned(obj: Any) -> Any:
    """``obj`` with every string (dict keys included) interned, containers rebuilt. Pickle writes
    a string it has seen before as a back-reference only when it is the same object: without this
    the bytes of a checkpoint depended on where its strings came from (an optimizer state read
    back from a checkpoint holds copies of the names a fresh one shares), so a resumed run wrote
    other bytes for the same content."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {_interned(k): _interned(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_interned(v) for v in obj)
    return obj


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a checkpoint (kind, version, ...) without reading the payload."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            line = fh.readline(4096)
    except FileNotFoundError:
        raise UserInputError(f"{path}: checkpoint file not found") from None
    except OSError as err:
        raise UserInputError(f"{path}: cannot read checkpoint ({err.strerror})") from None
    if magic != MAGIC:
        raise UserInputError(f"{path}: not a scenedreamer checkpoint (bad magic bytes)")
    try:
        header = json.loads(line.decode("utf-8"))
        _ = header["kind"], int(header["payload_bytes"]), str(header["payload_sha256"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserInputError(f"{path}: checkpoint header is corrupt") from None
    return header


def load_checkpoint(path: str | os.PathLike, expected_kind: str | None = None,
                    device: torch.device | str | None = None) -> Checkpoint:
    """Read ``path``, rebuild its representation on ``device`` (default CPU) and load its state.

    Raises UserInputError naming the file when it is missing, not a checkpoint, truncated, corrupt,
    of an unknown kind, or of another kind than ``expected_kind``.
    """
    from .registry import REPRESENTATION_KINDS  # late: the registry imports every representation

    path = Path(path)
    header = read_header(path)
    kind = header["kind"]
    if header.get("version", 0) > FORMAT_VERSION:
        raise UserInputError(f"{path}: checkpoint format version {header['version']} is newer than this "
                             f"program's ({FORMAT_VERSION})")
    if expected_kind is not None and kind != expected_kind:
        raise UserInputError(f"{path}: holds a {kind!r} checkpoint, expected {expected_kind!r}")
    if kind not in REPRESENTATION_KINDS:
        raise UserInputError(f"{path}: unknown representation kind {kind!r} (known: {sorted(REPRESENTATION_KINDS)})")
    data = path.read_bytes()
    body = data[len(MAGIC) + data[len(MAGIC):].index(b"\n") + 1:]
    if len(body) != int(header["payload_bytes"]):
        raise UserInputError(f"{path}: checkpoint is truncated or padded ({len(body)} payload bytes, "
                             f"expected {header['payload_bytes']})")
    if hashlib.sha256(body).hexdigest() != header["payload_sha256"]:
        raise UserInputError(f"{path}: checkpoint is corrupt (payload checksum mismatch)")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserInputError(f"{path}: checkpoint payload cannot be read ({type(err).__name__})") from None
    cls = REPRESENTATION_KINDS[kind].load_class()
    try:
        config = config_from_dict(_config_class_of(cls), payload["config"])
        representation = cls.from_config(config, device=device)
        representation.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserInputError(f"{path}: checkpoint does not fit a {kind!r} representation ({first})") from None
    if device is not None:
        representation = representation.to(device)
    representation.eval()
    return Checkpoint(path=path, kind=kind, representation=representation,
                      optimizer_state=payload.get("optimizer_state"), extra=dict(payload.get("extra") or {}))
