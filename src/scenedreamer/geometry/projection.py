"""Unprojection of depth maps to world points and projection of world points to pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from .cameras import Cameras, camera_rays


def unproject_depth(depth: Tensor, cameras: Cameras) -> Tensor:
    """World points of every pixel centre.

    depth: (B, H, W) z-depth in scene units (camera frame of each camera).
    Returns (B, H, W, 3) world coordinates.
    """
    if depth.shape != (len(cameras), cameras.height, cameras.width):
        raise ValueError(f"unproject_depth: depth {tuple(depth.shape)} does not match cameras "
                         f"({len(cameras)}, {cameras.height}, {cameras.width})")
    origins, dirs = camera_rays(cameras)                      # (B, H, W, 3) each, dirs have z_cam = 1
    return origins + depth.unsqueeze(-1) * dirs


def world_to_camera(points: Tensor, cameras: Cameras) -> Tensor:
    """points (B, N, 3) world -> (B, N, 3) in each camera's frame (OpenCV axes)."""
    w2c = cameras.w2c
    return torch.einsum("bij,bnj->bni", w2c[:, :3, :3], points) + w2c[:, None, :3, 3]


def project_points(points: Tensor, cameras: Cameras, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Project world points into each camera.

    points: (B, N, 3) world coordinates (or (N, 3), broadcast over the batch).
    Returns uv (B, N, 2) continuous pixel coordinates (pixel centres at j+0.5, i+0.5) and
    z (B, N) z-depth in the camera frame (<= 0 means behind the camera; uv is then meaningless).
    """
    if points.ndim == 2:
        points = points.unsqueeze(0).expand(len(cameras), -1, -1)
    p_cam = world_to_camera(points, cameras)                  # (B, N, 3)
    z = p_cam[..., 2]
    pix = torch.einsum("bij,bnj->bni", cameras.K, p_cam)      # (B, N, 3)
    uv = pix[..., :2] / z.unsqueeze(-1).clamp_min(eps)
    return uv, z
