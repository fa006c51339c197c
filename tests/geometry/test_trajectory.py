"""Trajectory presets, interpolation and per-segment prompts."""

from __future__ import annotations

import math

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import look_at, rotation_error
from scenedreamer.geometry.trajectory import (TRAJECTORY_PRESETS, interpolate_poses, keyframe_trajectory,
                                              make_trajectory, segment_prompts)


def turn_angles_deg(c2w: torch.Tensor) -> torch.Tensor:
    """(N-1,) rotation angle between consecutive cameras, degrees."""
    rel = c2w[:-1, :3, :3].transpose(1, 2) @ c2w[1:, :3, :3]
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


@pytest.mark.parametrize("preset", sorted(TRAJECTORY_PRESETS))
@pytest.mark.parametrize("frames", [1, 2, 37])
def test_every_preset_gives_valid_cameras_starting_at_identity(preset, frames):
    traj = make_trajectory(preset, frames, 64, 48, fov_deg=50.0)
    cams = traj.cameras
    assert len(cams) == frames and len(traj.prompts) == frames
    assert (cams.width, cams.height) == (64, 48)
    assert cams.c2w.dtype == torch.float32
    assert torch.allclose(cams.c2w[0], torch.eye(4), atol=1e-6)     # world = first camera's frame
    assert float(rotation_error(cams.c2w[:, :3, :3].double()).max()) < 1e-5
    assert torch.allclose(cams.K[:, 0, 0], torch.full((frames,), 32 / math.tan(math.radians(25))), rtol=1e-6)


@pytest.mark.parametrize("preset", sorted(TRAJECTORY_PRESETS))
def test_presets_are_smooth(preset):
    c2w = make_trajectory(preset, 120, 64, 64).cameras.c2w.double()
    steps = (c2w[1:, :3, 3] - c2w[:-1, :3, 3]).norm(dim=-1)
    turns = turn_angles_deg(c2w)
    # no jumps: every step is small compared with the total motion, and steps change gradually
    assert steps.max() <= 4 * steps.mean() + 1e-9
    assert turns.max() <= 6.0
    assert (steps[1:] - steps[:-1]).abs().max() <= 0.2 * steps.max() + 1e-6
    assert (turns[1:] - turns[:-1]).abs().max() <= 0.5


