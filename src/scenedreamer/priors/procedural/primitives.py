"""Analytic ray-primitive intersections (vectorised over rays) and screen-space culling.

Every intersector takes ray origins ``o`` (n, 3) and directions ``d`` (n, 3) in world
coordinates and returns ``t`` (n,) - the ray parameter of the first crossing with t > eps, +inf on
a miss - and ``normal`` (n, 3), the unit surface normal turned toward the incoming ray. With the
directions of ``camera_rays`` (camera-frame z = 1) ``t`` is the z-depth.

World frame: OpenCV-like, "up" is -y. Trees and trunks are vertical (axis along y).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...geometry.cameras import Cameras

# Rays must leave a surface by this much before they may hit it again (self-intersection guard).
RAY_EPS = 1e-4
INF = float("inf")


@dataclass(frozen=True)
class Primitive:
    """One analytic shape with a material.

    kind: "box" (axis-aligned box lo..hi), "ellipsoid" (centre, radii), "cylinder" (vertical:
    centre x/z, radius, y range), "cone" (vertical, apex on top: apex, height, base radius).
    params: the floats of that kind (see ``intersect_primitive``).
    material: material id (see world.Material); color: base albedo (3,) in [0, 1].
    lo, hi: world bounding box (for culling).
    """

    kind: str
    params: tuple[float, ...]
    material: int
    color: tuple[float, float, float]
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


def box(lo, hi, material: int, color) -> Primitive:
    """Axis-aligned box from corner lo (3,) to corner hi (3,)."""
    return Primitive("box", (*lo, *hi), material, tuple(color), tuple(lo), tuple(hi))


def ellipsoid(center, radii, material: int, color) -> Primitive:
    """Axis-aligned ellipsoid (a sphere when the radii are equal)."""
    lo = tuple(c - r for c, r in zip(center, radii))
    hi = tuple(c + r for c, r in zip(center, radii))
    return Primitive("ellipsoid", (*center, *radii), material, tuple(color), lo, hi)


def cylinder(cx: float, cz: float, radius: float, y_top: float, y_bottom: float, material: int,
             color) -> Primitive:
    """Vertical capped cylinder around (cx, cz) between y_top < y_bottom (up is -y)."""
    return Primitive("cylinder", (cx, cz, radius, y_top, y_bottom), material, tuple(color),
                     (cx - radius, y_top, cz - radius), (cx + radius, y_bottom, cz + radius))


def cone(apex, height: float, radius: float, material: int, color) -> Primitive:
    """Vertical capped cone: apex on top (smallest y), base disk of ``radius`` at y = apex_y + height."""
    ax, ay, az = apex
    return Primitive("cone", (ax, ay, az, height, radius), material, tuple(color),
                     (ax - radius, ay, az - radius), (ax + radius, ay + height, az + radius))


def _nearest(cands: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """Smallest valid t among candidates [(t (n,), valid (n,) bool)] -> (t, index of candidate)."""
    ts = torch.stack([torch.where(valid & (t > RAY_EPS), t, torch.full_like(t, INF)) for t, valid in cands])
    t_min, which = ts.min(dim=0)
    return t_min, which


def _facing(normal: Tensor, d: Tensor) -> Tensor:
    """Normalise and flip normals so they face the ray (n . d <= 0)."""
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    flip = (normal * d).sum(-1, keepdim=True) > 0
    return torch.where(flip, -normal, normal)


def _safe(v: Tensor) -> Tensor:
    """Avoid exact zeros in divisors (axis-parallel rays) while keeping the sign."""
    return torch.where(v.abs() < 1e-12, torch.full_like(v, 1e-12), v)


def intersect_box(o: Tensor, d: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Slab method. Rays starting inside the box hit its far side (rooms are boxes seen from inside)."""
    inv = 1.0 / _safe(d)
    t1 = (lo - o) * inv
    t2 = (hi - o) * inv
    t_near, axis_near = torch.minimum(t1, t2).max(dim=-1)
    t_far, axis_far = torch.maximum(t1, t2).min(dim=-1)
    hit = t_far >= torch.clamp(t_near, min=RAY_EPS)
    from_outside = t_near > RAY_EPS
    t = torch.where(from_outside, t_near, t_far)
    t = torch.where(hit, t, torch.full_like(t, INF))
    axis = torch.where(from_outside, axis_near, axis_far)
    normal = torch.zeros_like(o)
    normal.scatter_(1, axis[:, None], 1.0)
    return t, _facing(normal, d)


