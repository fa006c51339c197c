"""How well support views cover a camera: frustum overlap and pose distance.

Frustum overlap of a candidate view with a query camera: sample points of the QUERY frustum
(a coarse grid of its pixel centres, each at a few z-depths taken from the candidate's own valid
depth range) and count the fraction that project inside the candidate's image, in front of it.
It reads "how much of what the query camera looks at could this view supply" - what a warp of
the candidate into the query needs. Occlusion is ignored (no geometry of the query is known).

``frustum_overlap`` is the vectorised path; ``frustum_overlap_reference`` is its slow,
obviously-correct twin (a float64 per-point loop) that tests compare against.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..geometry.cameras import Cameras
from ..geometry.projection import project_points, unproject_depth


def frustum_overlap(query: Cameras, candidates: Cameras, sample_depths: Tensor, grid: int) -> Tensor:
    """Fraction of the query frustum's sample points that each candidate camera sees.

    query: a batch of 1 camera (any image size). candidates: V cameras (one image size).
    sample_depths: (V, D) z-depths (scene units, measured along the query's optical axis) at
        which the query's grid x grid pixel rays are sampled for candidate v.
    Returns (V,) float32 in [0, 1]: the fraction of the D * grid^2 points with z > 0 in the
    candidate's camera frame and pixel coordinates inside [0, width] x [0, height].
    """
    if len(query) != 1:
        raise ValueError(f"frustum_overlap: query must be one camera, got {len(query)}")
    V, D = sample_depths.shape
    if V != len(candidates):
        raise ValueError(f"frustum_overlap: {V} depth rows for {len(candidates)} candidates")
    # The grid x grid camera whose pixel centres are the coarse grid over the query image.
    coarse = query.scaled(grid, grid)
    at_unit_depth = unproject_depth(torch.ones(1, grid, grid, dtype=query.K.dtype), coarse)
    origin = coarse.centers[0]                                           # (3,)
    directions = (at_unit_depth.reshape(-1, 3) - origin)                  # (G*G, 3), z_query = 1
    depths = sample_depths.to(query.K.dtype)
    points = origin + depths[:, :, None, None] * directions              # (V, D, G*G, 3)
    uv, z = project_points(points.reshape(V, D * grid * grid, 3), candidates)
    inside = ((z > 0)
              & (uv[..., 0] >= 0) & (uv[..., 0] <= candidates.width)
              & (uv[..., 1] >= 0) & (uv[..., 1] <= candidates.height))  # (V, D*G*G)
    return inside.to(torch.float32).mean(dim=1)


def frustum_overlap_reference(query: Cameras, candidates: Cameras, sample_depths: Tensor,
                              grid: int) -> Tensor:
    """Slow twin of frustum_overlap: the same definition, one point at a time in float64."""
    Kq = query.K[0].double().numpy()
    c2w_q = query.c2w[0].double().numpy()
    out = []
    for v in range(len(candidates)):
        Kv = candidates.K[v].double().numpy()
        w2c_v = np.linalg.inv(candidates.c2w[v].double().numpy())
        seen = total = 0
        for depth in sample_depths[v].double().tolist():
            for i in range(grid):
                for j in range(grid):
                    # pixel centre of coarse cell (i, j) in full-resolution query pixels
                    u = (j + 0.5) * query.width / grid
                    w = (i + 0.5) * query.height / grid
                    ray = np.linalg.solve(Kq, np.array([u, w, 1.0]))      # z = 1 in the query frame
                    p_world = c2w_q @ np.append(depth * ray / ray[2], 1.0)
                    p_cam = w2c_v @ p_world
                    total += 1
                    if p_cam[2] <= 0:
                        continue
                    pix = Kv @ p_cam[:3]
                    pu, pv = pix[0] / pix[2], pix[1] / pix[2]
                    if 0 <= pu <= candidates.width and 0 <= pv <= candidates.height:
                        seen += 1
        out.append(seen / total)
    return torch.tensor(out, dtype=torch.float32)


def pose_distances(query_c2w: Tensor, c2w: Tensor, rotation_weight: float) -> tuple[Tensor, Tensor]:
    """Distances from one pose to V poses.

    query_c2w: (4, 4); c2w: (V, 4, 4), camera-to-world, OpenCV axes.
    Returns (centre_distance, pose_distance), each (V,) float64: the camera-centre distance in
    scene units, and centre distance + rotation_weight * relative rotation angle (radians).
    """
    q = query_c2w.double()
    poses = c2w.double()
    centre = torch.linalg.vector_norm(poses[:, :3, 3] - q[:3, 3], dim=-1)
    relative = q[:3, :3].T @ poses[:, :3, :3]                              # (V, 3, 3)
    cos_angle = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return centre, centre + rotation_weight * torch.arccos(cos_angle)


def rank_neighbours(view_ids: list[int], overlap: Tensor, pose_distance: Tensor, keep: Tensor,
                    k: int) -> list[int]:
    """The k kept ids, best first: higher overlap, then smaller pose distance, then older id."""
    candidates = [i for i in range(len(view_ids)) if bool(keep[i])]
    candidates.sort(key=lambda i: (-float(overlap[i]), float(pose_distance[i]), view_ids[i]))
    return [view_ids[i] for i in candidates[:k]]