def test_orbit_looks_at_its_centre_at_constant_distance():
    traj = make_trajectory("orbit", 24, 32, 32, radius=3.0, degrees=360)
    c2w = traj.cameras.c2w.double()
    centre = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    to_centre = centre - c2w[:, :3, 3]
    assert torch.allclose(to_centre.norm(dim=-1), torch.full((24,), 3.0, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(c2w[:, :3, 2], to_centre / 3.0, atol=1e-5)          # +z points at the centre
    assert torch.allclose(c2w[:, 1, 3], torch.zeros(24, dtype=torch.float64), atol=1e-6)   # stays level
    assert c2w[6, 0, 3] > 2.9                                                 # quarter turn: moved right
    assert turn_angles_deg(c2w).sum() == pytest.approx(360 * 23 / 24, rel=1e-4)  # loop: end != start


def test_rotate360_turns_right_in_place():
    c2w = make_trajectory("rotate360", 8, 32, 32).cameras.c2w.double()
    assert torch.allclose(c2w[:, :3, 3], torch.zeros(8, 3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(c2w[2, :3, 2], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(c2w[:, :3, 1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(8, 3), atol=1e-6)


def test_forward_moves_along_the_view_direction_and_lookdown_looks_down():
    fwd = make_trajectory("forward", 5, 32, 32, distance=2.0).cameras.c2w.double()
    assert torch.allclose(fwd[:, :3, 3], torch.stack([torch.zeros(5), torch.zeros(5), torch.linspace(0, 2, 5)], -1).double(), atol=1e-6)
    down = make_trajectory("lookdown", 5, 32, 32, pitch_deg=40.0).cameras.c2w.double()
    assert float(down[-1, 1, 2]) == pytest.approx(math.sin(math.radians(40)), abs=1e-6)   # +y is down
    up = make_trajectory("lookaround", 9, 32, 32, yaw_deg=30.0, pitch_deg=10.0).cameras.c2w.double()
    assert float(up[4, 1, 2]) < 0                                              # halfway: looking up
    bf = make_trajectory("back_and_forth", 9, 32, 32, distance=1.0).cameras.c2w.double()
    assert float(bf[:, 2, 3].max()) == pytest.approx(1.0, abs=0.05) and float(bf[-1, 2, 3]) < 0.2


def test_spiral_keeps_looking_at_the_focus_point():
    c2w = make_trajectory("spiral", 30, 32, 32, radius=0.4, focus_distance=3.0).cameras.c2w.double()
    focus = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    d = focus - c2w[:, :3, 3]
    assert torch.allclose(c2w[:, :3, 2], d / d.norm(dim=-1, keepdim=True), atol=1e-5)


def test_interpolation_hits_keyframes_and_is_smooth():
    keys = look_at(torch.tensor([[0.0, 0, 0], [1, 0, 0.5], [1.5, -0.3, 2], [0, 0, 3]], dtype=torch.float64),
                   torch.tensor([[0.0, 0, 5], [2, 0, 4], [0, 0, 6], [-3, 0, 3]], dtype=torch.float64))
    path = interpolate_poses(keys, 31)                                        # keys at frames 0, 10, 20, 30
    assert torch.allclose(path[::10], keys, atol=1e-9)
    assert float(rotation_error(path[:, :3, :3]).max()) < 1e-9
    steps = (path[1:, :3, 3] - path[:-1, :3, 3]).norm(dim=-1)
    assert steps.max() < 3 * steps.mean()
    assert turn_angles_deg(path).max() < 10.0
    assert torch.equal(interpolate_poses(keys[:1], 4), keys[:1].expand(4, 4, 4))


def test_interpolation_takes_the_short_way_round():
    keys = look_at(torch.zeros(2, 3, dtype=torch.float64),
                   torch.tensor([[math.sin(math.radians(a)), 0, math.cos(math.radians(a))] for a in (170, -170)],
                                dtype=torch.float64))
    path = interpolate_poses(keys, 11)
    assert turn_angles_deg(path).sum() == pytest.approx(20.0, abs=1e-6)       # not 340 degrees


def test_per_segment_prompts():
    assert segment_prompts(["a", "b", "c"], 7) == ["a", "a", "a", "b", "b", "c", "c"]
    assert segment_prompts(None, 3) == [None, None, None]
    traj = make_trajectory("forward", 6, 32, 32, prompts=["hall", None])
    assert traj.prompts == ["hall"] * 3 + [None] * 3
    keyed = keyframe_trajectory(torch.eye(4, dtype=torch.float64).expand(3, 4, 4).clone(), 9, 32, 32,
                                key_prompts=["a", "b", "c"])
    assert keyed.prompts == ["a"] * 4 + ["b"] * 4 + ["c"]


@pytest.mark.parametrize("preset,params,needle", [
    ("nope", {}, "unknown trajectory preset 'nope'"),
    ("orbit", {"radius": 0}, "radius: must be > 0"),
    ("orbit", {"radius": float("nan")}, "radius: must be finite"),
    ("orbit", {"radius": "far"}, "radius: expected a number"),
    ("orbit", {"elevation_deg": 90}, "elevation_deg: must be <= 89"),
    ("rotate360", {"radius": 1.0}, "radius: unknown option"),
    ("lookaround", {"cycles": -1}, "cycles: must be > 0"),
])
def test_bad_preset_parameters_raise_user_input_error(preset, params, needle):
    with pytest.raises(UserInputError, match=needle):
        make_trajectory(preset, 10, 32, 32, **params)


@pytest.mark.parametrize("frames,width,fov", [(0, 32, 60.0), (10, 0, 60.0), (10, 32, 180.0), (10, 32, 0.0)])
def test_bad_sizes_raise_user_input_error(frames, width, fov):
    with pytest.raises(UserInputError):
        make_trajectory("forward", frames, width, 32, fov_deg=fov)


def test_interpolated_cameras_hit_every_key_and_keep_first_intrinsics():
    """The one owner of the interpolated path: keys are hit where (frames-1) is a multiple of (N-1)."""
    from scenedreamer.geometry.trajectory import interpolated_cameras, make_trajectory, path_frame_count

    cams = make_trajectory("lookaround", 4, 32, 24, 60.0).cameras
    n = path_frame_count(len(cams), 3)
    assert n == 10 and path_frame_count(1, 3) == 2
    dense = interpolated_cameras(cams, n)
    assert len(dense) == n and (dense.width, dense.height) == (32, 24)
    torch.testing.assert_close(dense.c2w[::3], cams.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense.K, cams.K[:1].expand(n, 3, 3))


def test_cameras_between_leaves_out_the_keys():
    from scenedreamer.geometry.trajectory import cameras_between, interpolate_poses, make_trajectory

    cams = make_trajectory("orbit", 5, 32, 32, 60.0).cameras
    mid = cameras_between(cams, 1)
    torch.testing.assert_close(mid.c2w, interpolate_poses(cams.c2w, 9)[1::2])
    assert len(cameras_between(cams, 3)) == 12
    assert len(cameras_between(cams[:1], 2)) == 0 and len(cameras_between(cams, 0)) == 0
