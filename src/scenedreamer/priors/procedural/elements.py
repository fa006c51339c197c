"""Landmarks and furniture that prompt words place in the procedural world (vocabulary.ELEMENTS).

Each builder returns analytic primitives in the world frame (OpenCV-like: up is -y; the ground
or floor at y = ground_height, terrain varying around it) and the element's ``anchor``: the world
point at its centre, which tests and diagnostics look at. Outdoor elements stand on the terrain
at the first free site of ``OUTDOOR_SITES`` (dry, gentle ground, in front of the first camera and
off its forward path); whatever scattered tree or rock stood there is removed. Indoor elements
take fixed places in the room (``INDOOR_PLACES``) and replace furniture that was in the way.
Sizes are in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ProceduralWorldConfig
from .noise import sample_plane
from .primitives import Primitive, box, cone, cylinder, ellipsoid
from .scene import Material

_ROCK, _TRUNK, _FOLIAGE = Material.ROCK, Material.TRUNK, Material.FOLIAGE
_FURNITURE, _LAMP = Material.FURNITURE, Material.LAMP

STONE = (0.58, 0.55, 0.50)
ROOF = (0.36, 0.17, 0.14)
WOOD = (0.42, 0.28, 0.16)
FIRE = (1.0, 0.55, 0.18)

OUTDOOR_SITES: tuple[tuple[float, float], ...] = (
    (16.0, 48.0), (-16.0, 48.0), (22.0, 30.0), (-22.0, 30.0), (10.0, 70.0), (-10.0, 70.0), (30.0, 60.0),
    (-30.0, 60.0))
"""(x, z) candidate centres of outdoor landmarks, in order of preference: inside a 60 degree view
from the first camera, beyond the default lake basin's near shore, clear of the z axis."""

FOOTPRINT_RADIUS = {"castle": 11.0, "ruins": 6.0, "tower": 3.0, "cabins": 9.0, "lighthouse": 2.5,
                    "campfire": 1.0}
"""Half-size (m) of each outdoor element's ground footprint: its site must be free of other
elements and dry; scattered trees and rocks inside it are removed."""

CAMPFIRE_SITE = (-3.6, 7.0)
"""(x, z) of the campfire: near the first camera, just off its forward path, in view."""


@dataclass(frozen=True)
class PlacedElement:
    """An element in the world: its name, primitives, world anchor (x, y, z) and ground
    footprint (x0, z0, x1, z1)."""

    name: str
    primitives: tuple[Primitive, ...]
    anchor: tuple[float, float, float]
    footprint: tuple[float, float, float, float]


def _ground_y(terrain, x: float, z: float, radius: float) -> tuple[float, float]:
    """(highest ground y, lowest ground y) over a square of half-size radius around (x, z):
    walls are sunk to the first and rise from the second so none floats on a slope."""
    if terrain is None:
        return 0.0, 0.0
    offs = torch.linspace(-radius, radius, 7)
    zz, xx = torch.meshgrid(offs + z, offs + x, indexing="ij")
    ys = terrain.surface_y(xx.reshape(-1), zz.reshape(-1))
    return float(ys.max()), float(ys.min())


def _site_ok(terrain, tpl, x: float, z: float, r: float) -> bool:
    """Dry and not too steep (the landmarks are built on level-ish ground)."""
    if terrain is None:
        return True
    offs = torch.linspace(-r, r, 5)
    zz, xx = torch.meshgrid(offs + z, offs + x, indexing="ij")
    elev = sample_plane(terrain.elevation, xx.reshape(-1), zz.reshape(-1), terrain.half_extent)[:, 0]
    water = tpl.water_level if tpl.water_level is not None else -1e9
    return bool(elev.min() > water + 0.5) and float(elev.max() - elev.min()) < 0.6 * r + 1.0


