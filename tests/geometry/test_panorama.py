"""Equirectangular panoramas from cube faces: face axes, the resampling, the wrap-around seam."""

from __future__ import annotations

import math

import torch

from scenedreamer.geometry.cameras import camera_rays
from scenedreamer.geometry.panorama import (FACE_NAMES, cube_cameras, equirect_directions, equirect_from_faces,
                                            face_rotations, face_size_for, ray_distance)


def _sky(d: torch.Tensor) -> torch.Tensor:
    """A smooth colour as a function of world direction (..., 3) -> (..., 3): a stand-in scene
    whose exact panorama is known."""
    d = d / d.norm(dim=-1, keepdim=True)
    return torch.stack([0.5 + 0.5 * d[..., 0], 0.5 - 0.5 * d[..., 1], 0.5 + 0.4 * torch.sin(3 * d[..., 2])], -1)


def _render_faces(cams):
    _, dirs = camera_rays(cams)                    # (6, S, S, 3) world directions of pixel centres
    return _sky(dirs)


def test_faces_are_proper_rotations_looking_along_the_six_axes():
    R = face_rotations(dtype=torch.float64)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(6, 3, 3))
    assert torch.allclose(torch.linalg.det(R), torch.ones(6, dtype=torch.float64))
    forward = {name: R[i, :, 2].tolist() for i, name in enumerate(FACE_NAMES)}
    assert forward["front"] == [0, 0, 1] and forward["up"] == [0, -1, 0] and forward["right"] == [1, 0, 0]


def test_equirect_layout_centre_is_forward_and_top_is_up():
    d = equirect_directions(64, 32, dtype=torch.float64)
    assert torch.allclose(d.norm(dim=-1), torch.ones(32, 64, dtype=torch.float64))
    centre = d[15:17, 31:33].mean((0, 1))
    assert torch.allclose(centre / centre.norm(), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-2)
    assert float(d[0, :, 1].max()) < -0.99          # the top row looks (nearly) straight up: -y
    assert float(d[16, 48, 0]) > 0.99                # a quarter turn right of forward is +x


def test_panorama_of_a_known_scene_matches_it_everywhere():
    """Resampling six faces must give the scene's own value in every panorama direction; the
    bound is bilinear interpolation of a smooth function on a 66-px face (max ~1e-3)."""
    W, H = 256, 128
    cams = cube_cameras(torch.zeros(3), face_size_for(W))
    pano = equirect_from_faces(_render_faces(cams), cams, W, H)
    exact = _sky(equirect_directions(W, H))
    assert pano.shape == (H, W, 3)
    assert float((pano - exact).abs().max()) < 5e-3


def test_wrap_around_column_is_seamless():
    W, H = 256, 128
    cams = cube_cameras(torch.tensor([0.3, -0.1, 0.2]), face_size_for(W))
    pano = equirect_from_faces(_render_faces(cams), cams, W, H)
    seam = (pano[:, 0] - pano[:, -1]).abs().mean()
    neighbours = (pano[:, 1:] - pano[:, :-1]).abs().mean(dim=(0, 2))
    # across the seam the panorama changes no more than between any two neighbouring columns
    assert float(seam) <= 1.05 * float(neighbours.max()) + 1e-6


def test_ray_distance_of_a_plane_at_unit_depth():
    cams = cube_cameras(torch.zeros(3), 18)
    depth = torch.ones(6, 18, 18)
    dist = ray_distance(depth, cams)
    _, dirs = camera_rays(cams)                    # z-component 1, so |dir| is the distance at z = 1
    assert torch.allclose(dist, dirs.norm(dim=-1), atol=1e-6)
    assert math.isclose(float(dist[0].max()), float(dirs[0].norm(dim=-1).max()), rel_tol=1e-6)
