"""Slow, obviously-correct twin of ``warp.forward_warp``: one Python loop iteration per pixel.

Only for tests on tiny images. It shares no code with the fast path except the config, and
spells every step out: lift the pixel centre with K_src^-1 and c2w_src, move it into the target
camera with w2c_dst and K_dst, keep the nearest point per target pixel, fill cracks, drop the
pixels whose line of sight the source camera did not see.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .cameras import Cameras
from .warp import ForwardWarpConfig, WarpResult


def forward_warp_reference(rgb: Tensor, depth: Tensor, src: Cameras, dst: Cameras,
                           valid: Tensor | None = None,
                           config: ForwardWarpConfig = ForwardWarpConfig()) -> WarpResult:
    """Per-pixel loop version of ``forward_warp`` (same inputs, same outputs, same rules)."""
    B, Hs, Ws, C = rgb.shape
    Ht, Wt = dst.height, dst.width
    rgb_np = rgb.detach().cpu().double().numpy()
    depth_np = depth.detach().cpu().double().numpy()
    valid_np = np.ones((B, Hs, Ws), bool) if valid is None else valid.cpu().numpy()
    out_rgb = np.zeros((B, Ht, Wt, C))
    out_depth = np.zeros((B, Ht, Wt))
    out_valid = np.zeros((B, Ht, Wt), bool)
    out_source = np.zeros((B, Ht, Wt, 2), int)
    for b in range(B):
        K_src_inv = np.linalg.inv(src.K[b].double().cpu().numpy())
        c2w_src = src.c2w[b].double().cpu().numpy()
        K_dst = dst.K[b].double().cpu().numpy()
        w2c_dst = np.linalg.inv(dst.c2w[b].double().cpu().numpy())
        best: dict[tuple[int, int], tuple[float, int, float]] = {}   # target -> (z32, src index, z)
        for i in range(Hs):
            for j in range(Ws):
                if not valid_np[b, i, j]:
                    continue
                if config.drop_depth_edges and _is_far_side_of_edge(depth_np[b], i, j, config.edge_depth_rel_tol):
                    continue
                d = depth_np[b, i, j]
                p_cam = d * (K_src_inv @ np.array([j + 0.5, i + 0.5, 1.0]))
                p_world = c2w_src @ np.append(p_cam, 1.0)
                p_dst = (w2c_dst @ p_world)[:3]
                z = p_dst[2]
                if not (z > config.near and math.isfinite(z)):
                    continue
                u, v = (K_dst @ p_dst)[:2] / z
                col, row = math.floor(u), math.floor(v)
                if not (0 <= col < Wt and 0 <= row < Ht):
                    continue
                candidate = (float(np.float32(z)), i * Ws + j, z)
                if (row, col) not in best or candidate[:2] < best[(row, col)][:2]:
                    best[(row, col)] = candidate
        for (row, col), (_, s, z) in best.items():
            out_rgb[b, row, col] = rgb_np[b, s // Ws, s % Ws]
            out_depth[b, row, col] = z
            out_valid[b, row, col] = True
            out_source[b, row, col] = (s // Ws, s % Ws)
    if config.fill_cracks:
        out_rgb, out_depth, out_valid = _fill_cracks_loop(out_rgb, out_depth, out_valid, out_source,
                                                          config.crack_depth_rel_tol)
    if config.sight_clearance is not None:
        for b in range(B):
            K_dst_inv = np.linalg.inv(dst.K[b].double().cpu().numpy())
            c2w_dst = dst.c2w[b].double().cpu().numpy()
            K_src = src.K[b].double().cpu().numpy()
            w2c_src = np.linalg.inv(src.c2w[b].double().cpu().numpy())
            for i in range(Ht):
                for j in range(Wt):
                    if not out_valid[b, i, j]:
                        continue
                    # the point on this pixel's ray at z-depth min(clearance, depth), seen by src?
                    z_probe = min(config.sight_clearance, out_depth[b, i, j])
                    p_world = c2w_dst @ np.append(z_probe * (K_dst_inv @ np.array([j + 0.5, i + 0.5, 1.0])), 1.0)
                    p_src = (w2c_src @ p_world)[:3]
                    seen = p_src[2] > config.near
                    if seen:
                        u, v = (K_src @ p_src)[:2] / p_src[2]
                        seen = 0 <= u < Ws and 0 <= v < Hs
                    if not seen:
                        out_rgb[b, i, j], out_depth[b, i, j], out_valid[b, i, j] = 0.0, 0.0, False
    return WarpResult(rgb=torch.from_numpy(out_rgb).to(rgb.dtype), depth=torch.from_numpy(out_depth).to(depth.dtype),
                      valid=torch.from_numpy(out_valid))


def _is_far_side_of_edge(depth: np.ndarray, i: int, j: int, rel_tol: float) -> bool:
    H, W = depth.shape
    d = depth[i, j]
    for di, dj in ((0, -1), (0, 1), (-1, 0), (1, 0)):
        ni, nj = min(max(i + di, 0), H - 1), min(max(j + dj, 0), W - 1)
        if d - depth[ni, nj] > rel_tol * d:
            return True
    return False


def _fill_cracks_loop(rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray, source: np.ndarray, rel_tol: float):
    B, H, W, _ = rgb.shape
    new_rgb, new_depth, new_valid = rgb.copy(), depth.copy(), valid.copy()
    for b in range(B):
        for i in range(H):
            for j in range(W):
                best = None
                for (ai, aj), (bi, bj) in (((i, j - 1), (i, j + 1)), ((i - 1, j), (i + 1, j)),
                                           ((i - 1, j - 1), (i + 1, j + 1)), ((i - 1, j + 1), (i + 1, j - 1))):
                    if not (0 <= ai < H and 0 <= aj < W and 0 <= bi < H and 0 <= bj < W):
                        continue
                    if not (valid[b, ai, aj] and valid[b, bi, bj]):
                        continue
                    if np.abs(source[b, ai, aj] - source[b, bi, bj]).max() > 1:
                        continue                     # not a crack: the sources are not neighbours
                    da, db = depth[b, ai, aj], depth[b, bi, bj]
                    if abs(da - db) > rel_tol * min(da, db):
                        continue
                    far = max(da, db)
                    if valid[b, i, j] and not depth[b, i, j] - far > rel_tol * far:
                        continue
                    mean = 0.5 * (da + db)
                    if best is None or mean < best[0]:
                        best = (mean, 0.5 * (rgb[b, ai, aj] + rgb[b, bi, bj]))
                if best is not None:
                    new_depth[b, i, j], new_rgb[b, i, j], new_valid[b, i, j] = best[0], best[1], True
    return new_rgb, new_depth, new_valid
