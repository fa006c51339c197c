"""`scenedreamer trajectory ... --out / --plot` at paths that cannot be written: one line naming
the path the user gave (never an internal temp file), exit 2, and nothing written; the atomic
writer under it names the destination for every failure."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from scenedreamer import atomic
from scenedreamer.atomic import atomic_write_text, is_temp_file
from scenedreamer.cli import main
from scenedreamer.errors import RunFailedError, UserInputError
from scenedreamer.export.trajectory_plot import plot_trajectory
from scenedreamer.geometry.trajectory import make_trajectory
from scenedreamer.geometry.trajectory_io import write_transforms_json


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_out_at_a_folder_is_one_line_naming_it_in_a_real_process(tmp_path):
    folder = tmp_path / "paths"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "trajectory", "orbit", "--frames", "3",
                           "--out", str(folder)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr == (f"scenedreamer trajectory: error: --out {folder}: is a folder; give a file name, "
                           f"e.g. {folder / 'trajectory.json'}\n")
    assert _files(tmp_path) == ["paths"]


@pytest.mark.parametrize("argv,needle", [
    (["--out", "{d}/ok.json", "--plot", "{d}"], "--plot {d}: is a folder"),
    (["--out", "{d}/blocker/t.json"], "--out {d}/blocker/t.json: {d}/blocker is not a writable folder"),
    (["--out", "{d}/ok.json", "--plot", "{d}/blocker/p.png"], "--plot {d}/blocker/p.png: {d}/blocker is not"),
    (["--out", ""], "--out: give a file name"),
])
def test_every_output_is_checked_before_any_is_written(tmp_path, capsys, argv, needle):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    argv = [a.format(d=tmp_path) for a in argv]
    assert main(["trajectory", "orbit", "--frames", "3", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle.format(d=tmp_path) in err, err
    assert _files(tmp_path) == ["blocker"]                   # not even the good --out


def test_check_with_a_plot_at_a_folder(tmp_path, capsys):
    traj = make_trajectory("orbit", 3, 32, 32)
    write_transforms_json(tmp_path / "t.json", traj)
    assert main(["trajectory", "--check", str(tmp_path / "t.json"), "--plot", str(tmp_path)]) == 2
    assert f"--plot {tmp_path}: is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("write", [
    lambda path: write_transforms_json(path, make_trajectory("orbit", 3, 32, 32)),
    lambda path: plot_trajectory(make_trajectory("orbit", 3, 32, 32), path),
], ids=["transforms.json", "plot"])
def test_library_writers_name_the_folder_they_were_given(tmp_path, write):
    target = tmp_path / "t.json"
    target.mkdir()
    with pytest.raises(UserInputError) as info:
        write(target)
    assert str(info.value) == f"{target}: is a folder, not a file; give a file name"
    assert _files(tmp_path) == ["t.json"]                    # no temp file beside it


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_rename_names_the_destination_not_the_temp(tmp_path, monkeypatch, existed):
    """os.replace is the last step of every atomic write; when it fails the message names the
    file the caller asked for, and says the previous one is kept only when there was one."""
    target = tmp_path / "t.json"
    if existed:
        target.write_text("old")

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))   # names the temp, as the OS does

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(RunFailedError) as info:
        atomic_write_text(target, "new")
    message = str(info.value)
    assert message.startswith(f"cannot write {target} (Invalid cross-device link)")
    assert message.endswith("; the previous file is kept") == existed
    assert not any(is_temp_file(n) for n in os.listdir(tmp_path))
    assert (target.read_text() == "old") if existed else not target.exists()


def test_a_file_where_a_parent_folder_should_be(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(RunFailedError) as info:
        atomic_write_text(tmp_path / "blocker" / "sub" / "x.txt", "hi")
    assert str(info.value) == f"cannot write {tmp_path}/blocker/sub/x.txt ({tmp_path}/blocker is a file, not a folder)"
