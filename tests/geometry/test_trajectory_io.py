"""transforms.json round trips, the `scenedreamer trajectory` command and its bad-input messages."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.errors import UserInputError
from scenedreamer.export.trajectory_plot import plot_trajectory
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_focal
from scenedreamer.geometry.trajectory import Trajectory, make_trajectory
from scenedreamer.geometry.trajectory_io import read_transforms_json, write_transforms_json


def test_round_trip_keeps_poses_intrinsics_and_prompts(tmp_path):
    traj = make_trajectory("orbit", 12, 96, 64, fov_deg=70.0, radius=2.5, elevation_deg=15.0,
                           prompts=["a castle", None, "a moat"])
    path = tmp_path / "t.json"
    write_transforms_json(path, traj)
    back = read_transforms_json(path)
    assert (back.cameras.width, back.cameras.height) == (96, 64)
    assert torch.allclose(back.cameras.c2w, traj.cameras.c2w, atol=1e-6)
    assert torch.allclose(back.cameras.K, traj.cameras.K, atol=1e-5)
    assert back.prompts == traj.prompts
    data = json.loads(path.read_text())
    assert set(data) >= {"fl_x", "fl_y", "cx", "cy", "w", "h", "frames"}     # shared intrinsics on top
    assert "prompt" not in data["frames"][4]                                  # None is left out
    # OpenGL axes on disk: camera 0 (identity in OpenCV) has its y and z axes flipped
    assert data["frames"][0]["transform_matrix"][1][1] == -1.0
    assert data["frames"][0]["transform_matrix"][2][2] == -1.0


def test_per_frame_intrinsics_and_extra_fields_round_trip(tmp_path):
    K = torch.stack([intrinsics_from_focal(50.0 + i, 52.0, 16.0, 12.5) for i in range(3)])
    traj = Trajectory(Cameras(K, torch.eye(4).expand(3, 4, 4).clone(), 32, 24), [None, "x", None])
    path = tmp_path / "t.json"
    write_transforms_json(path, traj, extra_frame_fields=[{"file_path": f"rgb/{i}.png"} for i in range(3)])
    data = json.loads(path.read_text())
    assert "fl_x" not in data and data["frames"][1]["fl_x"] == 51.0
    assert data["frames"][2]["file_path"] == "rgb/2.png"
    back = read_transforms_json(path)
    assert torch.allclose(back.cameras.K, K)


def test_reads_nerf_synthetic_style_camera_angle_x(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"camera_angle_x": math.radians(90), "w": 100, "h": 80,
                                "frames": [{"file_path": "a", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0],
                                                                                    [0, 0, 1, 2], [0, 0, 0, 1]]}]}))
    traj = read_transforms_json(path)
    assert float(traj.cameras.K[0, 0, 0]) == pytest.approx(50.0)
    assert float(traj.cameras.K[0, 0, 2]) == 50.0 and float(traj.cameras.K[0, 1, 2]) == 40.0
    assert torch.allclose(traj.cameras.c2w[0, :3, 3], torch.tensor([0.0, 0.0, 2.0]))
    assert float(traj.cameras.c2w[0, 2, 2]) == -1.0                           # OpenGL -> OpenCV


GOOD_FRAME = {"transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}
TOP = {"fl_x": 40.0, "fl_y": 40.0, "cx": 16, "cy": 16, "w": 32, "h": 32}


def _file(tmp_path, content) -> str:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _matrix(**changes):
    m = [row[:] for row in GOOD_FRAME["transform_matrix"]]
    for key, value in changes.items():
        i, j = int(key[1]), int(key[2])
        m[i][j] = value
    return m


BAD_FILES = [
    ("{not json", "not valid JSON (line 1"),
    ([1, 2], "top level must be a JSON object"),
    ({**TOP}, "frames: missing"),
    ({**TOP, "frames": []}, "frames: must be a non-empty list"),
    ({**TOP, "frames": [GOOD_FRAME, {}]}, "frame 1: transform_matrix: missing"),
    ({**TOP, "frames": [GOOD_FRAME, {"transform_matrix": [[1, 0, 0]]}]}, "frame 1: transform_matrix: must be a 4x4"),
    ({**TOP, "frames": [GOOD_FRAME, GOOD_FRAME, GOOD_FRAME, {"transform_matrix": _matrix(m00=2.0)}]},
     "frame 3: transform_matrix: rotation is not orthonormal"),
    ({**TOP, "frames": [{"transform_matrix": _matrix(m00=-1.0)}]}, "frame 0: transform_matrix: rotation is not orthonormal"),
    ({**TOP, "frames": [GOOD_FRAME, {"transform_matrix": _matrix(m03="x")}]}, "frame 1: transform_matrix: expected numbers"),
    ({**TOP, "frames": [{"transform_matrix": _matrix(m30=1.0)}]}, "frame 0: transform_matrix: last row must be"),
    ('{"fl_x": 40, "w": 32, "h": 32, "frames": [{"transform_matrix": [[1,0,0,NaN],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}',
     "frame 0: transform_matrix: must be finite"),
    ('{"fl_x": Infinity, "w": 32, "h": 32, "frames": [{"transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}',
     "frame 0: fl_x: must be finite"),
    ({**TOP, "fl_x": 0, "frames": [GOOD_FRAME]}, "frame 0: fl_x: must be > 0"),
    ({**TOP, "frames": [GOOD_FRAME, {**GOOD_FRAME, "fl_y": -3}]}, "frame 1: fl_y: must be > 0"),
    ({**TOP, "w": 0, "frames": [GOOD_FRAME]}, "frame 0: w: must be > 0"),
    ({**TOP, "h": 31.5, "frames": [GOOD_FRAME]}, "frame 0: h: must be a whole number"),
    ({"w": 32, "h": 32, "frames": [GOOD_FRAME]}, "frame 0: fl_x: missing"),
    ({**TOP, "frames": [GOOD_FRAME, {**GOOD_FRAME, "w": 64}]}, "frame 1: w/h: all frames must share one image size"),
    ({**TOP, "frames": [{**GOOD_FRAME, "prompt": 3}]}, "frame 0: prompt: must be a string or null"),
]


@pytest.mark.parametrize("content,needle", BAD_FILES)
def test_bad_files_raise_user_input_error_naming_file_frame_and_field(tmp_path, content, needle):
    path = _file(tmp_path, content)
    with pytest.raises(UserInputError) as info:
        read_transforms_json(path)
    assert str(info.value).startswith(path + ": ")
    assert needle in str(info.value)


@pytest.mark.parametrize("content,needle", BAD_FILES)
def test_cli_check_of_bad_file_exits_2_with_one_line(tmp_path, capsys, content, needle):
    path = _file(tmp_path, content)
    assert main(["trajectory", "--check", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


@pytest.mark.parametrize("argv,needle", [
    (["trajectory", "nope"], "unknown trajectory preset 'nope'"),
    (["trajectory", "orbit", "--radius", "-2"], "radius: must be > 0"),
    (["trajectory", "orbit", "--radius", "inf"], "radius: must be finite"),
    (["trajectory", "orbit", "--degrees", "lots"], "degrees: expected a number"),
    (["trajectory", "rotate360", "--distance", "1"], "distance: unknown option"),
    (["trajectory", "forward", "--frames", "0"], "frames must be an integer in [1"),
    (["trajectory", "forward", "--frames", "ten"], "--frames: expected an integer"),
    (["trajectory", "forward", "--width", "0"], "width must be a positive integer"),
    (["trajectory", "forward", "--fov", "200"], "fov_deg must be in (0, 180)"),
    (["trajectory"], "give a PRESET"),
    (["trajectory", "--check", "/nonexistent/t.json"], "file not found"),
])
def test_cli_bad_arguments_exit_2_with_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_cli_writes_checks_and_plots(tmp_path, capsys):
    out, png = tmp_path / "path.json", tmp_path / "path.png"
    assert main(["trajectory", "orbit", "--frames", "16", "--width", "64", "--height", "48", "--radius", "1.5",
                 "--prompt", "a", "--prompt", "b", "--out", str(out)]) == 0
    traj = read_transforms_json(out)
    assert len(traj) == 16 and traj.prompts[0] == "a" and traj.prompts[-1] == "b"
    capsys.readouterr()
    assert main(["trajectory", "--check", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "frames: 16" in text and "ok" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))                                      # no temp files left behind
    assert main(["trajectory", "--list"]) == 0
    assert "--focus-distance" in capsys.readouterr().out


def test_plot_of_a_static_single_camera(tmp_path):
    plot_trajectory(make_trajectory("rotate360", 1, 32, 32), tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 1000


def test_plot_finds_world_up_from_cameras_without_roll():
    from scenedreamer.export.trajectory_plot import _world_up

    level = make_trajectory("lookdown", 10, 32, 32, pitch_deg=40.0).cameras.c2w.double().numpy()
    assert _world_up(level, 0.02) == pytest.approx([0.0, -1.0, 0.0], abs=1e-6)      # tilt is not roll
    tilted = make_trajectory("orbit", 12, 32, 32, elevation_deg=20.0).cameras.c2w.double().numpy()
    up = _world_up(tilted, 0.02)                                   # the orbit axis, seen from camera 0
    assert up == pytest.approx([0.0, -math.cos(math.radians(20)), -math.sin(math.radians(20))], abs=1e-6)
