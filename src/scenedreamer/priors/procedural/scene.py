"""Building a procedural scene from a template: terrain heightmap, scattered trees and rocks,
city blocks, a furnished room. Runs once per world on the CPU, deterministic per seed.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import ProceduralWorldConfig
from .noise import fbm_grid, sample_plane
from .primitives import Primitive, box, cone, cylinder, ellipsoid
from .vocabulary import Template


class Material(enum.IntEnum):
    """Material ids stored per pixel; shading is chosen by id."""

    SKY = 0
    TERRAIN = 1
    WATER = 2
    TRUNK = 3
    FOLIAGE = 4
    ROCK = 5
    BUILDING = 6
    STREET = 7
    ROOM = 8
    FURNITURE = 9
    LAMP = 10


@dataclass(frozen=True)
class Terrain:
    """A heightfield: elevation (positive up, m) over [-half_extent, half_extent]^2 in (x, z).

    The surface is y = ground_height - elevation(x, z) (world up is -y).
    elevation: (1, N, N) texture, rows along z, columns along x (bilinear between texels).
    normals: (3, N, N) unit normals (pointing up, i.e. negative y) for shading.
    """

    elevation: Tensor
    normals: Tensor
    half_extent: float
    ground_height: float
    min_elevation: float
    max_elevation: float
    max_slope: float
    """Bound on |grad elevation| of the bilinear surface (its Lipschitz constant)."""

    def surface_y(self, x: Tensor, z: Tensor) -> Tensor:
        """World y of the surface above/below (x, z): (n,) -> (n,)."""
        return self.ground_height - sample_plane(self.elevation, x, z, self.half_extent)[:, 0]

    def to(self, device: torch.device) -> "Terrain":
        return Terrain(self.elevation.to(device), self.normals.to(device), self.half_extent,
                       self.ground_height, self.min_elevation, self.max_elevation, self.max_slope)


@dataclass(frozen=True)
class Window:
    """A window on a room wall: the wall plane ``axis`` (0 = x, 2 = z) at ``value``; extents
    ``u`` along the other horizontal axis and ``h`` in height above the floor."""

    axis: int
    value: float
    u: tuple[float, float]
    h: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """Everything the renderer needs; tensors on the CPU (the world moves them per device)."""

    template: Template
    terrain: Terrain | None
    water_y: float | None
    ground_plane_y: float | None
    primitives: tuple[Primitive, ...]
    room: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    windows: tuple[Window, ...]
    lamp_position: tuple[float, float, float] | None
    elements: tuple = ()
    """elements.PlacedElement of every element the prompt placed (name, primitives, anchor)"""


def _smoothstep(e0: float, e1: float, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


def build_terrain(tpl: Template, cfg: ProceduralWorldConfig, gen: torch.Generator) -> Terrain:
    """Elevation = hills + distant ridged mountains + dunes + lake basin / sea shelf, 0 at the origin."""
    N, E = cfg.heightmap_resolution, cfg.terrain_half_extent
    coords = torch.linspace(-E, E, N)
    Z, X = torch.meshgrid(coords, coords, indexing="ij")               # rows z, columns x
    r = torch.hypot(X, Z)
    # Hills: ~25 m features; gentler near the first camera so it starts on walkable ground.
    hills = (fbm_grid(N, 12, 5, gen) - 0.5) * 2.0 * tpl.hill_amplitude
    elev = hills * (0.3 + 0.7 * _smoothstep(cfg.clear_radius, 25.0, r))
    if tpl.mountain_amplitude > 0:
        ridged = (1.0 - (2.0 * fbm_grid(N, 6, 6, gen) - 1.0).abs()) ** 2
        elev = elev + tpl.mountain_amplitude * _smoothstep(30.0, 80.0, r) * ridged
    if tpl.dune_amplitude > 0:
        warp = fbm_grid(N, 8, 3, gen) * 8.0
        crest = 0.5 + 0.5 * torch.sin(0.16 * X + 0.05 * Z + warp)
        elev = elev + tpl.dune_amplitude * crest ** 2 * _smoothstep(cfg.clear_radius, 20.0, r)
    if tpl.lake and tpl.water_level is not None:
        centre_z, radius = 30.0, 20.0
        dist = torch.hypot(X, Z - centre_z) / radius
        elev = elev - (2.5 - tpl.water_level) * _smoothstep(1.0, 0.45, dist)
    if tpl.sea and tpl.water_level is not None:
        shore_z, slope = 10.0, 0.08
        elev = elev - slope * torch.relu(Z - shore_z)
    elevation = elev[None]
    origin = sample_plane(elevation, torch.zeros(1), torch.zeros(1), E)[0, 0]
    elevation = elevation - origin                                          # exactly 0 under camera 0
    spacing = 2.0 * E / (N - 1)
    dz, dx = torch.gradient(elevation[0], spacing=spacing)
    normals = torch.stack([-dx, -torch.ones_like(dx), -dz])
    normals = normals / normals.norm(dim=0, keepdim=True)
    # within a bilinear cell the gradient components are convex combinations of the cell's
    # forward differences, so these maxima bound the slope of the surface everywhere.
    fd_x = (elevation[0, :, 1:] - elevation[0, :, :-1]).abs().max() / spacing
    fd_z = (elevation[0, 1:, :] - elevation[0, :-1, :]).abs().max() / spacing
    return Terrain(elevation.contiguous(), normals.contiguous(), E, cfg.ground_height,
                   float(elevation.min()), float(elevation.max()), float(torch.hypot(fd_x, fd_z)))


def _jitter(c: tuple[float, float, float], amount: float, gen: torch.Generator) -> tuple[float, float, float]:
    d = (torch.rand(3, generator=gen) * 2 - 1) * amount
    return tuple(float(min(1.0, max(0.0, v + float(e)))) for v, e in zip(c, d))


def _scatter_sites(spacing: float, cfg: ProceduralWorldConfig, gen: torch.Generator) -> Tensor:
    """(n, 2) jittered-grid sites (x, z) within scatter_radius, off the clear zone and the path."""
    S = cfg.scatter_radius
    cells = int(math.ceil(2 * S / spacing))
    idx = torch.arange(cells, dtype=torch.float32)
    gz, gx = torch.meshgrid(idx, idx, indexing="ij")
    jitter = torch.rand(cells, cells, 2, generator=gen)
    x = -S + (gx + jitter[..., 0]) * spacing
    z = -S + (gz + jitter[..., 1]) * spacing
    keep = (torch.hypot(x, z) < S) & (torch.hypot(x, z) > cfg.clear_radius) & (x.abs() > cfg.path_half_width)
    keep &= torch.rand(cells, cells, generator=gen) < 0.85
    return torch.stack([x[keep], z[keep]], dim=-1)


def scatter_outdoor(tpl: Template, terrain: Terrain, cfg: ProceduralWorldConfig,
                    gen: torch.Generator) -> list[Primitive]:
    """Trees and rocks standing on the terrain (not in water, not on steep slopes)."""
    prims: list[Primitive] = []
    water = tpl.water_level if tpl.water_level is not None else -1e9
    for what, spacing in (("tree", tpl.tree_spacing), ("rock", tpl.rock_spacing)):
        if spacing <= 0:
            continue
        sites = _scatter_sites(spacing, cfg, gen)
        if len(sites) == 0:
            continue
        x, z = sites[:, 0], sites[:, 1]
        elev = sample_plane(terrain.elevation, x, z, terrain.half_extent)[:, 0]
        up = -sample_plane(terrain.normals, x, z, terrain.half_extent)[:, 1]
        ok = (elev > water + 0.3) & (up > 0.8)
        if tpl.snow_line is not None and what == "tree":
            ok &= elev < tpl.snow_line + 5.0
        for xi, zi, ei in zip(x[ok].tolist(), z[ok].tolist(), elev[ok].tolist()):
            base_y = cfg.ground_height - ei
            size = 0.7 + 0.6 * float(torch.rand(1, generator=gen))
            if what == "tree":
                prims += _tree(tpl, xi, zi, base_y, size, gen)
            else:
                r = 0.3 + 0.9 * size * float(torch.rand(1, generator=gen))
                radii = (r * (0.8 + 0.4 * float(torch.rand(1, generator=gen))), 0.6 * r, r)
                prims.append(ellipsoid((xi, base_y - 0.25 * radii[1], zi), radii, Material.ROCK,
                                       _jitter(tpl.rock_color, 0.05, gen)))
    return prims


def _tree(tpl: Template, x: float, z: float, base_y: float, size: float,
          gen: torch.Generator) -> list[Primitive]:
    """A tree at (x, z) standing on y = base_y: a trunk cylinder and a conical or round crown."""
    foliage = _jitter(tpl.foliage_color, 0.04, gen)
    trunk = _jitter(tpl.trunk_color, 0.03, gen)
    if tpl.tree_style == "pine":
        h = 7.0 * size
        parts = [cylinder(x, z, 0.12 * size + 0.05, base_y - 0.3 * h, base_y + 0.3, Material.TRUNK, trunk),
                 cone((x, base_y - 0.75 * h, z), 0.55 * h, 0.24 * h, Material.FOLIAGE, foliage),
                 cone((x, base_y - h, z), 0.45 * h, 0.17 * h, Material.FOLIAGE, foliage)]
    else:
        h = 6.0 * size
        parts = [cylinder(x, z, 0.15 * size + 0.05, base_y - 0.5 * h, base_y + 0.3, Material.TRUNK, trunk),
                 ellipsoid((x, base_y - 0.68 * h, z), (0.32 * h, 0.30 * h, 0.32 * h), Material.FOLIAGE,
                           foliage)]
    return parts


def build_city(tpl: Template, cfg: ProceduralWorldConfig, gen: torch.Generator) -> list[Primitive]:
    """Rows of box buildings along a street on the z axis, with cross streets every block."""
    g = cfg.ground_height
    street_half, block, cross = 7.0, 36.0, 12.0
    prims = []
    for side in (-1.0, 1.0):
        for row_start in (street_half, street_half + 20.0):
            z = -60.0
            while z < 160.0:
                block_end = z + block
                while z < block_end - 6.0:
                    width = min(6.0 + 10.0 * float(torch.rand(1, generator=gen)), block_end - z)
                    depth = 10.0 + 8.0 * float(torch.rand(1, generator=gen))
                    height = 8.0 + 40.0 * float(torch.rand(1, generator=gen)) ** 2
                    x0 = row_start
                    x_lo, x_hi = (x0, x0 + depth) if side > 0 else (-x0 - depth, -x0)
                    prims.append(box((x_lo, g - height, z), (x_hi, g, z + width - 0.3), Material.BUILDING,
                                     _jitter(tpl.wall_color, 0.12, gen)))
                    z += width
                z = block_end + cross
    return prims


def _fbox(g: float, x0: float, x1: float, z0: float, z1: float, h0: float, h1: float, color,
          material: Material = Material.FURNITURE) -> Primitive:
    """A box given by x and z ranges and its height range above the floor (y = g)."""
    return box((x0, g - h1, z0), (x1, g - h0, z1), material, color)


def build_room(tpl: Template, cfg: ProceduralWorldConfig, gen: torch.Generator
               ) -> tuple[tuple, list[Primitive], list[Window], tuple[float, float, float]]:
    """A box room around the first camera with windows, a ceiling lamp and a furniture set."""
    g = cfg.ground_height
    hw = cfg.room_width / 2
    lo = (-hw, g - cfg.room_height, -cfg.room_back)
    hi = (hw, g, cfg.room_front)
    fr = cfg.room_front
    wood = _jitter((0.45, 0.30, 0.18), 0.05, gen)
    fabric = _jitter((0.35, 0.40, 0.55), 0.1, gen)
    light = _jitter((0.85, 0.83, 0.78), 0.05, gen)
    dark = _jitter((0.20, 0.20, 0.22), 0.03, gen)
    f = lambda *a, **k: _fbox(g, *a, **k)  # noqa: E731 - short local helper
    p: list[Primitive] = []
    windows = [Window(0, hw, (1.2, 3.4), (0.9, 2.3)), Window(0, hw, (5.0, 7.2), (0.9, 2.3))]
    if tpl.furniture == "kitchen":
        p += [f(-hw, -hw + 0.65, 0.5, 6.5, 0, 0.86, light), f(-hw, -hw + 0.7, 0.5, 6.5, 0.86, 0.92, dark),
              f(-hw, -hw + 0.38, 0.5, 6.5, 1.5, 2.2, light), f(-hw, -hw + 0.75, 6.8, 7.8, 0, 2.0, (0.9, 0.9, 0.92)),
              f(1.2, 2.3, 2.5, 5.0, 0, 0.86, wood), f(1.15, 2.35, 2.45, 5.05, 0.86, 0.92, dark),
              f(-0.9, 0.9, fr - 0.6, fr, 0, 0.9, light)]
    elif tpl.furniture == "bedroom":
        p += [f(0.4, 2.6, fr - 0.25, fr, 0, 1.2, wood), f(0.4, 2.6, fr - 2.4, fr - 0.25, 0, 0.45, wood),
              f(0.45, 2.55, fr - 2.4, fr - 0.3, 0.45, 0.62, fabric),
              f(0.6, 1.4, fr - 0.8, fr - 0.3, 0.62, 0.78, light), f(1.6, 2.4, fr - 0.8, fr - 0.3, 0.62, 0.78, light),
              f(2.8, 3.4, fr - 0.6, fr - 0.1, 0, 0.55, wood), f(-hw, -hw + 0.6, 2.0, 4.2, 0, 2.1, wood),
              f(-1.5, 0.0, fr - 3.5, fr - 2.6, 0, 0.01, fabric)]
        windows = [Window(0, hw, (1.5, 4.0), (0.9, 2.3))]
    elif tpl.furniture == "office":
        for z0 in (1.5, 4.0, 6.5):
            p += [f(-hw, -hw + 0.8, z0, z0 + 1.6, 0.72, 0.76, wood), f(-hw + 0.05, -hw + 0.1, z0, z0 + 1.6, 0, 0.72, dark),
                  f(-hw + 0.9, -hw + 1.4, z0 + 0.5, z0 + 1.0, 0.0, 0.46, dark),
                  f(-hw + 0.1, -hw + 0.15, z0 + 0.5, z0 + 1.1, 0.76, 1.2, (0.05, 0.05, 0.07))]
        p.append(f(hw - 0.4, hw, 0.5, 1.2, 0, 2.2, wood))                       # cabinet by the door
        p += [f(-1.5, 1.5, fr - 0.4, fr, 0, 2.2, wood)] + [
            f(-1.45, 1.45, fr - 0.42, fr - 0.38, h, h + 0.04, dark) for h in (0.5, 1.0, 1.5)]
    else:  # living room
        p += [f(-hw, -hw + 0.9, 2.0, 4.6, 0, 0.45, fabric), f(-hw, -hw + 0.25, 2.0, 4.6, 0.45, 0.95, fabric),
              f(-hw, -hw + 0.9, 1.8, 2.0, 0, 0.65, fabric), f(-hw, -hw + 0.9, 4.6, 4.8, 0, 0.65, fabric),
              f(-2.2, -1.4, 2.7, 3.9, 0.38, 0.44, wood), f(-2.6, -0.9, 2.0, 4.6, 0, 0.01, _jitter((0.6, 0.25, 0.2), 0.1, gen)),
              f(-1.6, 1.6, fr - 0.35, fr, 0, 2.0, wood), f(hw - 0.45, hw, 3.8, 4.6, 0, 0.55, dark)]
        for h in (0.5, 1.0, 1.5):
            p.append(f(-1.55, 1.55, fr - 0.37, fr - 0.33, h, h + 0.04, dark))
        p.append(cylinder(-hw + 0.5, 5.3, 0.03, g - 1.5, g, Material.FURNITURE, dark))
        p.append(cone((-hw + 0.5, g - 1.75, 5.3), 0.35, 0.25, Material.LAMP, (1.0, 0.92, 0.75)))
    lamp = (0.0, g - cfg.room_height + 0.05, (fr - cfg.room_back) / 2)
    p.append(ellipsoid((lamp[0], lamp[1] + 0.12, lamp[2]), (0.25, 0.1, 0.25), Material.LAMP, (1.0, 0.95, 0.85)))
    return (lo, hi), p, windows, (lamp[0], lamp[1] + 0.6, lamp[2])


ELEMENT_SEED_OFFSET = 7919
"""Added to the world's seed to seed the elements' own generator (any fixed number works)."""


def build_scene(tpl: Template, cfg: ProceduralWorldConfig, gen: torch.Generator) -> Scene:
    """The scene of a template, deterministic given the generator state. The template's
    elements (vocabulary.ELEMENTS) draw from their own generator (seeded from ``gen``'s seed, not
    its state), so a prompt word that adds an element leaves the rest of the world exactly as it
    was, less what stood in the element's place."""
    from .elements import overlaps, place_indoor, place_outdoor   # elements.py builds on this module

    element_gen = torch.Generator().manual_seed(gen.initial_seed() + ELEMENT_SEED_OFFSET)
    if tpl.kind == "outdoor":
        terrain = build_terrain(tpl, cfg, gen)
        prims = scatter_outdoor(tpl, terrain, cfg, gen)
        placed = place_outdoor(tpl.elements, tpl, terrain, cfg, element_gen)
        prims = [p for p in prims if not any(overlaps(p, e.footprint, margin=2.0) for e in placed)]
        prims += [q for e in placed for q in e.primitives]
        water_y = cfg.ground_height - tpl.water_level if tpl.water_level is not None else None
        return Scene(tpl, terrain, water_y, None, tuple(prims), None, (), None, tuple(placed))
    if tpl.kind == "city":
        return Scene(tpl, None, None, cfg.ground_height, tuple(build_city(tpl, cfg, gen)), None, (), None)
    room, prims, windows, lamp = build_room(tpl, cfg, gen)
    placed = place_indoor(tpl.elements, cfg, element_gen)
    prims = [p for p in prims if not any(overlaps(p, e.footprint, margin=0.05) for e in placed)
             or p.material == Material.LAMP and p.lo[1] < cfg.ground_height - cfg.room_height + 0.5]
    prims += [q for e in placed for q in e.primitives]
    walls = box(room[0], room[1], Material.ROOM, tpl.wall_color)   # seen from inside: its far side
    return Scene(tpl, None, None, None, (walls, *prims), room, tuple(windows), lamp, tuple(placed))
