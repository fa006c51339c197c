"""Atomic file writes: write a temporary file in the same folder, fsync, then rename.

A reader (or a process killed mid-write) therefore sees either the old file or the new one,
never a half-written one. Every file the project writes goes through these helpers.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import RunFailedError, UserInputError


# mkstemp's random part: 8 characters of this alphabet (CPython tempfile._RandomNameSequence)
_TEMP_RANDOM = r"[a-z0-9_]{8}"


def temp_name_pattern(name: str) -> "re.Pattern[str]":
    """Regex matching the temp files ``atomic_path`` makes for a target named ``name``
    (``.NAME.<8 random chars><suffix>``): what a killed writer can leave behind."""
    return re.compile(rf"^\.{re.escape(name)}\.{_TEMP_RANDOM}(\.[^/]*)?$")


def is_temp_file(file_name: str) -> bool:
    """Whether ``file_name`` has the shape of an ``atomic_path`` temp file of any target."""
    return re.match(rf"^\..+\.{_TEMP_RANDOM}(\.[^/]*)?$", file_name) is not None


def describe_os_error(err: BaseException, path: str | os.PathLike) -> str:
    """One line saying in words what went wrong while writing ``path`` (the target, never
    the temp file), e.g. "disk full while writing RUN/scene.ply"."""
    from .errors import is_disk_full

    code = getattr(err, "errno", None)
    text = str(err)
    if code == errno.EFBIG:
        return f"file too large while writing {path} (file size limit, e.g. ulimit -f, or the file system's)"
    # by errno / SQLite code, never by the message's wording; a short write without an errno
    # (numpy's tofile, torch) is judged by the free space left
    if is_disk_full(err) or (code is None and _no_space_left(path)):
        return f"disk full while writing {path}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"no permission to write {path} ({getattr(err, 'strerror', None) or text})"
    return f"cannot write {path} ({getattr(err, 'strerror', None) or text})"


def _no_space_left(path: str | os.PathLike) -> bool:
    # some writers (numpy's tofile, torch) report a short write without an errno; ask the disk
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_SPACE_BYTES


# below this many free bytes a short write is reported as "disk full" (one SQLite page /
# a few file-system blocks: a short write at this level is the disk running out)
_LOW_SPACE_BYTES = 1 << 20


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    ``suffix`` keeps a file extension on the temp file for writers that look at it
    (imageio, matplotlib). ``fsync=False`` skips flushing the data to disk before the rename:
    still safe against a killed process, not against a power cut (callers that group-commit,
    like the support database, flush later). On error the temp file is removed and ``path`` is
    untouched; an OSError (disk full, file too large, ...) becomes RunFailedError naming
    ``path`` (not the temp file) and saying what happened. A folder at ``path`` is refused
    (UserInputError) before anything is written.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        # os.replace would fail only after the whole file was written, with a message about
        # "Is a directory" and no hint which path the user should change
        raise UserInputError(f"{path}: is a folder, not a file; give a file name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp",
                                   dir=folder)
        os.close(fd)
    except PermissionError as err:
        raise UserInputError(f"{folder}: folder is not writable ({err.strerror})") from None
    except (FileExistsError, NotADirectoryError):
        # a file where a folder of the path should be (mkdir says "File exists")
        raise RunFailedError(f"cannot write {path} ({_file_in_the_way(folder)} is a file, not a folder)") from None
    except OSError as err:
        raise RunFailedError(describe_os_error(err, path)) from None
    tmp_path = Path(tmp)
    existed = path.exists()
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
        # the message names the target, never the temp file (the user has never heard of it)
        kept = "; the previous file is kept" if existed else ""
        raise RunFailedError(describe_os_error(err, path) + kept) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _file_in_the_way(folder: Path) -> Path:
    """The nearest ancestor of ``folder`` (itself included) that exists: the file blocking it."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


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


def check_writable_destination(out: str | os.PathLike, folder: bool, flag: str = "--out") -> None:
    """Refuse (UserInputError "cannot create/write ...") an output that cannot be written: its
    nearest existing ancestor (the folder itself when ``folder`` and it exists) is not a writable
    folder (e.g. a file where a folder is expected), lies on a read-only file system, or on a
    pseudo file system that stores no files (/proc, /sys: statvfs reports 0 blocks). Reads only;
    creates nothing. Run it before any estimate that reads the free space (a pseudo file system
    has "0 bytes free", which is not the real cause)."""
    out = Path(out)
    parent = out if folder else (out.parent if str(out.parent) else Path("."))
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserInputError(f"{flag} {out}: {parent} is not a writable folder (a file; cannot create/write there)")
    try:
        st = os.statvfs(parent)
    except OSError:
        st = None
    if st is not None and st.f_flag & os.ST_RDONLY:
        raise UserInputError(f"{flag} {out}: cannot create/write: {parent} is on a read-only file system")
    if st is not None and st.f_blocks == 0:
        raise UserInputError(f"{flag} {out}: cannot create/write: {parent} is on a pseudo file system "
                             "(like /proc or /sys) that holds no files; choose a folder on a disk")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserInputError(f"{flag} {out}: {parent} is not a writable folder (no permission; cannot create/write there)")
