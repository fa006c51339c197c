"""The part of the world near the current cameras: a union of camera frusta, as planes.

A long world's fitting touches only Gaussians that the active cameras can see (issue 23 item 4;
pipeline/active_set.py chooses the cameras, representation/frozen_gaussians.py keeps the rest).
Each camera's frustum is six planes in the world frame: four sides (the image widened by a
margin on every side, because a Gaussian centred just outside the image still spreads into it),
a near plane and a far plane at the deepest content the camera's support view holds. A point is
inside a frustum when it is on the inner side of all six planes; inside the region when it is
inside any frustum. A point with a radius r (a Gaussian's 3-sigma extent) counts as inside
when its ball reaches into the frustum.

Planes are (P, 6, 4) tensors [n_x, n_y, n_z, d] with unit normals n pointing inward: the signed
distance of a world point p is n . p + d (>= 0 inside). Frames: OpenCV cameras (x right, y down,
z forward), c2w camera-to-world, world units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..geometry.cameras import Cameras

NEAR = 1e-3
"""The near plane (world units in front of the camera centre): Gaussians behind the camera are
never in its view."""

# rows tested at once: (rows x planes) distances stay a few tens of MB for any world size
_ROWS_PER_BATCH = 1 << 18


def frustum_planes(cameras: Cameras, far: Tensor, margin: float) -> Tensor:
    """(P, 6, 4) inward unit planes of P camera frusta in the world frame.

    cameras: P cameras (K (P, 3, 3) pixels, c2w (P, 4, 4) OpenCV); far: (P,) world units along
    each camera's z axis (> NEAR); margin: the image is widened by this fraction of its width
    and height on every side (>= 0).
    """
    K, c2w = cameras.K.double(), cameras.c2w.double()
    W, H = cameras.width, cameras.height
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    # the widened image's edges as slopes x/z and y/z in camera space
    left, right = (-margin * W - cx) / fx, ((1 + margin) * W - cx) / fx
    top, bottom = (-margin * H - cy) / fy, ((1 + margin) * H - cy) / fy
    zero, one = torch.zeros_like(left), torch.ones_like(left)
    # camera-space inward normals (unnormalised) and offsets: x - left z >= 0, right z - x >= 0, ...
    normals = torch.stack([torch.stack([one, zero, -left], -1), torch.stack([-one, zero, right], -1),
                           torch.stack([zero, one, -top], -1), torch.stack([zero, -one, bottom], -1),
                           torch.stack([zero, zero, one], -1), torch.stack([zero, zero, -one], -1)], 1)
    offsets = torch.stack([zero, zero, zero, zero, -NEAR * one, far.double().to(one)], 1)     # (P, 6)
    length = normals.norm(dim=-1)
    normals, offsets = normals / length.unsqueeze(-1), offsets / length
    # to the world: n_w = R n_c; n_c . (R^T (p - t)) + d = n_w . p + (d - n_w . t)
    R, t = c2w[:, :3, :3], c2w[:, :3, 3]
    world_normals = torch.einsum("pij,pkj->pki", R, normals)
    world_offsets = offsets - torch.einsum("pki,pi->pk", world_normals, t)
    return torch.cat([world_normals, world_offsets.unsqueeze(-1)], -1).float()


def points_in_region(planes: Tensor, points: Tensor, radius: Tensor | float = 0.0) -> Tensor:
    """(M,) bool: which points (M, 3) world (balls of ``radius``, (M,) or a scalar) reach into
    any of the frusta ``planes`` (P, 6, 4). No frusta: nothing is inside."""
    inside = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    if planes.shape[0] == 0 or points.shape[0] == 0:
        return inside
    planes = planes.to(points)
    radius = torch.as_tensor(radius, dtype=points.dtype, device=points.device).expand(points.shape[0])
    for start in range(0, points.shape[0], _ROWS_PER_BATCH):
        p, r = points[start:start + _ROWS_PER_BATCH], radius[start:start + _ROWS_PER_BATCH]
        distance = torch.einsum("mi,pki->mpk", p, planes[..., :3]) + planes[..., 3]        # (m, P, 6)
        inside[start:start + p.shape[0]] = (distance >= -r[:, None, None]).all(-1).any(-1)
    return inside


def box_in_region(planes: Tensor, low: Tensor, high: Tensor) -> bool:
    """Whether the axis-aligned box [low, high] (3,) world may reach into any frustum: False only
    when, for every frustum, the whole box is on the outer side of one of its planes (a box
    near a frustum's edge can be reported although it misses it: callers then test its points)."""
    if planes.shape[0] == 0:
        return False
    planes = planes.to(low)
    centre, half = (low + high) / 2, (high - low) / 2
    # the box's largest signed distance to each plane: centre's distance + |n| . half extents
    reach = planes[..., :3] @ centre + planes[..., 3] + planes[..., :3].abs() @ half               # (P, 6)
    return bool((reach >= 0).all(-1).any())
