"""Issue 21 item 6: `trajectory --help` lists every preset; `view` on a batch folder lists its
scenes and opens one."""

from __future__ import annotations

import pytest

from scenedreamer.batch.manifest import Manifest
from scenedreamer.cli import main
from scenedreamer.cli.view import batch_scene
from scenedreamer.geometry.trajectory import TRAJECTORY_PRESETS


def test_trajectory_help_lists_every_preset_with_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["trajectory", "--help"])
    out = capsys.readouterr().out
    listing = out[out.index("presets (generate --trajectory NAME"):].splitlines()[1:]
    assert [line.split()[0] for line in listing if line.strip()] == list(TRAJECTORY_PRESETS)
    assert all(len(line.split()) > 2 for line in listing if line.strip())     # a description each


@pytest.fixture
def batch_folder(tmp_path):
    folder = tmp_path / "batch"
    with Manifest.open(folder) as manifest:
        manifest.register({"executor": "local"}, [
            ("lake", "a forest lake", 0, str(folder / "lake"), "{}"),
            ("kitchen", "a small kitchen", 1, str(folder / "kitchen"), "{}")])
    (folder / "kitchen").mkdir()
    (folder / "kitchen" / "scene.ply").write_bytes(b"ply\n")      # only the existence is read
    return folder


def test_view_on_a_batch_lists_its_scenes_and_opens_the_first_finished_one(batch_folder, capsys):
    assert batch_scene(str(batch_folder), None) == str(batch_folder / "kitchen")
    out = capsys.readouterr().out
    assert "batch of 2 scenes" in out and "lake" in out and "a small kitchen" in out and "opening kitchen" in out
    assert batch_scene(str(batch_folder), "lake") == str(batch_folder / "lake")


def test_view_on_a_batch_names_a_wrong_scene_in_one_line(batch_folder, capsys):
    assert main(["view", str(batch_folder), "--scene", "castle", "--no-browser", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scene castle" in err[0] and "lake, kitchen" in err[0]


def test_view_on_a_batch_with_no_finished_scene_says_so(batch_folder, capsys):
    (batch_folder / "kitchen" / "scene.ply").unlink()
    assert main(["view", str(batch_folder), "--no-browser", "--port", "0"]) == 2
    assert "no scene of this batch has a scene.ply" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["offline", "sd15", "sd2"])
def test_the_default_video_lasts_at_least_six_seconds_of_distinct_frames(preset):
    from scenedreamer.geometry.trajectory import interpolated_cameras, path_frame_count
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.outputs import video_cameras
    from scenedreamer.pipeline.scene_cameras import load_trajectory

    config = preset_config(preset)
    trajectory = load_trajectory(config)
    frames = path_frame_count(len(trajectory.cameras), config.export.video_frames_per_view)
    assert frames / config.export.fps >= 6.0              # issue 21: a video long enough to watch
    cameras = video_cameras(trajectory, config.export.video_frames_per_view)
    assert len(cameras) == frames and len(interpolated_cameras(trajectory.cameras, frames)) == frames
    # interpolated, not repeated: no two consecutive frames share a pose
    steps = (cameras.c2w[1:] - cameras.c2w[:-1]).flatten(1).abs().amax(dim=1)
    assert bool((steps > 1e-6).all())
