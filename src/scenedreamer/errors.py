"""Errors that reach the user as one line (the CLI prints ``str(err)`` and exits non-zero).

Library code raises these for bad *input* (files, parameters, missing weights); programming
errors stay ordinary exceptions so that they keep their traceback.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input from the user: the message names what and where. CLI exit code 2."""

    exit_code = 2


class MissingWeightsError(UserInputError):
    """A requested real model has no weights locally and cannot be downloaded. Exit code 2."""


class RunLockedError(UserInputError):
    """Another process holds the run folder's lock (it is still writing the run). Exit code 2."""


class RunFailedError(Exception):
    """The run could not go on for an environmental reason (disk full, ...). CLI exit code 1."""

    exit_code = 1


class InternalError(Exception):
    """An internal consistency check failed: this can only happen through a bug in scenedreamer,
    never through the user's input. The CLI prints one "internal error ... please report" line
    (SCENEDREAMER_DEBUG=1 shows the traceback). Exit code 1."""

    exit_code = 1


def is_disk_full(err: BaseException) -> bool:
    """True when ``err`` (an OSError, a sqlite3.Error, or an exception caused by one) says the
    disk or the quota is full, or a file hit its size limit: recognised by errno (ENOSPC, EDQUOT,
    EFBIG) or SQLite's result code (SQLITE_FULL), never by the message's wording."""
    import errno
    import sqlite3

    names = {getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, n)}
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno is not None and err.errno in names:
            return True
        # sqlite3 errors carry SQLite's result code (Python >= 3.11); the low byte is the primary code
        code = getattr(err, "sqlite_errorcode", None)
        if isinstance(err, sqlite3.Error) and code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
            return True
        err = err.__cause__ or err.__context__
    return False
