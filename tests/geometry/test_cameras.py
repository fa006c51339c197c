"""Camera maths: round trips and properties (hypothesis), projection against OpenCV."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scenedreamer.geometry.cameras import (Cameras, c2w_to_w2c, fov_from_intrinsics, intrinsics_from_focal,
                                           intrinsics_from_fov, look_at, opencv_to_opengl_c2w,
                                           opengl_to_opencv_c2w, pixel_grid, rigid_inverse, rotation_error,
                                           w2c_to_c2w)
from scenedreamer.geometry.projection import project_points, unproject_depth
from scenedreamer.geometry.trajectory import matrix_to_quaternion, quaternion_to_matrix

FAST = settings(max_examples=40, deadline=None)

angles = st.floats(-math.pi, math.pi, allow_nan=False)
coords = st.floats(-10, 10, allow_nan=False)


def random_pose(a: float, b: float, c: float, t: tuple[float, float, float]) -> torch.Tensor:
    """A rigid c2w from three Euler angles (radians) and a translation, float64."""
    def rot(axis: int, ang: float) -> torch.Tensor:
        ca, sa = math.cos(ang), math.sin(ang)
        i, j = [k for k in range(3) if k != axis]
        R = torch.eye(3, dtype=torch.float64)
        R[i, i], R[i, j], R[j, i], R[j, j] = ca, -sa, sa, ca
        return R
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = rot(2, a) @ rot(1, b) @ rot(0, c)
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


@FAST
@given(angles, angles, angles, st.tuples(coords, coords, coords))
def test_rigid_inverse_round_trip(a, b, c, t):
    c2w = random_pose(a, b, c, t)
    w2c = c2w_to_w2c(c2w)
    assert torch.allclose(w2c @ c2w, torch.eye(4, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(w2c_to_c2w(w2c), c2w, atol=1e-9)
    assert torch.allclose(rigid_inverse(c2w), torch.linalg.inv(c2w), atol=1e-9)


@FAST
@given(angles, angles, angles, st.tuples(coords, coords, coords))
def test_opengl_opencv_conversion_is_an_involution_that_flips_y_and_z(a, b, c, t):
    c2w = random_pose(a, b, c, t)
    gl = opencv_to_opengl_c2w(c2w)
    assert torch.allclose(opengl_to_opencv_c2w(gl), c2w, atol=1e-12)
    assert torch.allclose(gl[:3, 0], c2w[:3, 0]) and torch.allclose(gl[:3, 3], c2w[:3, 3])
    assert torch.allclose(gl[:3, 1], -c2w[:3, 1]) and torch.allclose(gl[:3, 2], -c2w[:3, 2])
    assert float(rotation_error(gl[:3, :3])) < 1e-9          # still a proper rotation


@FAST
@given(st.tuples(coords, coords, coords), st.tuples(coords, coords, coords))
def test_look_at_points_z_at_target_and_keeps_horizon_level(eye, target):
    eye_t = torch.tensor(eye, dtype=torch.float64)
    target_t = torch.tensor(target, dtype=torch.float64)
    d = target_t - eye_t
    if d.norm() < 1e-3 or torch.linalg.cross(d / d.norm(), torch.tensor([0, -1.0, 0], dtype=torch.float64)).norm() < 1e-3:
        return                                                  # degenerate: no defined roll
    c2w = look_at(eye_t, target_t)
    assert float(rotation_error(c2w[:3, :3])) < 1e-9
    assert torch.allclose(c2w[:3, 3], eye_t)
    assert torch.allclose(c2w[:3, 2], d / d.norm(), atol=1e-9)
    assert abs(float(c2w[1, 0])) < 1e-9                         # camera x axis is horizontal (world y = 0)
    assert float(c2w[1, 1]) > 0                                 # camera down has a down (+y) component


def test_look_at_rejects_looking_straight_up():
    with pytest.raises(ValueError):
        look_at(torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]))


@FAST
@given(st.floats(5, 170), st.integers(4, 2000), st.integers(4, 2000))
def test_intrinsics_from_fov_round_trip(fov, w, h):
    K = intrinsics_from_fov(fov, w, h, dtype=torch.float64)
    fov_x, _ = fov_from_intrinsics(K, w, h)
    assert math.isclose(float(fov_x), fov, rel_tol=1e-9)
    assert float(K[0, 2]) == w / 2 and float(K[1, 2]) == h / 2
    K2 = intrinsics_from_focal(float(K[0, 0]), float(K[1, 1]), w / 2, h / 2, dtype=torch.float64)
    assert torch.equal(K, K2)


@FAST
@given(angles, angles, angles)
def test_quaternion_round_trip(a, b, c):
    R = random_pose(a, b, c, (0, 0, 0))[:3, :3]
    q = matrix_to_quaternion(R)
    assert abs(float(q.norm()) - 1) < 1e-12
    assert torch.allclose(quaternion_to_matrix(q), R, atol=1e-9)


def test_quaternion_of_half_turns_is_accurate():
    for axis in range(3):
        R = torch.diag(torch.tensor([-1.0, -1.0, -1.0], dtype=torch.float64))
        R[axis, axis] = 1.0                                    # 180 degrees about `axis`
        assert torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)


def _cameras(seed: int, B: int = 2, W: int = 13, H: int = 9) -> Cameras:
    g = torch.Generator().manual_seed(seed)
    c2w = torch.stack([random_pose(*(torch.rand(3, generator=g) * 6 - 3).tolist(),
                                   tuple((torch.rand(3, generator=g) - 0.5).tolist())) for _ in range(B)])
    K = torch.stack([intrinsics_from_focal(10 + 5 * float(torch.rand(1, generator=g)), 11.0, W / 2 + 0.3, H / 2 - 0.2,
                                           dtype=torch.float64) for _ in range(B)])
    return Cameras(K, c2w, W, H)


@pytest.mark.parametrize("seed", range(4))
def test_project_points_matches_cv2_project_points(seed):
    cams = _cameras(seed)
    g = torch.Generator().manual_seed(100 + seed)
    points = torch.randn(2, 50, 3, generator=g, dtype=torch.float64) * 3
    uv, z = project_points(points, cams)
    for b in range(2):
        w2c = cams.w2c[b].numpy()
        rvec, _ = cv2.Rodrigues(w2c[:3, :3])
        expected, _ = cv2.projectPoints(points[b].numpy(), rvec, w2c[:3, 3], cams.K[b].numpy(), np.zeros(5))
        front = z[b] > 0.1
        assert front.sum() > 5
        np.testing.assert_allclose(uv[b][front].numpy(), expected[:, 0][front.numpy()], rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(z[b].numpy(), (points[b].numpy() @ w2c[:3, :3].T + w2c[:3, 3])[:, 2], atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_project_of_unproject_is_the_pixel_grid_and_depth(seed):
    cams = _cameras(seed)
    depth = 0.5 + torch.rand(2, cams.height, cams.width, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64) * 4
    pts = unproject_depth(depth, cams)
    uv, z = project_points(pts.reshape(2, -1, 3), cams)
    grid = pixel_grid(cams.height, cams.width, dtype=torch.float64).reshape(1, -1, 2)
    assert torch.allclose(uv, grid.expand_as(uv), atol=1e-9)
    assert torch.allclose(z, depth.reshape(2, -1), atol=1e-9)