def intersect_ellipsoid(o: Tensor, d: Tensor, center: Tensor, radii: Tensor) -> tuple[Tensor, Tensor]:
    """Axis-aligned ellipsoid: scale space so it becomes the unit sphere (t is unchanged)."""
    os_ = (o - center) / radii
    ds = d / radii
    a = (ds * ds).sum(-1)
    b = (os_ * ds).sum(-1)
    c = (os_ * os_).sum(-1) - 1.0
    disc = b * b - a * c
    ok = disc >= 0
    sq = torch.sqrt(disc.clamp_min(0))
    t, which = _nearest([((-b - sq) / a, ok), ((-b + sq) / a, ok)])
    p = o + t.clamp(max=1e30)[:, None] * d
    normal = (p - center) / (radii * radii)
    return t, _facing(normal, d)


def intersect_cylinder(o: Tensor, d: Tensor, cx: float, cz: float, radius: float, y_top: float,
                       y_bottom: float) -> tuple[Tensor, Tensor]:
    """Vertical capped cylinder."""
    ox, oz = o[:, 0] - cx, o[:, 2] - cz
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = _safe(dx * dx + dz * dz)
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - radius * radius
    disc = b * b - a * c
    sq = torch.sqrt(disc.clamp_min(0))
    cands = []
    for t_side in ((-b - sq) / a, (-b + sq) / a):
        y = o[:, 1] + t_side * dy
        cands.append((t_side, (disc >= 0) & (y >= y_top) & (y <= y_bottom)))
    for y_cap in (y_top, y_bottom):
        t_cap = (y_cap - o[:, 1]) / _safe(dy)
        px, pz = ox + t_cap * dx, oz + t_cap * dz
        cands.append((t_cap, px * px + pz * pz <= radius * radius))
    t, which = _nearest(cands)
    p = o + t.clamp(max=1e30)[:, None] * d
    side = torch.stack([p[:, 0] - cx, torch.zeros_like(t), p[:, 2] - cz], dim=-1)
    cap = torch.zeros_like(o)
    cap[:, 1] = 1.0
    normal = torch.where((which < 2)[:, None], side, cap)
    return t, _facing(normal, d)


def intersect_cone(o: Tensor, d: Tensor, ax: float, ay: float, az: float, height: float,
                   radius: float) -> tuple[Tensor, Tensor]:
    """Vertical cone, apex on top at (ax, ay, az), base disk at y = ay + height (up is -y).

    Surface: (x-ax)^2 + (z-az)^2 = k^2 (y-ay)^2 with k = radius/height and 0 <= y-ay <= height.
    """
    k2 = (radius / height) ** 2
    ox, oy, oz = o[:, 0] - ax, o[:, 1] - ay, o[:, 2] - az
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = _safe(dx * dx + dz * dz - k2 * dy * dy)
    b = ox * dx + oz * dz - k2 * oy * dy
    c = ox * ox + oz * oz - k2 * oy * oy
    disc = b * b - a * c
    sq = torch.sqrt(disc.clamp_min(0))
    cands = []
    for t_side in ((-b - sq) / a, (-b + sq) / a):
        y = oy + t_side * dy
        cands.append((t_side, (disc >= 0) & (y >= 0) & (y <= height)))
    t_cap = (height - oy) / _safe(dy)
    px, pz = ox + t_cap * dx, oz + t_cap * dz
    cands.append((t_cap, px * px + pz * pz <= radius * radius))
    t, which = _nearest(cands)
    tc = t.clamp(max=1e30)
    px, py, pz = ox + tc * dx, oy + tc * dy, oz + tc * dz
    side = torch.stack([px, -k2 * py, pz], dim=-1)
    cap = torch.zeros_like(o)
    cap[:, 1] = 1.0
    normal = torch.where((which < 2)[:, None], side, cap)
    return t, _facing(normal, d)


