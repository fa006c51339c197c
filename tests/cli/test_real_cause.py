"""Issue 20 item 5: errors that give the real cause. A full disk is known by its errno (or
SQLite's result code), never by a word in the message; a pseudo or read-only file system is
"cannot create/write", found before the disk estimate; `models check` on a file says it is a
file; an internal consistency check is an "internal error ... please report" line, exit 1."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys

import pytest

from scenedreamer.atomic import check_writable_destination, describe_os_error
from scenedreamer.errors import InternalError, RunFailedError, UserInputError, is_disk_full


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "scenedreamer.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG])
def test_a_full_disk_is_known_by_errno(code):
    assert is_disk_full(OSError(code, "whatever the C library says"))
    assert is_disk_full(RunFailedError("x").with_traceback(None)) is False
    try:
        try:
            raise OSError(code, "")
        except OSError as err:
            raise RunFailedError("while writing") from err
    except RunFailedError as wrapped:
        assert is_disk_full(wrapped)            # through the cause chain


def test_a_word_in_the_message_is_not_a_full_disk():
    assert not is_disk_full(OSError(errno.EACCES, "the folder is full of someone else's files"))
    assert not is_disk_full(ValueError("disk full"))
    assert describe_os_error(OSError(errno.EACCES, "full"), "/x/y").startswith("no permission to write /x/y")
    assert describe_os_error(OSError(errno.ENOSPC, "No space left"), "/x/y") == "disk full while writing /x/y"
    assert describe_os_error(OSError(errno.EFBIG, "big"), "/x/y").startswith("file too large while writing /x/y")


def test_sqlite_full_is_known_by_its_result_code():
    err = sqlite3.OperationalError("database or disk is full")
    err.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert is_disk_full(err)
    other = sqlite3.OperationalError("table full of rows")       # the word alone does not count
    other.sqlite_errorcode = sqlite3.SQLITE_ERROR
    assert not is_disk_full(other)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_pseudo_file_system_cannot_be_written(tmp_path):
    with pytest.raises(UserInputError, match=r"^--out /proc/x: cannot create/write: /proc is on a pseudo file system"):
        check_writable_destination("/proc/x", folder=True)
    result = cli("generate", "a forest", "--out", "/proc/x", "--resolution", "32x32")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "cannot create/write" in lines[0] and "free" not in lines[0], lines[0]   # not the disk estimate


def test_a_file_where_a_folder_is_needed(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(UserInputError, match="blocker is not a writable folder"):
        check_writable_destination(tmp_path / "blocker" / "run", folder=True)
    check_writable_destination(tmp_path / "new" / "run", folder=True)       # creates nothing
    assert not (tmp_path / "new").exists()


def test_models_check_on_a_file_says_it_is_a_file(tmp_path):
    f = tmp_path / "weights.txt"
    f.write_text("not a model")
    result = cli("models", "check", f)
    assert result.returncode == 1, result.stderr                  # documented: 1 = a named model is missing
    assert result.stdout.strip() == (f"{f}: is a file, not a model folder; pass the folder that holds the model, "
                                     "a hub id (owner/name) or a preset name (`scenedreamer models list`)")
    assert "does not exist" not in result.stdout


def test_an_internal_error_is_a_bug_report_line(monkeypatch, capsys):
    from scenedreamer import cli as cli_module
    from scenedreamer.cli import models

    def broken(args):
        raise InternalError("support database: view 3 listed twice")

    monkeypatch.setattr(models, "run", broken)
    monkeypatch.delenv("SCENEDREAMER_DEBUG", raising=False)
    assert cli_module.main(["models", "list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scenedreamer models: internal error: support database: view 3 "
                                               "listed twice; this is a bug in scenedreamer, please report it"), err
    assert not issubclass(InternalError, UserInputError)
