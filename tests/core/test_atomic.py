import json
import os
import stat

import pytest

from scenedreamer.atomic import atomic_path, atomic_write_json, atomic_write_text
from scenedreamer.errors import RunFailedError


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_written_file_has_normal_permissions(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hi")
    mode = stat.S_IMODE(os.stat(tmp_path / "x.txt").st_mode)
    assert mode & 0o044  # readable by group/others under a usual umask, not mkstemp's 0600


def test_folder_that_cannot_exist_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunFailedError, match="cannot write .*x.txt"):
        atomic_write_text(blocker / "sub" / "x.txt", "hi")
