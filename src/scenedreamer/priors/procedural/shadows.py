"""Cheap sun shadows of trees and rocks on the terrain, baked once into a ground texture.

Each foliage or rock primitive casts a soft capsule on the ground: from the point below its
lowest part to the point below its top, both pushed away from the sun by height / tan(sun
elevation). The result is a texture on the ground plane (x, z), so it is 3D-consistent like any
other texture; it ignores terrain relief and self-shadowing, which a second ray march per pixel
would add at twice the cost.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import ProceduralWorldConfig
from .noise import sample_plane
from .scene import Material, Scene
from .vocabulary import Lighting


def bake_shadow_map(scene: Scene, lighting: Lighting, cfg: ProceduralWorldConfig) -> tuple[Tensor, float] | None:
    """(1, N, N) shadow amount in [0, 1] over [-e, e]^2 in (x, z), and e; None without casters."""
    casters = [p for p in scene.primitives if p.material in (Material.FOLIAGE, Material.ROCK)]
    if scene.terrain is None or not casters or lighting.sun_elevation <= 0:
        return None
    extent = cfg.scatter_radius + 15.0
    res = cfg.shadow_map_resolution
    texel = 2 * extent / (res - 1)
    az, el = math.radians(lighting.sun_azimuth), math.radians(max(lighting.sun_elevation, 3.0))
    away = (-math.sin(az), -math.cos(az))                  # ground direction pointing away from the sun
    reach = 1.0 / math.tan(el)                             # shadow length per metre of height
    shadow = torch.zeros(res, res)
    xs = torch.tensor([0.5 * (p.lo[0] + p.hi[0]) for p in casters])
    zs = torch.tensor([0.5 * (p.lo[2] + p.hi[2]) for p in casters])
    ground_y = scene.terrain.ground_height - sample_plane(scene.terrain.elevation, xs, zs,
                                                          scene.terrain.half_extent)[:, 0]
    for p, x, z, gy in zip(casters, xs.tolist(), zs.tolist(), ground_y.tolist()):
        radius = 0.5 * max(p.hi[0] - p.lo[0], p.hi[2] - p.lo[2])
        h_low, h_top = max(gy - p.hi[1], 0.0), max(gy - p.lo[1], 0.0)     # heights above the ground
        ax, az_ = x + away[0] * reach * h_low, z + away[1] * reach * h_low
        bx, bz = x + away[0] * reach * h_top, z + away[1] * reach * h_top
        lo_x, hi_x = min(ax, bx) - radius, max(ax, bx) + radius
        lo_z, hi_z = min(az_, bz) - radius, max(az_, bz) + radius
        j0, j1 = max(0, int((lo_x + extent) / texel)), min(res, int((hi_x + extent) / texel) + 2)
        i0, i1 = max(0, int((lo_z + extent) / texel)), min(res, int((hi_z + extent) / texel) + 2)
        if j0 >= j1 or i0 >= i1:
            continue
        gx = -extent + torch.arange(j0, j1, dtype=torch.float32) * texel
        gz = -extent + torch.arange(i0, i1, dtype=torch.float32) * texel
        Z, X = torch.meshgrid(gz, gx, indexing="ij")
        # distance to the segment a-b (the capsule axis)
        abx, abz = bx - ax, bz - az_
        denom = max(abx * abx + abz * abz, 1e-9)
        s = (((X - ax) * abx + (Z - az_) * abz) / denom).clamp(0, 1)
        dist = torch.hypot(X - (ax + s * abx), Z - (az_ + s * abz))
        # the capsule narrows toward the crown's tip for cones (lo_y is the apex)
        r = radius * (1.0 - 0.6 * s) if p.kind == "cone" else torch.full_like(s, radius)
        amount = ((r - dist) / (0.35 * r + texel)).clamp(0, 1)
        shadow[i0:i1, j0:j1] = torch.maximum(shadow[i0:i1, j0:j1], amount)
    return shadow[None], extent
