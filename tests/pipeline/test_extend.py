"""`scenedreamer extend`: chapters grow the same world, --history, --revert byte-identical,
a killed chapter resumes to the same bytes, bad input refused in one line with nothing changed."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.geometry.cameras import Cameras, rigid_inverse
from scenedreamer.geometry.trajectory import Trajectory, make_trajectory
from scenedreamer.geometry.trajectory_io import read_transforms_json, write_transforms_json
from scenedreamer.pipeline.extend import ChapterInputs, chapter_cameras, chapter_config
from scenedreamer.pipeline.run_folder import RunFolder
from scenedreamer.support.database import SupportDatabase
from tiny_models import tiny_run_args

TINY = tiny_run_args("32x32", 3)
# the chapter every test grows the run by: 3 cameras so a kill can land mid-chapter, and the
# nerfstudio export switched on (an export setting may change between chapters)
CHAPTER = ["--trajectory", "forward", "--frames", "3", "--prompt", "the shore", "--set", "export.nerfstudio=true",
           "--quiet"]
OWN_BOOKKEEPING = ("chapters.json", "chapters", ".scenedreamer-run.lock")
"""What `extend` writes besides the run files a chapter's snapshot holds (never compared)."""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                      os.environ.get("PYTHONPATH", "")])}


def _files(root: Path) -> dict[str, bytes]:
    """Every file of the run folder (relative path -> bytes) but the chapter bookkeeping."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in OWN_BOOKKEEPING:
            found[str(rel)] = path.read_bytes()
    return found


def _views(root: Path):
    with SupportDatabase.open(root / "support", create=False) as db:
        return [db.get(v) for v in db.ids()]


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """(the generated run as it was, the same run after one chapter) - pristine copies (20 s
    measured on the shared 2-core machine, once for the module)."""
    base = tmp_path_factory.mktemp("extend")
    run = base / "run"
    assert main(["generate", "a forest lake", "--out", str(run), "--seed", "2", *TINY]) == 0
    before = _copy(run, base / "before")
    assert main(["extend", str(run), *CHAPTER]) == 0
    return before, _copy(run, base / "after1")


# the chapter's cameras ---------------------------------------------------------------------------
def test_a_preset_chapter_continues_from_the_last_camera_without_repeating_it():
    preset = make_trajectory("orbit", 4, 32, 32)
    turn = torch.eye(4)
    turn[:3, 3] = torch.tensor([1.0, -0.5, 2.0])
    turn[:3, :3] = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.1], [0.3, 0.0, -0.2], [-0.1, 0.2, 0.0]]))
    world = Trajectory(Cameras(preset.cameras.K[:2], torch.stack([torch.eye(4), turn]), 32, 32), [None, None])
    from scenedreamer.pipeline.config import preset_config

    config = dataclasses.replace(preset_config("offline"), width=32, height=32)
    added = chapter_cameras(ChapterInputs(trajectory="orbit", frames=3, prompt="a shore"), config, world)
    assert len(added.cameras) == 3 and added.prompts == ["a shore"] * 3
    # each new camera sits where the preset's camera i+1 sits relative to its camera 0, from the
    # run's last camera (a rigid move of the whole preset path)
    for i in range(3):
        relative = rigid_inverse(turn[None]) @ added.cameras.c2w[i:i + 1]
        assert torch.allclose(relative[0], preset.cameras.c2w[i + 1], atol=1e-5)
    assert not torch.allclose(added.cameras.c2w[0], turn, atol=1e-3)      # not the last camera again


def test_only_fitting_and_export_settings_may_change(grown):
    from scenedreamer.pipeline.extend import load_run_config

    base = load_run_config(grown[0])
    changed = chapter_config(base, ChapterInputs("forward", settings={"fit.lr_scale": 0.5}))
    assert changed.fit.lr_scale == 0.5 and changed.seed == base.seed
    for settings, named in [({"seed": 4}, "--set seed"), ({"width": 64}, "--set width"),
                            ({"representation.sh_degree": 0}, "--set representation.sh_degree"),
                            ({"fit.no_such_thing": 1}, "--set fit.no_such_thing")]:
        with pytest.raises(Exception) as err:
            chapter_config(base, ChapterInputs("forward", settings=settings))
        assert named in str(err.value)


# a chapter -------------------------------------------------------------------------------------
def test_extend_adds_cameras_keeps_old_views_and_rewrites_the_outputs(grown):
    before, after = grown
    old, new = _views(before), _views(after)
    assert len(new) == len(old) + 3
    for a, b in zip(old, new):      # nothing already in the database changed
        assert (a.view_id, a.step, a.prompt) == (b.view_id, b.step, b.prompt)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth) and torch.equal(a.valid, b.valid)
    for name in sorted(os.listdir(before / "support" / "views")):
        assert (before / "support" / "views" / name).read_bytes() == (after / "support" / "views" / name).read_bytes()
    assert [v.step for v in new[len(old):]] == [3, 4, 5] and {v.prompt for v in new[len(old):]} == {"the shore"}
    # the run's path is the whole world's, and the outputs cover it
    world = read_transforms_json(after / "trajectory.json")
    assert len(world.cameras) == 6
    # (the file reader re-orthonormalises rotations: ~1e-10 from one read-write round to the next)
    assert torch.allclose(world.cameras.c2w[:3], read_transforms_json(before / "trajectory.json").cameras.c2w,
                          atol=1e-6)
    assert json.loads((after / "progress.json").read_text())["last_step"] == 5
    frames = json.loads((after / "transforms.json").read_text())["frames"]
    assert len(frames) == len(new)                               # every support view, old and new
    assert (after / "scene.ply").read_bytes() != (before / "scene.ply").read_bytes()
    chapters = json.loads((after / "chapters.json").read_text())["chapters"]
    assert [(c["number"], c["first_step"], c["last_step"], c["finished"]) for c in chapters] == \
        [(0, 0, 2, True), (1, 3, 5, True)]
    assert chapters[1]["settings"] == {"export.nerfstudio": True} and chapters[1]["prompt"] == "the shore"


def test_history_and_revert_restore_every_file_byte_for_byte(grown, tmp_path, capsys):
    before, after1 = grown
    run = _copy(after1, tmp_path / "run")
    # chapter 2: a trajectory file in the run's world frame that returns to the first camera
    world = read_transforms_json(run / "trajectory.json")
    back = tmp_path / "back.json"
    write_transforms_json(back, Trajectory(world.cameras[[4, 0]], ["coming back", None]))
    assert main(["extend", str(run), "--trajectory", str(back), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["extend", str(run), "--history"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and str(back) in lines[3] and "6-7" in lines[3]
    assert "the shore" in lines[2] and "preset forward, 3 cameras" in lines[2] and "3-5" in lines[2]

    assert main(["extend", str(run), "--revert", "1"]) == 0
    assert _files(run) == _files(after1)
    assert not (run / "chapters" / "002").exists()
    assert [c["number"] for c in json.loads((run / "chapters.json").read_text())["chapters"]] == [0, 1]
    assert main(["extend", str(run), "--revert", "0"]) == 0
    assert _files(run) == _files(before)                          # the run as generate made it
    capsys.readouterr()
    assert main(["extend", str(run), "--revert", "1"]) == 2      # dropped: it no longer exists
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no finished chapter 1" in err
    # a grown run is extended again from where the revert left it (steps numbered from there)
    assert main(["extend", str(run), "--trajectory", "forward", "--frames", "1", "--quiet"]) == 0
    chapters = json.loads((run / "chapters.json").read_text())["chapters"]
    assert [(c["number"], c["first_step"], c["last_step"]) for c in chapters] == [(0, 0, 2), (1, 3, 3)]


def test_an_interrupted_revert_is_finished_by_the_next_call(grown, tmp_path):
    from scenedreamer.pipeline.chapters import ChapterBook

    run = _copy(grown[1], tmp_path / "run")
    book = ChapterBook(run)
    chapters = book.load()
    # the state a kill leaves after the intent was recorded and some files restored
    book.save(chapters, reverting_to=0)
    shutil.copyfile(book.folder(0) / "snapshot" / "scene.ply", run / "scene.ply")
    with pytest.raises(Exception, match="--revert 0"):
        book.load()
    assert main(["render", str(run), "--out", str(tmp_path / "v.mp4"), "--quiet"]) == 2   # not finished
    assert main(["extend", str(run), "--revert", "1"]) == 2       # another target: finish the first
    assert main(["extend", str(run), "--revert", "0"]) == 0
    assert _files(run) == _files(grown[0])


# kill and resume -------------------------------------------------------------------------------
@pytest.mark.slow   # one chapter killed and resumed in subprocesses (46 s measured on the shared 2-core machine)
def test_a_killed_chapter_resumes_to_the_bytes_of_an_uninterrupted_one(grown, tmp_path):
    before, reference = grown
    run = _copy(before, tmp_path / "run")
    command = [sys.executable, "-m", "scenedreamer.cli", "extend", str(run), *CHAPTER]
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = run / "progress.json"
    # wait for the event (the chapter's first step committed), never a deadline
    while proc.poll() is None:
        if json.loads(progress.read_text())["last_step"] >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert json.loads(progress.read_text())["last_step"] < 5       # killed mid-chapter
    # chapter 0 is intact: its snapshot is the run as generated
    assert _files(run / "chapters" / "000" / "snapshot") == \
        {k: v for k, v in _files(before).items() if k != "support/lock"}

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    resumed = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "extend", str(run), "--resume", "--quiet"],
                             env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    ref_views, res_views = _views(reference), _views(run)
    assert len(ref_views) == len(res_views)
    for a, b in zip(ref_views, res_views):
        assert a.step == b.step and torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    # the outputs (scene.pt, scene.ply, transforms.json, images, view files, checkpoints ...) are
    # those of the uninterrupted chapter; events.jsonl holds the kill's history and the SQLite file
    # each view's creation time (its views are compared above), so only these two differ
    ours, theirs = _files(run), _files(reference)
    assert ours.keys() == theirs.keys()
    differ = sorted(k for k in ours if ours[k] != theirs[k])
    assert set(differ) <= {"events.jsonl", "support/support.sqlite"}, differ
    assert "scene.ply" in ours and "scene.pt" in ours and "transforms.json" in ours


# bad input -------------------------------------------------------------------------------------
def _refused(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_refused_in_one_line_and_changes_nothing(grown, tmp_path, capsys):
    run = _copy(grown[0], tmp_path / "run")
    untouched = _files(run)
    bad = tmp_path / "bad.json"
    bad.write_text('{"frames": [{"transform_matrix": [[1, 0, 0]]}]}')
    assert str(bad) in _refused(capsys, "extend", str(run), "--trajectory", str(bad))
    assert "--resolution 64x64" in _refused(capsys, "extend", str(run), "--trajectory", "forward",
                                            "--resolution", "64x64")
    assert "--representation nerf" in _refused(capsys, "extend", str(run), "--trajectory", "forward",
                                               "--representation", "nerf")
    assert "--set priors.depth" in _refused(capsys, "extend", str(run), "--trajectory", "forward",
                                            "--set", "priors.depth=oracle")
    assert "--resume" in _refused(capsys, "extend", str(run), "--trajectory", "forward", "--resume")
    assert "no interrupted extension" in _refused(capsys, "extend", str(run), "--resume")
    assert "chapter 3" in _refused(capsys, "extend", str(run), "--revert", "3")
    assert "not a run folder" in _refused(capsys, "extend", str(tmp_path), "--trajectory", "forward")
    assert "--history" in _refused(capsys, "extend", str(run), "--history", "--trajectory", "forward")
    capsys.readouterr()
    assert main(["extend", str(run), "--history"]) == 0       # read-only: chapter 0 alone, unrecorded
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "preset lookaround, 3 cameras" in lines[1] and "0-2" in lines[1]
    assert _files(run) == untouched and not (run / "chapters.json").exists() and not (run / "chapters").exists()

    # a run that is not finished: resume it first (here: killed after its step 1)
    progress = json.loads((run / "progress.json").read_text())
    (run / "progress.json").write_text(json.dumps({**progress, "last_step": 1}))
    assert "generate --resume" in _refused(capsys, "extend", str(run), "--trajectory", "forward")
    assert not (run / "chapters.json").exists()


def test_a_run_of_the_older_release_is_extended(tmp_path, capsys):
    old = _copy(Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1", tmp_path / "old")
    assert main(["extend", str(old), "--trajectory", "forward", "--frames", "1", "--quiet"]) == 0
    assert len(read_transforms_json(old / "trajectory.json").cameras) == 3
    assert json.loads((old / "progress.json").read_text())["last_step"] == 2
    assert main(["extend", str(old), "--revert", "0"]) == 0
    assert len(read_transforms_json(old / "trajectory.json").cameras) == 2


# the run folder's rules ------------------------------------------------------------------------
def test_generate_resume_refuses_a_grown_run_and_overwrite_removes_its_chapters(grown, tmp_path):
    run = _copy(grown[1], tmp_path / "run")
    mine = run / "chapters" / "notes.txt"     # a file of the user's: never removed
    mine.write_text("mine")
    with pytest.raises(Exception, match="extend .* --resume"):
        RunFolder(run).check(resume=True, overwrite=False)
    RunFolder(run).remove_run_files()
    assert not (run / "chapters.json").exists() and not (run / "chapters" / "000").exists()
    assert mine.read_text() == "mine"


def test_a_full_disk_mid_chapter_keeps_what_was_committed_and_resumes(grown, tmp_path, capsys, monkeypatch):
    import errno

    from scenedreamer.pipeline import generate as gen

    before, reference = grown
    run = _copy(before, tmp_path / "run")
    real_save = gen.save_checkpoint

    def full_at_step_4(path, *args, **kwargs):
        if Path(path).name == "step_0004.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(gen, "save_checkpoint", full_at_step_4)
    capsys.readouterr()
    assert main(["extend", str(run), *CHAPTER]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("scenedreamer extend: failed: disk full") and len(err.splitlines()) == 1, err
    assert json.loads((run / "progress.json").read_text())["last_step"] == 3      # step 3 committed
    assert _files(run / "chapters" / "000" / "snapshot") == \
        {k: v for k, v in _files(before).items() if k != "support/lock"}          # chapter 0 intact
    assert [c["finished"] for c in json.loads((run / "chapters.json").read_text())["chapters"]] == [True, False]
    # the other commands refuse a run whose chapter was cut off (its outputs are the last
    # chapter's, its trajectory already the new one's) and say how to go on
    assert main(["export", str(run), "--format", "points-ply", "--out", str(tmp_path / "p.ply")]) == 2
    err = capsys.readouterr().err.strip()
    assert "chapter 1 of this run is not finished" in err and "extend" in err and "--resume" in err
    assert not (tmp_path / "p.ply").exists()

    monkeypatch.setattr(gen, "save_checkpoint", real_save)                       # space again
    assert main(["extend", str(run), "--resume", "--quiet"]) == 0
    ours, theirs = _files(run), _files(reference)
    assert ours["scene.ply"] == theirs["scene.ply"] and ours["scene.pt"] == theirs["scene.pt"]


def test_a_path_that_starts_where_the_world_shows_nothing_is_warned_about(grown, tmp_path, caplog):
    import logging

    run = _copy(grown[0], tmp_path / "run")
    world = read_transforms_json(run / "trajectory.json")
    away = world.cameras[len(world.cameras) - 1]
    turn = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))          # 180 degrees about +y: looks back
    path = tmp_path / "away.json"
    write_transforms_json(path, Trajectory(Cameras(away.K, away.c2w @ turn, 32, 32), [None]))
    with caplog.at_level(logging.WARNING, logger="scenedreamer.pipeline.extend"):
        assert main(["extend", str(run), "--trajectory", str(path), "--quiet"]) == 0
    assert any("starts where the world shows nothing" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scenedreamer.pipeline.extend"):   # a path from the last camera
        assert main(["extend", str(run), "--trajectory", "forward", "--frames", "1", "--quiet"]) == 0
    assert not any("shows nothing" in r.getMessage() for r in caplog.records)
