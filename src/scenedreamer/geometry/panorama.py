"""Equirectangular 360-degree panoramas assembled from six pinhole cube faces.

A pinhole renderer (every representation here) cannot draw a 360-degree image in one pass, so a
panorama is rendered as the six faces of a cube around the position and resampled onto the
equirectangular grid. Frames (docs/conventions.md): the run's world, OpenCV axes, world up = -y.

Equirectangular layout (width = 2 x height): column j is longitude
``lon = 2 pi (j + 0.5) / W - pi`` (0 = +z, the first camera's forward; positive toward +x, the
right), row i is latitude ``lat = pi/2 - pi (i + 0.5) / H`` (+pi/2 = straight up). Columns 0 and
W-1 are neighbours across the wrap-around seam; both sample the same (back) face continuously,
so the panorama has no seam there.

Each face is rendered with a field of view slightly wider than 90 degrees (one extra pixel on every
side) so that bilinear sampling at a face's edge still has both neighbours inside the render.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import Cameras, pixel_grid, pose_from_rotation_translation

# Camera axes (columns: right, down, forward) of the six faces in the world frame (OpenCV, up = -y).
# Each is a proper rotation (right x down = forward).
_FACE_AXES = {
    "front": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "right": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "back": ((-1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "left": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
    "up": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    "down": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
}
FACE_NAMES = tuple(_FACE_AXES)


def face_rotations(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """(6, 3, 3) camera-to-world rotations of the cube faces, in ``FACE_NAMES`` order."""
    R = torch.tensor([list(zip(*axes)) for axes in _FACE_AXES.values()], dtype=dtype, device=device)
    return R


def face_size_for(width: int) -> int:
    """Cube face side in pixels for a panorama ``width`` px wide: a quarter of it (one face spans
    90 degrees of longitude), plus the 2-pixel margin."""
    return max(8, math.ceil(width / 4)) + 2


def cube_cameras(position: Tensor, face_size: int) -> Cameras:
    """Six pinhole cameras at ``position`` (3,) world, one per cube face, ``face_size`` px square.

    The field of view is 90 degrees widened by one pixel on each side: tan(half-fov) =
    face_size / (face_size - 2).
    """
    position = torch.as_tensor(position, dtype=torch.float32)
    R = face_rotations(dtype=position.dtype, device=position.device)
    c2w = pose_from_rotation_translation(R, position.expand(6, 3))
    inner = face_size - 2                                   # pixels spanning exactly 90 degrees
    focal = inner / 2.0                                     # tan(45 deg) = 1 over inner/2 pixels
    K = torch.tensor([[focal, 0.0, face_size / 2.0], [0.0, focal, face_size / 2.0], [0.0, 0.0, 1.0]],
                     dtype=position.dtype, device=position.device)
    return Cameras(K.expand(6, 3, 3).contiguous(), c2w, face_size, face_size)


def equirect_directions(width: int, height: int, dtype: torch.dtype = torch.float32,
                        device: torch.device | str | None = None) -> Tensor:
    """(H, W, 3) unit world directions of the equirectangular pixel centres (layout above)."""
    j = torch.arange(width, dtype=dtype, device=device) + 0.5
    i = torch.arange(height, dtype=dtype, device=device) + 0.5
    lon = 2.0 * math.pi * j / width - math.pi
    lat = math.pi / 2.0 - math.pi * i / height
    lat, lon = torch.meshgrid(lat, lon, indexing="ij")
    return torch.stack([torch.cos(lat) * torch.sin(lon), -torch.sin(lat), torch.cos(lat) * torch.cos(lon)], -1)


def equirect_from_faces(faces: Tensor, cameras: Cameras, width: int, height: int) -> Tensor:
    """Resample six rendered faces onto the equirectangular grid.

    faces: (6, S, S, C) renders of ``cameras`` (from ``cube_cameras``), any channels (colour,
    depth, ...). Returns (height, width, C). Each panorama pixel samples (bilinear) the face
    whose forward axis is closest to its direction.
    Depth renders are z-depth along each face's own axis; convert them with ``ray_distance``
    first if the panorama should hold distances.
    """
    if faces.shape[0] != 6 or faces.shape[1] != cameras.height or faces.shape[2] != cameras.width:
        raise ValueError(f"equirect_from_faces: faces must be (6, {cameras.height}, {cameras.width}, C), "
                         f"got {tuple(faces.shape)}")
    dirs = equirect_directions(width, height, dtype=faces.dtype, device=faces.device)       # (H, W, 3)
    R = cameras.c2w[:, :3, :3].to(faces)                                                      # (6, 3, 3)
    local = torch.einsum("fji,hwj->fhwi", R, dirs)              # world -> camera: R^T d   (6, H, W, 3)
    face = local[..., 2].argmax(dim=0)                          # (H, W): largest forward component
    out = torch.empty(height, width, faces.shape[3], dtype=faces.dtype, device=faces.device)
    S = cameras.width
    for f in range(6):
        mask = face == f
        if not bool(mask.any()):
            continue
        d = local[f][mask]                                      # (N, 3), z > 0
        K = cameras.K[f].to(faces)
        u = K[0, 0] * d[:, 0] / d[:, 2] + K[0, 2]               # pixel coords, pixel centres at +0.5
        v = K[1, 1] * d[:, 1] / d[:, 2] + K[1, 2]
        grid = torch.stack([2.0 * u / S - 1.0, 2.0 * v / S - 1.0], -1).view(1, 1, -1, 2)
        img = faces[f].permute(2, 0, 1).unsqueeze(0)            # (1, C, S, S)
        sampled = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[mask] = sampled[0, :, 0].T
    return out


def ray_distance(depth: Tensor, cameras: Cameras) -> Tensor:
    """z-depth renders (B, H, W) of ``cameras`` -> distance along each pixel's ray (B, H, W)."""
    uv = pixel_grid(cameras.height, cameras.width, device=depth.device, dtype=depth.dtype)     # (H, W, 2)
    K = cameras.K.to(depth)
    x = (uv[None, ..., 0] - K[:, None, None, 0, 2]) / K[:, None, None, 0, 0]
    y = (uv[None, ..., 1] - K[:, None, None, 1, 2]) / K[:, None, None, 1, 1]
    return depth * torch.sqrt(1.0 + x * x + y * y)
