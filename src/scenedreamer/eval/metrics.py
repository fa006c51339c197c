"""Metrics of visual quality and 3D consistency (docs/method.md, "Evaluation in the paper").

All images (H, W, 3) float in [0, 1]; depths (H, W) z-depth; masks bool (H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry.cameras import Cameras
from ..geometry.projection import project_points, unproject_depth


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB over (masked) pixels of images in [0, 1]."""
    err = (pred.float() - target.float()) ** 2
    if mask is not None:
        err = err[mask]
    mse = float(err.mean())
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def median_relative_depth_error(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """median(|pred - target| / target) over (masked) pixels with target > 0."""
    keep = target > 0
    if mask is not None:
        keep = keep & mask
    if not bool(keep.any()):
        return float("nan")
    return float(((pred[keep] - target[keep]).abs() / target[keep]).median())


def depth_reprojection_error(depth_a: Tensor, camera_a: Cameras, depth_b: Tensor, camera_b: Cameras,
                             min_depth: float = 1e-6) -> float:
    """3D consistency of two rendered frames: median relative disagreement of depths.

    Pixels of frame A are lifted with depth_a, projected into camera B, and their z-depth
    compared with depth_b sampled (nearest) at the landing pixel. Only pixels that land inside B
    with depth on both sides count. Returns nan when none does.
    """
    points = unproject_depth(depth_a[None], camera_a)[0].reshape(-1, 3)
    keep_a = (depth_a > min_depth).reshape(-1)
    uv, z = project_points(points[None], camera_b)
    uv, z = uv[0], z[0]
    col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    inside = keep_a & (z > min_depth) & (col >= 0) & (col < camera_b.width) & (row >= 0) & (row < camera_b.height)
    idx = inside.nonzero(as_tuple=True)[0]
    if idx.numel() == 0:
        return float("nan")
    sampled = depth_b[row[idx], col[idx]]
    ok = sampled > min_depth
    if not bool(ok.any()):
        return float("nan")
    rel = (z[idx][ok] - sampled[ok]).abs() / sampled[ok]
    return float(rel.median())


def flow_warping_error(frame_a: Tensor, frame_b: Tensor) -> float:
    """Temporal consistency of two consecutive frames: mean absolute error after warping B onto A
    with OpenCV DIS optical flow (an offline stand-in for learned flow). Lower is better."""
    import cv2
    import numpy as np

    to_gray = lambda im: cv2.cvtColor((im.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    ga, gb = to_gray(frame_a), to_gray(frame_b)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(ga, gb, None)   # A -> B, pixels
    H, W = ga.shape
    xs, ys = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    grid = torch.from_numpy(np.stack([(xs + flow[..., 0] + 0.5) / W * 2 - 1,
                                      (ys + flow[..., 1] + 0.5) / H * 2 - 1], -1))[None]
    warped = F.grid_sample(frame_b.permute(2, 0, 1)[None].float().cpu(), grid, align_corners=False,
                           padding_mode="border")[0].permute(1, 2, 0)
    inside = ((grid.abs() <= 1).all(-1))[0]
    return float((warped - frame_a.float().cpu()).abs()[inside].mean())


def flip_error(pred: Tensor, target: Tensor) -> float:
    """Mean LDR FLIP error (Andersson et al., HPG 2020; NVIDIA's ``flip-evaluator`` package, its
    default 67 pixels per degree) of images (H, W, 3) in [0, 1] (sRGB). 0 = identical, lower
    is better, at most 1."""
    import numpy as np
    from flip_evaluator import evaluate

    ref = np.ascontiguousarray(target.float().clamp(0, 1).cpu().numpy(), dtype=np.float32)
    test = np.ascontiguousarray(pred.float().clamp(0, 1).cpu().numpy(), dtype=np.float32)
    _, mean, _ = evaluate(ref, test, "LDR", applyMagma=False)
    return float(mean)


def empty_fraction(opacity: Tensor, threshold: float) -> float:
    """Fraction of pixels of a rendered frame with accumulated opacity (H, W) below
    ``threshold``: where the scene has no content (what no camera saw)."""
    return float((opacity < threshold).float().mean())


def revisit_pairs(c2w: Tensor, max_rotation_deg: float, max_distance: float, min_gap: int) -> list[tuple[int, int]]:
    """Pairs (i, j), i <= j - min_gap, of path frames (c2w (N, 4, 4) OpenCV) whose poses are
    within ``max_rotation_deg`` (geodesic angle) and ``max_distance`` (scene units) of each
    other: the path left pose i and came back at j. For each j the closest earlier i (by
    distance, then angle) is kept."""
    pairs: list[tuple[int, int]] = []
    R, centre = c2w[:, :3, :3].double(), c2w[:, :3, 3].double()
    for j in range(len(c2w)):
        best = None
        for i in range(0, j - min_gap + 1):
            dist = float((centre[i] - centre[j]).norm())
            cos = float(((R[i].T @ R[j]).trace() - 1) / 2)
            angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
            if dist <= max_distance and angle <= max_rotation_deg and (best is None or (dist, angle) < best[0]):
                best = ((dist, angle), i)
        if best is not None:
            pairs.append((best[1], j))
    return pairs
