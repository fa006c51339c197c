"""Ray casting of a procedural scene: nearest hit of primitives, water, ground and terrain.

All functions work on flattened rays (n, 3) or per-camera images (H, W, ...) on any device.
``t`` is the ray parameter; with ``camera_rays`` directions (camera-frame z = 1) it is z-depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import ProceduralWorldConfig
from .noise import sample_plane
from .primitives import INF, intersect_primitive
from .scene import Material, Scene, Terrain


@dataclass(frozen=True)
class Hits:
    """Nearest surface per pixel of one camera.

    t: (H, W) ray parameter (z-depth), +inf where nothing was hit.
    normal: (H, W, 3) unit normal facing the camera; material: (H, W) int64 Material ids;
    color: (H, W, 3) base albedo of primitives (terrain, water and street colour is shaded later).
    """

    t: Tensor
    normal: Tensor
    material: Tensor
    color: Tensor


def _safe(v: Tensor) -> Tensor:
    return torch.where(v.abs() < 1e-12, torch.full_like(v, 1e-12), v)


class _RaySet:
    """Rays in the units the heightmap lookup wants: x / half_extent and z / half_extent for
    grid_sample (each contiguous (m, 1): broadcasting over an inner axis of size 2 is slow), and y."""

    def __init__(self, terrain: Terrain, o: Tensor, d: Tensor) -> None:
        E = terrain.half_extent
        self.terrain = terrain
        self.cols = [o[:, 0:1] / E, d[:, 0:1] / E, o[:, 2:3] / E, d[:, 2:3] / E, o[:, 1:2].clone(), d[:, 1:2].clone()]

    def subset(self, keep: Tensor) -> "_RaySet":
        out = object.__new__(_RaySet)
        out.terrain = self.terrain
        out.cols = [c[keep] for c in self.cols]
        return out

    def inside(self, ts: Tensor) -> Tensor:
        """ts (m, c) -> (m, c) bool: the ray point at t lies below the terrain surface."""
        gox, gdx, goz, gdz, oy, dy = self.cols
        grid = torch.empty(*ts.shape, 2, device=ts.device, dtype=ts.dtype)           # (m, c, 2)
        torch.addcmul(gox, ts, gdx, out=grid[..., 0])
        torch.addcmul(goz, ts, gdz, out=grid[..., 1])
        elev = F.grid_sample(self.terrain.elevation[None], grid[None], mode="bilinear",
                             padding_mode="border", align_corners=True)[0, 0]          # (m, c)
        depth_below_plane = torch.addcmul(oy, ts, dy).sub_(self.terrain.ground_height)  # y - g
        return elev + depth_below_plane > 0                                           # y > g - elev


def march_terrain(terrain: Terrain, o: Tensor, d: Tensor, t_max: Tensor,
                  cfg: ProceduralWorldConfig) -> Tensor:
    """First crossing of rays with the terrain heightfield, or +inf.

    o, d: (n, 3) rays; t_max: (n,) search limit (a nearer hit or the far limit).
    The ray is clipped to the slab between the lowest and highest terrain point and to the
    Lipschitz bound (a point h above the surface is at least h / sqrt(1 + max_slope^2) from
    it), sampled at ``march_steps`` log-spaced t (a constant fraction of the distance apart),
    and the first sample below the surface is refined by bisection to the crossing.
    Returns t (n,).
    """
    t_hit = torch.full_like(t_max, INF)
    y_top = terrain.ground_height - terrain.max_elevation - 1e-3
    y_bottom = terrain.ground_height - terrain.min_elevation + 1e-3
    dy = _safe(d[:, 1])
    ta, tb = (y_top - o[:, 1]) / dy, (y_bottom - o[:, 1]) / dy
    clearance = (terrain.surface_y(o[:, 0], o[:, 2]) - o[:, 1]).clamp_min(0)     # height above ground
    t_safe = clearance / (math.sqrt(1.0 + terrain.max_slope ** 2) * d.norm(dim=-1))
    t_lo = torch.maximum(torch.minimum(ta, tb), t_safe).clamp_min(cfg.near)
    t_hi = torch.minimum(torch.maximum(ta, tb), t_max)
    idx = torch.nonzero(t_lo < t_hi).squeeze(1)
    if idx.numel() == 0:
        return t_hit
    rays = _RaySet(terrain, o[idx], d[idx])
    t0, log_ratio = t_lo[idx], torch.log(t_hi[idx] / t_lo[idx])
    steps = cfg.march_steps
    bracket_lo, bracket_hi, bracket_idx = [], [], []
    prev_t = t0.clone()
    for start in range(0, steps + 1, cfg.march_chunk):
        if idx.numel() == 0:
            break
        ks = torch.arange(start, min(start + cfg.march_chunk, steps + 1), device=o.device, dtype=o.dtype)
        ts = t0[:, None] * torch.exp(log_ratio[:, None] * (ks / steps)[None])        # (m, c)
        inside = rays.inside(ts)                                                     # (m, c)
        hit = inside.any(dim=1)
        if bool(hit.any()):
            first = inside.to(torch.uint8).argmax(dim=1)[hit]
            ts_hit = ts[hit]
            hi = ts_hit.gather(1, first[:, None])[:, 0]
            before = ts_hit.gather(1, (first - 1).clamp_min(0)[:, None])[:, 0]
            bracket_lo.append(torch.where(first > 0, before, prev_t[hit]))
            bracket_hi.append(hi)
            bracket_idx.append(idx[hit])
            keep = torch.nonzero(~hit).squeeze(1)
            idx, t0, log_ratio, ts = idx[keep], t0[keep], log_ratio[keep], ts[keep]
            rays = rays.subset(keep)
        prev_t = ts[:, -1]
    if not bracket_idx:
        return t_hit
    lo, hi, which = torch.cat(bracket_lo), torch.cat(bracket_hi), torch.cat(bracket_idx)
    rays = _RaySet(terrain, o[which], d[which])
    for _ in range(cfg.bisection_steps):
        mid = 0.5 * (lo + hi)
        inside = rays.inside(mid[:, None])[:, 0]
        hi = torch.where(inside, mid, hi)
        lo = torch.where(inside, lo, mid)
    t_hit[which] = 0.5 * (lo + hi)
    return t_hit


def trace(scene: Scene, terrain: Terrain | None, o: Tensor, d: Tensor,
          rects: list, cfg: ProceduralWorldConfig) -> Hits:
    """Nearest hit for one camera's rays o, d (H, W, 3); ``rects`` from ``screen_rects``."""
    H, W = o.shape[:2]
    dev, dt = o.device, o.dtype
    t = torch.full((H, W), INF, device=dev, dtype=dt)
    normal = torch.zeros(H, W, 3, device=dev, dtype=dt)
    material = torch.full((H, W), int(Material.SKY), device=dev, dtype=torch.long)
    color = torch.zeros(H, W, 3, device=dev, dtype=dt)

    def update(region: tuple[slice, slice], t_new: Tensor, n_new: Tensor, mat: int,
               col: Tensor | None) -> None:
        tv = t[region]
        closer = t_new < tv
        if not bool(closer.any()):
            return
        tv[closer] = t_new[closer]
        normal[region][closer] = n_new[closer]
        material[region][closer] = mat
        if col is not None:
            color[region][closer] = col

    for prim, rect in zip(scene.primitives, rects):
        if rect is None:
            continue
        i0, i1, j0, j1 = rect
        region = (slice(i0, i1), slice(j0, j1))
        oo, dd = o[region].reshape(-1, 3), d[region].reshape(-1, 3)
        tp, np_ = intersect_primitive(prim, oo, dd)
        update(region, tp.view(i1 - i0, j1 - j0), np_.view(i1 - i0, j1 - j0, 3), int(prim.material),
               torch.tensor(prim.color, device=dev, dtype=dt))

    everywhere = (slice(None), slice(None))
    up = torch.tensor([0.0, -1.0, 0.0], device=dev, dtype=dt).expand(H, W, 3)
    for plane_y, mat in ((scene.water_y, Material.WATER), (scene.ground_plane_y, Material.STREET)):
        if plane_y is None:
            continue
        tw = (plane_y - o[..., 1]) / _safe(d[..., 1])
        tw = torch.where(tw > cfg.near, tw, torch.full_like(tw, INF))
        # only the upper side is a visible surface (cameras live above water and streets)
        tw = torch.where(o[..., 1] < plane_y, tw, torch.full_like(tw, INF))
        update(everywhere, tw, up, int(mat), None)

    if terrain is not None:
        t_max = torch.clamp(t, max=cfg.sky_depth).reshape(-1)
        tt = march_terrain(terrain, o.reshape(-1, 3), d.reshape(-1, 3), t_max, cfg).view(H, W)
        if bool(torch.isfinite(tt).any()):
            p = (o + tt.clamp(max=1e30)[..., None] * d).reshape(-1, 3)
            n_t = sample_plane(terrain.normals, p[:, 0], p[:, 2], terrain.half_extent).view(H, W, 3)
            update(everywhere, tt, n_t, int(Material.TERRAIN), None)
    return Hits(t, normal, material, color)