def intersect_primitive(prim: Primitive, o: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """Dispatch on ``prim.kind``; returns (t (n,), normal (n, 3))."""
    p = prim.params
    if prim.kind == "box":
        lo = torch.tensor(p[:3], device=o.device, dtype=o.dtype)
        hi = torch.tensor(p[3:], device=o.device, dtype=o.dtype)
        return intersect_box(o, d, lo, hi)
    if prim.kind == "ellipsoid":
        c = torch.tensor(p[:3], device=o.device, dtype=o.dtype)
        r = torch.tensor(p[3:], device=o.device, dtype=o.dtype)
        return intersect_ellipsoid(o, d, c, r)
    if prim.kind == "cylinder":
        return intersect_cylinder(o, d, *p)
    if prim.kind == "cone":
        return intersect_cone(o, d, *p)
    raise ValueError(f"unknown primitive kind {prim.kind!r}")


# The 12 edges of a box as pairs of corner indices (corner i has offsets bits (i>>2, i>>1, i) & 1).
_BOX_EDGES = [(a, a | bit) for a in range(8) for bit in (1, 2, 4) if not a & bit]


def screen_rects(prims: list[Primitive], cameras: Cameras, near: float, far: float
                 ) -> list[list[tuple[int, int, int, int] | None]]:
    """Pixel rectangles (i0, i1, j0, j1) that can contain each primitive, per camera.

    The bounding box of each primitive is clipped to the near plane (z >= near) - corners in
    front plus the crossings of its 12 edges with the plane - and projected; the rectangle
    bounds those points (the exact screen bound of the clipped box) plus one pixel. A primitive
    wholly behind the near plane, beyond ``far`` (z-depth) or off-screen gets None.
    Returns [camera][primitive].
    """
    if not prims:
        return [[] for _ in range(len(cameras))]
    dev, dt = cameras.device, cameras.c2w.dtype
    lo = torch.tensor([p.lo for p in prims], device=dev, dtype=dt)          # (P, 3)
    hi = torch.tensor([p.hi for p in prims], device=dev, dtype=dt)
    sel = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], device=dev, dtype=dt)
    corners = lo[:, None] + sel[None] * (hi - lo)[:, None]                   # (P, 8, 3)
    w2c = cameras.w2c
    cam = torch.einsum("bij,pkj->bpki", w2c[:, :3, :3], corners) + w2c[:, None, None, :3, 3]  # (B, P, 8, 3)
    ea = torch.tensor([e[0] for e in _BOX_EDGES], device=dev)
    eb = torch.tensor([e[1] for e in _BOX_EDGES], device=dev)
    pa, pb = cam[:, :, ea], cam[:, :, eb]                                    # (B, P, 12, 3)
    za, zb = pa[..., 2], pb[..., 2]
    s = (near - za) / torch.where((zb - za).abs() < 1e-12, torch.full_like(za, 1e-12), zb - za)
    crossing = pa + s[..., None] * (pb - pa)                                 # on the near plane
    crosses = (za - near) * (zb - near) < 0
    pts = torch.cat([cam, crossing], dim=2)                                  # (B, P, 20, 3)
    valid = torch.cat([cam[..., 2] >= near, crosses], dim=2)                 # (B, P, 20)
    uvw = torch.einsum("bij,bpkj->bpki", cameras.K, pts)
    uv = uvw[..., :2] / pts[..., 2:3].clamp_min(near * 0.5)
    big = torch.finfo(dt).max
    umin = torch.where(valid, uv[..., 0], big).amin(-1).floor().clamp(-1e6, 1e6).tolist()
    umax = torch.where(valid, uv[..., 0], -big).amax(-1).ceil().clamp(-1e6, 1e6).tolist()
    vmin = torch.where(valid, uv[..., 1], big).amin(-1).floor().clamp(-1e6, 1e6).tolist()
    vmax = torch.where(valid, uv[..., 1], -big).amax(-1).ceil().clamp(-1e6, 1e6).tolist()
    visible = valid.any(-1).tolist()
    too_far = (cam[..., 2] > far).all(-1).tolist()
    H, W = cameras.height, cameras.width
    out = []
    for b in range(len(cameras)):
        rects: list[tuple[int, int, int, int] | None] = []
        for p in range(len(prims)):
            if not visible[b][p] or too_far[b][p]:
                rects.append(None)
                continue
            i0, i1 = max(0, int(vmin[b][p]) - 1), min(H, int(vmax[b][p]) + 1)
            j0, j1 = max(0, int(umin[b][p]) - 1), min(W, int(umax[b][p]) + 1)
            rects.append((i0, i1, j0, j1) if i0 < i1 and j0 < j1 else None)
        out.append(rects)
    return out