def _castle(x: float, z: float, bottom: float, top: float) -> list[Primitive]:
    h_wall, h_tower, half = 5.0, 8.5, 7.0
    base = top                              # lowest ground y - walls rise from here (up is -y)
    p = [box((x - half, base - h_wall, z - half), (x + half, bottom + 0.5, z - half + 1.0), _ROCK, STONE),
         box((x - half, base - h_wall, z + half - 1.0), (x + half, bottom + 0.5, z + half), _ROCK, STONE),
         box((x - half, base - h_wall, z - half), (x - half + 1.0, bottom + 0.5, z + half), _ROCK, STONE),
         box((x + half - 1.0, base - h_wall, z - half), (x + half, bottom + 0.5, z + half), _ROCK, STONE),
         box((x - 2.5, base - 11.0, z - 2.5), (x + 2.5, bottom + 0.5, z + 2.5), _ROCK, (0.52, 0.50, 0.47)),
         cone((x, base - 14.0, z), 3.0, 3.4, _ROCK, ROOF)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            cx, cz = x + sx * half, z + sz * half
            p += [cylinder(cx, cz, 1.7, base - h_tower, bottom + 0.5, _ROCK, STONE),
                  cone((cx, base - h_tower - 3.2, cz), 3.2, 2.1, _ROCK, ROOF)]
    return p


def _ruins(x: float, z: float, bottom: float, top: float, gen: torch.Generator) -> list[Primitive]:
    p = []
    for i in range(6):
        cx, cz = x - 4.0 + 1.6 * i, z + (1.5 if i % 2 else -1.5)
        h = 1.2 + 3.5 * float(torch.rand(1, generator=gen))
        p.append(cylinder(cx, cz, 0.45, top - h, bottom + 0.3, _ROCK, (0.72, 0.68, 0.60)))
    p += [box((x - 5.0, top - 2.2, z + 3.0), (x - 1.0, bottom + 0.3, z + 3.8), _ROCK, (0.66, 0.62, 0.55)),
          box((x + 1.5, top - 1.2, z - 4.0), (x + 4.5, bottom + 0.3, z - 3.3), _ROCK, (0.66, 0.62, 0.55))]
    return p


def _tower(x: float, z: float, bottom: float, top: float) -> list[Primitive]:
    return [cylinder(x, z, 2.2, top - 16.0, bottom + 0.5, _ROCK, STONE), cone((x, top - 20.0, z), 4.0, 2.8, _ROCK, ROOF)]


def _cabins(x: float, z: float, terrain, gen: torch.Generator) -> list[Primitive]:
    p = []
    for dx, dz in ((-5.0, -3.0), (4.0, -4.0), (0.0, 5.0)):
        cx, cz = x + dx, z + dz
        bottom, top = _ground_y(terrain, cx, cz, 2.2)
        wood = tuple(c * (0.85 + 0.3 * float(torch.rand(1, generator=gen))) for c in WOOD)
        p += [box((cx - 2.0, top - 2.6, cz - 1.6), (cx + 2.0, bottom + 0.3, cz + 1.6), _TRUNK, wood),
              cone((cx, top - 4.6, cz), 2.0, 3.0, _ROCK, ROOF)]
    return p


def _lighthouse(x: float, z: float, bottom: float, top: float) -> list[Primitive]:
    p = [cylinder(x, z, 1.5, top - 14.0, bottom + 0.5, _ROCK, (0.92, 0.92, 0.90))]
    for k in range(3):           # red bands, a little wider than the white shaft
        p.append(cylinder(x, z, 1.55, top - 4.0 * k - 3.0, top - 4.0 * k - 1.5, _ROCK, (0.72, 0.12, 0.10)))
    p += [cylinder(x, z, 1.1, top - 15.6, top - 14.0, _LAMP, (1.0, 0.93, 0.70)),
          cone((x, top - 17.2, z), 1.6, 1.6, _ROCK, (0.15, 0.15, 0.16))]
    return p


def _campfire(x: float, z: float, bottom: float, top: float) -> list[Primitive]:
    p = []
    for k in range(8):
        a = 2 * math.pi * k / 8
        p.append(ellipsoid((x + 0.55 * math.cos(a), bottom - 0.08, z + 0.55 * math.sin(a)), (0.18, 0.14, 0.18),
                           _ROCK, (0.40, 0.38, 0.36)))
    p += [box((x - 0.4, bottom - 0.14, z - 0.07), (x + 0.4, bottom + 0.02, z + 0.07), _TRUNK, (0.25, 0.15, 0.08)),
          cone((x, top - 0.75, z), 0.75, 0.32, _LAMP, FIRE)]
    return p


def place_outdoor(names: tuple[str, ...], tpl, terrain, cfg: ProceduralWorldConfig,
                  gen: torch.Generator) -> list[PlacedElement]:
    """Outdoor elements on the terrain (or the city street level when terrain is None)."""
    placed: list[PlacedElement] = []
    used: list[tuple[float, float, float]] = []
    for name in names:
        r = FOOTPRINT_RADIUS[name]
        if name == "campfire":
            site = CAMPFIRE_SITE
        else:
            free = [s for s in OUTDOOR_SITES
                    if all(math.hypot(s[0] - ux, s[1] - uz) > r + ur + 2.0 for ux, uz, ur in used)]
            dry = [s for s in free if _site_ok(terrain, tpl, s[0], s[1], r)]
            site = (dry or free or [OUTDOOR_SITES[0]])[0]
        x, z = site
        bottom, top = _ground_y(terrain, x, z, r)
        if terrain is None:
            bottom = top = cfg.ground_height
        if name == "castle":
            prims, height = _castle(x, z, bottom, top), 8.0
        elif name == "ruins":
            prims, height = _ruins(x, z, bottom, top, gen), 2.0
        elif name == "tower":
            prims, height = _tower(x, z, bottom, top), 9.0
        elif name == "cabins":
            prims, height = _cabins(x, z, terrain, gen), 1.5
        elif name == "lighthouse":
            prims, height = _lighthouse(x, z, bottom, top), 8.0
        else:
            prims, height = _campfire(x, z, bottom, top), 0.3
        used.append((x, z, r))
        placed.append(PlacedElement(name, tuple(prims), (x, top - height, z), (x - r, z - r, x + r, z + r)))
    return placed


def _fb(g: float, x0: float, x1: float, z0: float, z1: float, h0: float, h1: float, color,
        material: int = _FURNITURE) -> Primitive:
    """A box by its x and z ranges and its height range above the floor (y = g)."""
    return box((x0, g - h1, z0), (x1, g - h0, z1), material, color)


def place_indoor(names: tuple[str, ...], cfg: ProceduralWorldConfig, gen: torch.Generator) -> list[PlacedElement]:
    """Indoor elements at their fixed places in the room of ``cfg`` (floor y = ground_height)."""
    g, hw, fr = cfg.ground_height, cfg.room_width / 2, cfg.room_front
    placed = []
    for name in names:
        if name == "fireplace":           # centred on the front wall, chimney breast to the ceiling
            x0, x1, z0, z1 = -1.1, 1.1, fr - 0.7, fr
            prims = [_fb(g, x0, x1, z0, z1, 0.0, 1.25, STONE), _fb(g, -0.8, 0.8, z0 + 0.2, z1, 1.25, cfg.room_height, STONE),
                     _fb(g, -1.3, 1.3, z0 - 0.1, z1, 1.25, 1.35, WOOD),
                     _fb(g, -0.6, 0.6, z0 - 0.02, z0 + 0.5, 0.1, 0.9, (0.04, 0.035, 0.03)),
                     cone((0.0, g - 0.7, z0 + 0.25), 0.6, 0.3, _LAMP, FIRE)]
            anchor = (0.0, g - 0.8, z0)
        elif name == "piano":             # against the left wall, near the front
            x0, x1, z0, z1 = -hw, -hw + 0.65, fr - 2.4, fr - 0.9
            prims = [_fb(g, x0, x0 + 0.6, z0, z1, 0.0, 1.3, (0.04, 0.04, 0.05)),
                     _fb(g, x0 + 0.6, x1, z0 + 0.05, z1 - 0.05, 0.7, 0.76, (0.92, 0.92, 0.90)),
                     _fb(g, x1 + 0.2, x1 + 0.6, z0 + 0.3, z1 - 0.3, 0.0, 0.48, (0.04, 0.04, 0.05))]
            x1 += 0.6
            anchor = (x0 + 0.5, g - 0.9, (z0 + z1) / 2)
        elif name == "bookcase":          # front wall, right of the centre
            x0, x1, z0, z1 = 1.7, 3.2, fr - 0.4, fr
            prims = [_fb(g, x0, x1, z0, z1, 0.0, 2.2, WOOD)]
            for k, h in enumerate((0.15, 0.65, 1.15, 1.65)):       # a row of books on each shelf
                for j in range(6):
                    col = tuple(float(c) for c in torch.rand(3, generator=gen) * 0.6 + 0.2)
                    prims.append(_fb(g, x0 + 0.08 + 0.23 * j, x0 + 0.27 + 0.23 * j, z0 - 0.03, z1 - 0.05,
                                     h, h + 0.35 + 0.05 * ((j + k) % 3), col))
            anchor = ((x0 + x1) / 2, g - 1.1, z0)
        elif name == "plants":            # two pots in the front right corner
            prims = []
            for pz in (fr - 0.45, fr - 1.3):
                px = hw - 0.45
                prims += [cylinder(px, pz, 0.22, g - 0.45, g, _FURNITURE, (0.62, 0.32, 0.20)),
                          ellipsoid((px, g - 0.95, pz), (0.38, 0.5, 0.38), _FOLIAGE, (0.16, 0.42, 0.14))]
            x0, x1, z0, z1 = hw - 0.9, hw, fr - 1.8, fr
            anchor = (hw - 0.45, g - 0.8, fr - 0.9)
        else:                             # dining table with four chairs, right of the room's middle
            x0, x1, z0, z1 = 0.6, 2.8, 4.2, 6.4
            top = (0.86, 0.84, 0.78)             # a painted table: it stands out on a wooden floor
            prims = [_fb(g, 1.1, 2.3, 4.7, 5.9, 0.72, 0.77, top)] + [
                _fb(g, lx, lx + 0.07, lz, lz + 0.07, 0.0, 0.72, top) for lx in (1.15, 2.18) for lz in (4.75, 5.78)]
            for cx, cz in ((0.8, 5.3), (2.6, 5.3), (1.7, 4.4), (1.7, 6.2)):
                prims += [_fb(g, cx - 0.2, cx + 0.2, cz - 0.2, cz + 0.2, 0.42, 0.46, WOOD),
                          _fb(g, cx - 0.2, cx + 0.2, cz - 0.2, cz + 0.2, 0.0, 0.05, WOOD)]
            anchor = (1.7, g - 0.75, 5.3)
        placed.append(PlacedElement(name, tuple(prims), anchor, (x0, z0, x1, z1)))
    return placed


def overlaps(prim: Primitive, footprint: tuple[float, float, float, float], margin: float = 0.5) -> bool:
    """Whether a primitive stands on a footprint (x0, z0, x1, z1): the centre of its ground-plane
    bounding box lies within the footprint grown by ``margin``. A tree's trunk and crown share
    their centre, so a tree is removed whole or kept whole."""
    x0, z0, x1, z1 = footprint
    cx, cz = (prim.lo[0] + prim.hi[0]) / 2, (prim.lo[2] + prim.hi[2]) / 2
    return x0 - margin <= cx <= x1 + margin and z0 - margin <= cz <= z1 + margin
