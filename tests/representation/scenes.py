"""Analytic test scenes: spheres and planes ray-cast exactly, giving rgb + z-depth for any Cameras.

World frame: OpenCV-like, +y DOWN (the first camera's frame), so a ground plane at y = +1 lies one
unit below a camera at y = 0. Colours are view-independent (a fixed Lambert light baked in, plus a
smooth sinusoidal texture in world coordinates) so a NeRF without view dependence can fit exactly.
Rays that hit nothing see the sky colour and have unknown depth (0, valid colour).

Also here: ``look_at`` / ``orbit_cameras`` to place cameras, ``make_views`` turning renders into
ViewRecords and ``InMemoryDatabase``, a tiny stand-in with the support database's read API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from scenedreamer.geometry.cameras import Cameras, camera_rays, intrinsics_from_fov
from scenedreamer.support.records import Provenance, ViewRecord

_LIGHT = torch.tensor([0.3, -1.0, -0.4])  # towards the light (up and back), world frame


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class Plane:
    point: tuple[float, float, float]
    normal: tuple[float, float, float]
    colour: tuple[float, float, float]
    texture_amplitude: float = 0.15
    """Strength of the sinusoidal texture (0 = flat colour)."""
    texture_frequency: float = 2.0
    """Spatial frequency of the texture, radians per scene unit."""


@dataclass(frozen=True)
class AnalyticScene:
    spheres: tuple[Sphere, ...] = ()
    planes: tuple[Plane, ...] = ()
    sky: tuple[float, float, float] = (0.55, 0.7, 0.9)
    max_depth: float = 1e4
    """Hits farther than this count as sky (a ground plane reaches the horizon)."""


@dataclass(frozen=True)
class SceneRender:
    rgb: Tensor      # (B, H, W, 3)
    depth: Tensor    # (B, H, W) z-depth, 0 for sky
    hit: Tensor      # (B, H, W) bool


def default_scene() -> AnalyticScene:
    """Three spheres on a textured ground plane around (0, 0.5, 4); ground hits beyond 12 units are sky."""
    return AnalyticScene(
        spheres=(Sphere((0.0, 0.45, 4.0), 0.55, (0.85, 0.25, 0.2)),
                 Sphere((-0.9, 0.65, 4.6), 0.35, (0.2, 0.7, 0.3)),
                 Sphere((0.8, 0.7, 3.5), 0.3, (0.25, 0.35, 0.9))),
        planes=(Plane((0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.6, 0.55, 0.45)),),
        max_depth=12.0,
    )


def render_scene(scene: AnalyticScene, cameras: Cameras) -> SceneRender:
    """Exact ray casting: nearest positive hit per pixel centre."""
    origins, dirs = camera_rays(cameras.to(dtype=torch.float64))        # dirs have camera z = 1
    B, H, W, _ = origins.shape
    best_t = torch.full((B, H, W), math.inf, dtype=torch.float64)
    best_rgb = torch.tensor(scene.sky, dtype=torch.float64).expand(B, H, W, 3).clone()
    light = _LIGHT.double() / _LIGHT.double().norm()
    for s in scene.spheres:
        c = torch.tensor(s.center, dtype=torch.float64)
        oc = origins - c
        a = (dirs * dirs).sum(-1)
        b = 2 * (oc * dirs).sum(-1)
        cc = (oc * oc).sum(-1) - s.radius ** 2
        disc = b * b - 4 * a * cc
        sq = disc.clamp_min(0).sqrt()
        t0, t1 = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
        t = torch.where(t0 > 1e-6, t0, t1)
        ok = (disc >= 0) & (t > 1e-6) & (t < best_t)
        p = origins + t[..., None] * dirs
        n = (p - c) / s.radius
        shade = 0.35 + 0.65 * (n @ light).clamp_min(0)
        tex = 1.0 + 0.1 * torch.sin(4.0 * p[..., 0]) * torch.sin(4.0 * p[..., 2])
        col = torch.tensor(s.colour, dtype=torch.float64) * (shade * tex)[..., None]
        best_t = torch.where(ok, t, best_t)
        best_rgb = torch.where(ok[..., None], col, best_rgb)
    for pl in scene.planes:
        p0 = torch.tensor(pl.point, dtype=torch.float64)
        n = torch.tensor(pl.normal, dtype=torch.float64)
        denom = dirs @ n
        t = ((p0 - origins) @ n) / torch.where(denom.abs() > 1e-12, denom, torch.full_like(denom, 1e-12))
        ok = (t > 1e-6) & (t < best_t) & (t < scene.max_depth)
        p = origins + t[..., None] * dirs
        f = pl.texture_frequency
        tex = 1.0 + pl.texture_amplitude * torch.sin(f * p[..., 0]) * torch.cos(f * p[..., 2])
        col = torch.tensor(pl.colour, dtype=torch.float64) * tex[..., None]
        best_t = torch.where(ok, t, best_t)
        best_rgb = torch.where(ok[..., None], col, best_rgb)
    hit = torch.isfinite(best_t)
    depth = torch.where(hit, best_t, torch.zeros_like(best_t))
    return SceneRender(best_rgb.clamp(0, 1).float(), depth.float(), hit)


def look_at(eye: Tensor, target: Tensor, up: Tensor = torch.tensor([0.0, -1.0, 0.0])) -> Tensor:
    """(4, 4) c2w with OpenCV axes looking from eye to target (world +y is down, so up = -y)."""
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit_cameras(angles_deg: list[float], width: int, height: int, radius: float = 3.0,
                  height_above: float = 1.2, target: tuple[float, float, float] = (0.0, 0.5, 4.0),
                  fov_deg: float = 60.0) -> Cameras:
    """Cameras on a circle around ``target`` (at angle 0 the camera looks along +z), above it."""
    tgt = torch.tensor(target)
    K = intrinsics_from_fov(fov_deg, width, height)
    poses = []
    for a in angles_deg:
        r = math.radians(a)
        eye = tgt + torch.tensor([-radius * math.sin(r), -height_above, -radius * math.cos(r)])
        poses.append(look_at(eye, tgt))
    return Cameras(K.expand(len(poses), 3, 3).clone(), torch.stack(poses), width, height)


def make_views(scene: AnalyticScene, cameras: Cameras, inpainted_fraction: float = 0.0,
               sky_depth: float | None = None) -> list[ViewRecord]:
    """ViewRecords of exact renders: depth known on hits, colour valid everywhere; the pixels
    that hit nothing are the backdrop (ViewRecord.backdrop).

    ``sky_depth``: depth given to sky pixels, as a metric depth network gives the sky a large
    depth (None: unknown, 0).
    ``inpainted_fraction`` > 0 marks the right part of each image as inpainted (for weighting tests).
    """
    r = render_scene(scene, cameras)
    views = []
    for i in range(len(cameras)):
        inpainted = torch.zeros(cameras.height, cameras.width, dtype=torch.bool)
        if inpainted_fraction > 0:
            inpainted[:, int(cameras.width * (1 - inpainted_fraction)):] = True
        depth = r.depth[i]
        if sky_depth is not None:
            depth = torch.where(r.hit[i], depth, torch.full_like(depth, sky_depth))
        views.append(ViewRecord(rgb=r.rgb[i], depth=depth, valid=torch.ones_like(r.hit[i]),
                                inpainted=inpainted, K=cameras.K[i], c2w=cameras.c2w[i],
                                provenance=Provenance.INITIAL, step=0, prompt="analytic", view_id=i,
                                backdrop=~r.hit[i]))
    return views


@dataclass
class InMemoryDatabase:
    """The support database's read API over a list of ViewRecords (ids = list positions)."""

    views: list[ViewRecord] = field(default_factory=list)

    def get(self, view_id: int) -> ViewRecord:
        return self.views[view_id]

    def ids(self) -> list[int]:
        return list(range(len(self.views)))

    def __len__(self) -> int:
        return len(self.views)

    def sample_replay(self, n: int, generator: torch.Generator) -> list[int]:
        idx = torch.randint(0, len(self.views), (n,), generator=generator)
        return [int(i) for i in idx]
