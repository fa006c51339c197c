"""The support database survives a writer process killed with SIGKILL while adding views."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from scenedreamer.support import SupportDatabase
from scenedreamer.support.database import VIEWS_DIR
from support_views import assert_same_record, make_record

WRITER = Path(__file__).parent / "crash_writer.py"
HEIGHT, WIDTH = 96, 128   # big enough that a random kill often lands inside a file write


def _start(folder: Path, mode: str, arm_after: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WRITER), str(folder), mode, str(arm_after),
                             str(HEIGHT), str(WIDTH)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _read_committed(proc: subprocess.Popen, count: int | None) -> list[int]:
    """Ids the writer reported, until ``count`` of them (None: until it exits)."""
    ids = []
    while count is None or len(ids) < count:
        line = proc.stdout.readline()
        if not line:
            break
        ids.append(int(line))
    return ids


def _check_reopens_intact(folder: Path, committed: list[int]) -> int:
    """Reopen: every committed view exact, ids contiguous, no leftover file. Returns len."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a dropped row would warn: there must be none
        db = SupportDatabase.open(folder, create=False)
    with db:
        ids = db.ids()
        assert set(committed) <= set(ids)
        assert ids == list(range(len(ids)))
        # at most one view beyond those reported: committed, killed before it printed its id
        assert len(ids) - len(committed) in (0, 1)
        for view_id in ids:
            assert_same_record(db.get(view_id), make_record(view_id, height=HEIGHT, width=WIDTH))
        files = sorted(p.name for p in (folder / VIEWS_DIR).iterdir())
        assert files == sorted(db.view_info(i).file for i in ids)
        return len(ids)


def test_database_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    folder = tmp_path / "support"
    rng = random.Random(0)
    committed: list[int] = []
    for round_ in range(2):
        proc = _start(folder, "loop")
        try:
            committed += _read_committed(proc, count=3 + 2 * round_)
            time.sleep(rng.uniform(0.0, 0.01))
            proc.send_signal(signal.SIGKILL)
            committed += _read_committed(proc, count=None)  # ids printed before the kill landed
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        total = _check_reopens_intact(folder, committed)
        committed = list(range(total))  # the next writer resumes after all of them


def test_kill_in_the_middle_of_a_file_write_loses_only_that_view(tmp_path: Path) -> None:
    folder = tmp_path / "support"
    proc = _start(folder, "kill_mid_file", arm_after=2)
    committed = _read_committed(proc, count=None)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert committed == [0, 1]
    temp_files = [p for p in (folder / VIEWS_DIR).iterdir() if p.name.endswith(".tmp")]
    assert len(temp_files) == 1                      # the half-written temp file is really there
    assert _check_reopens_intact(folder, committed) == 2


def test_kill_between_file_and_commit_leaves_no_record(tmp_path: Path) -> None:
    folder = tmp_path / "support"
    proc = _start(folder, "kill_before_commit", arm_after=3)
    committed = _read_committed(proc, count=None)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert committed == [0, 1, 2]
    assert (folder / VIEWS_DIR / "00000003.npys").exists()   # the orphan file of the lost add
    assert _check_reopens_intact(folder, committed) == 3
    with SupportDatabase.open(folder) as db:                  # and writing resumes at id 3
        assert db.add(make_record(3, height=HEIGHT, width=WIDTH)) == 3
