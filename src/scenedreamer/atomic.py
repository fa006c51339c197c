"""Atomic file writes: write a temporary file in the same folder, fsync, then rename.

A reader (or a process killed mid-write) therefore sees either the old file or the new one,
never a half-written one. Every file the project writes goes through these helpers.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import RunFailedError, UserInputError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` keeps a file extension on the temp file for writers that look at it
    (imageio, matplotlib). ``fsync=False`` skips flushing the data to disk before the rename:
    still safe against a killed process, not against a power cut (callers that group-commit,
    like the support database, flush later). On error the temp file is removed and ``path`` is
    untouched.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp",
                                   dir=folder)
        os.close(fd)
    except PermissionError as err:
        raise UserInputError(f"{folder}: folder is not writable ({err.strerror})") from None
    except OSError as err:
        raise RunFailedError(f"{folder}: cannot write here ({err.strerror})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; give the result the permissions a plain open() would
        os.chmod(tmp_path, 0o666 & ~_umask())
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        if err.errno == 28:  # ENOSPC
            raise RunFailedError(f"{path}: disk full while writing; the previous file is kept") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
