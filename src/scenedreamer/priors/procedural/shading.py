"""Colours of the procedural world: sky (sun, clouds, stars), materials, lighting and fog.

Shading is simple and cheap on purpose: lambert sun + hemispherical sky ambient outdoors, a
ceiling lamp + window light + corner darkening indoors, textures from tileable detail noise
sampled at the world position (so they stick to the geometry across views), a sky reflection on
water, and distance fog that reaches the horizon colour at ``sky_depth``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import ProceduralWorldConfig
from .noise import hash01, sample_plane, sample_tiled
from .scene import Material, Scene
from .vocabulary import PALETTES, Lighting

def _vec(c, like: Tensor) -> Tensor:
    return torch.tensor(c, device=like.device, dtype=like.dtype)


def _smoothstep(e0: float, e1: float, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3 - 2 * t)


def _lerp(a: Tensor, b: Tensor, w: Tensor) -> Tensor:
    return a + (b - a) * w


_LUMA = (0.2126, 0.7152, 0.0722)
TOON_BANDS = 4
"""Light bands of the toon palette (cel shading)."""


def apply_palette(rgb: Tensor, palette: str) -> Tensor:
    """Restyle colours (n, 3) in [0, 1] by a palette of vocabulary.PALETTES.

    A function of each colour alone (no neighbourhood, no randomness), so every view of a point
    gets the same styled colour and the world stays 3D consistent. "natural" returns rgb.
    """
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}")
    if palette == "natural":
        return rgb
    luma = (rgb * torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device)).sum(-1, keepdim=True)
    grey = luma.expand_as(rgb)
    if palette == "watercolor":      # thin pigment on white paper: lighter, less saturated, soft
        pigment = _lerp(grey, rgb, torch.tensor(0.75, dtype=rgb.dtype))
        out = 1.0 - 0.72 * (1.0 - pigment)
        out = out * (0.97 + 0.03 * torch.sin(12.0 * luma))   # faint pigment pooling by tone
    elif palette == "toon":          # saturated flat colours in TOON_BANDS light bands
        vivid = (grey + 1.5 * (rgb - grey)).clamp(0, 1)
        banded = ((luma * TOON_BANDS).floor() + 0.5) / TOON_BANDS
        out = vivid * (banded / luma.clamp_min(1e-3)).clamp(max=2.5)
    elif palette == "pastel":
        out = 0.55 * _lerp(grey, rgb, torch.tensor(0.6, dtype=rgb.dtype)) + 0.45
    elif palette == "sepia":
        # the classic sepia matrix, rows scaled so that white maps to a paper tone, not past 1
        m = torch.tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]],
                         dtype=rgb.dtype, device=rgb.device) / 1.351
        out = rgb @ m.T
    elif palette == "monochrome":
        out = grey
    else:                            # noir: grey with a steep S-curve
        out = _smoothstep(0.12, 0.75, grey)
    return out.clamp(0, 1)


def sun_direction(lighting: Lighting) -> tuple[float, float, float]:
    """Unit vector toward the sun (world frame, up = -y)."""
    az, el = math.radians(lighting.sun_azimuth), math.radians(lighting.sun_elevation)
    return (math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el))


class Shader:
    """Colours for one world; textures live on the device of the first call."""

    def __init__(self, scene: Scene, lighting: Lighting, detail: Tensor, clouds: Tensor,
                 cfg: ProceduralWorldConfig, seed: int, shadows: tuple[Tensor, float] | None = None) -> None:
        self.scene, self.lighting, self.cfg, self.seed = scene, lighting, cfg, seed
        self.detail, self.clouds, self.shadows = detail, clouds, shadows

    # --- sky -----------------------------------------------------------------------------------
    def sky(self, v: Tensor) -> Tensor:
        """Sky colour (n, 3) for unit view directions v (n, 3), in the world's palette. A
        function of direction only."""
        return apply_palette(self._sky(v), self.scene.template.palette)

    def _sky(self, v: Tensor) -> Tensor:
        """The sky before the palette (water reflections and fog use it too)."""
        L = self.lighting
        e = -v[:, 1]                                                     # sine of elevation
        zen, hor = _vec(L.sky_zenith, v), _vec(L.sky_horizon, v)
        col = _lerp(hor, zen, e.clamp(0, 1).sqrt()[:, None])
        col = torch.where((e < 0)[:, None], hor * (1.0 - 0.25 * (-e * 4).clamp(0, 1))[:, None], col)
        s = _vec(sun_direction(L), v)
        cosang = (v * s).sum(-1).clamp(min=0)
        sun = _vec(L.sun_color, v)
        if L.clouds > 0:
            up = e.clamp(min=0.02)
            cu, cv = v[:, 0] / (up + 0.08) * 0.12, v[:, 2] / (up + 0.08) * 0.12
            density = sample_tiled(self.clouds, cu, cv)[:, 0]
            cover = _smoothstep(1.0 - L.clouds, 1.15 - L.clouds * 0.7, density) * _smoothstep(0.0, 0.12, e)
            cloud_col = _lerp(hor * 0.9, torch.clamp(sun * 0.8 + hor * 0.4, 0, 1), (0.5 + 0.5 * density)[:, None])
            col = _lerp(col, cloud_col, (0.85 * cover)[:, None])
        if L.stars:
            az = torch.atan2(v[:, 0], v[:, 2])
            el = torch.asin(e.clamp(-1, 1))
            cell = 350.0
            h = hash01((az * cell).floor().long(), (el * cell).floor().long(), torch.zeros_like(az).long(),
                       self.seed)
            star = ((h > 0.994) & (e > 0.03)).to(v.dtype) * (0.4 + 0.6 * (h - 0.994) / 0.006)
            col = col + star[:, None] * 0.8
            moon = _smoothstep(math.cos(math.radians(1.6)), math.cos(math.radians(1.3)), cosang)
            col = _lerp(col, _vec((0.92, 0.92, 0.86), v), moon[:, None])
            col = col + _vec((0.10, 0.12, 0.18), v) * cosang[:, None] ** 32
        else:
            glow = 0.35 * cosang ** 8 + 0.5 * cosang ** 128
            disc = _smoothstep(math.cos(math.radians(1.2)), math.cos(math.radians(0.8)), cosang)
            col = col + sun * glow[:, None] + sun * 2.0 * disc[:, None]
        return col.clamp(0, 1)

    # --- helpers -------------------------------------------------------------------------------
    def _noise(self, u: Tensor, v: Tensor) -> Tensor:
        """Detail noise in ~[0, 1] at texture coordinates (u, v) in periods: (n,)."""
        return sample_tiled(self.detail, u, v)[:, 0]

    def _surface_noise(self, p: Tensor, n: Tensor, scale: float) -> Tensor:
        """Noise stuck to a surface: planar projection on the plane most facing the normal."""
        a = n.abs()
        vertical_y = a[:, 1] >= torch.maximum(a[:, 0], a[:, 2])
        u = torch.where(vertical_y, p[:, 0], p[:, 0] + p[:, 2])
        w = torch.where(vertical_y, p[:, 2], p[:, 1])
        return self._noise(u / scale, w / scale)

    # --- materials -----------------------------------------------------------------------------
    def terrain_albedo(self, p: Tensor, n: Tensor) -> Tensor:
        tpl, g = self.scene.template, self.cfg.ground_height
        h = g - p[:, 1]                                                   # elevation at the hit
        up = -n[:, 1]
        fine, coarse = self._noise(p[:, 0] / 3.0, p[:, 2] / 3.0), self._noise(p[:, 0] / 41.0, p[:, 2] / 41.0)
        col = _vec(tpl.ground_color, p) * (0.78 + 0.4 * fine)[:, None] * (0.85 + 0.3 * coarse)[:, None]
        rock = _smoothstep(0.9, 0.72, up)
        if tpl.mountain_amplitude > 0:
            rock = torch.maximum(rock, 0.8 * _smoothstep(5.0, 14.0, h + 4 * (coarse - 0.5)))
        rock_col = _vec(tpl.high_color, p) * (0.7 + 0.5 * self._noise(p[:, 0] / 1.3, p[:, 1] / 1.3 + p[:, 2] / 1.3))[:, None]
        col = _lerp(col, rock_col, rock[:, None])
        if tpl.water_level is not None:
            shore = _smoothstep(tpl.water_level + tpl.shore_width, tpl.water_level + 0.4 * tpl.shore_width,
                                h + 0.3 * (fine - 0.5))
            col = _lerp(col, _vec(tpl.shore_color, p) * (0.9 + 0.2 * fine)[:, None], shore[:, None])
        if tpl.snow_line is not None:
            snow = _smoothstep(tpl.snow_line - 1.0, tpl.snow_line + 1.0, h + 6 * (coarse - 0.5)) * _smoothstep(0.55, 0.75, up)
            col = _lerp(col, _vec((0.93, 0.95, 0.98), p) * (0.95 + 0.05 * fine)[:, None], snow[:, None])
        return col

    def street_albedo(self, p: Tensor) -> Tensor:
        tpl = self.scene.template
        ax = p[:, 0].abs()
        fine = self._noise(p[:, 0] / 2.0, p[:, 2] / 2.0)
        col = _vec(tpl.floor_color, p) * (0.85 + 0.3 * fine)[:, None]
        line = (ax < 0.1) & (torch.remainder(p[:, 2], 6.0) < 3.0)
        col = torch.where(line[:, None], _vec((0.85, 0.8, 0.55), p), col)
        walk = ax > 5.5
        tiles = ((torch.remainder(p[:, 0], 1.0) < 0.04) | (torch.remainder(p[:, 2], 1.0) < 0.04)).to(p.dtype)
        walk_col = _vec((0.58, 0.56, 0.53), p) * (0.9 + 0.15 * fine - 0.25 * tiles)[:, None]
        return torch.where(walk[:, None], walk_col, col)

    def building_albedo(self, p: Tensor, n: Tensor, base: Tensor) -> tuple[Tensor, Tensor]:
        """Facades with a window grid (lit at night); returns (albedo, emission)."""
        g = self.cfg.ground_height
        facing_z = n[:, 2].abs() > n[:, 0].abs()
        a = torch.where(facing_z, p[:, 0], p[:, 2])
        hgt = g - p[:, 1]
        ca, ch = torch.floor(a / 2.6), torch.floor(hgt / 3.2)
        fa, fh = a / 2.6 - ca, hgt / 3.2 - ch
        window = (fa > 0.2) & (fa < 0.8) & (fh > 0.3) & (fh < 0.8) & (hgt > 1.0) & (n[:, 1].abs() < 0.5)
        col = base * (0.85 + 0.25 * self._surface_noise(p, n, 4.0))[:, None]
        glass = _vec((0.16, 0.20, 0.26), p)
        col = torch.where(window[:, None], glass, col)
        roof = n[:, 1] < -0.5
        col = torch.where(roof[:, None], base * 0.5, col)
        facade = torch.floor(torch.where(facing_z, p[:, 2], p[:, 0]))      # which wall plane
        lit = window & (hash01(ca.long(), ch.long(), facade.long(), self.seed) < 0.45 * self.lighting.lamps)
        emission = lit[:, None].to(p.dtype) * _vec((1.0, 0.78, 0.45), p) * 0.9
        return col, emission

    def room_albedo(self, p: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """Floor pattern, ceiling, walls with a skirting board, and windows; (albedo, emission)."""
        tpl, g = self.scene.template, self.cfg.ground_height
        hgt = g - p[:, 1]
        fine = self._surface_noise(p, n, 1.5)
        col = _vec(tpl.wall_color, p) * (0.95 + 0.08 * fine)[:, None]
        col = torch.where((hgt < 0.1)[:, None], _vec((0.92, 0.91, 0.88), p), col)
        floor = n[:, 1] < -0.5
        ceiling = n[:, 1] > 0.5
        fc = _vec(tpl.floor_color, p)
        if tpl.floor_pattern == "planks":
            board = torch.floor(p[:, 0] / 0.18)
            shift = hash01(board.long(), torch.zeros_like(board).long(), torch.zeros_like(board).long(), self.seed)
            seg = torch.floor(p[:, 2] / 1.4 + shift)
            tone = hash01(board.long(), seg.long(), torch.ones_like(board).long(), self.seed)
            grain = self._noise(p[:, 0] / 0.6, p[:, 2] / 6.0)
            gap = (torch.remainder(p[:, 0] / 0.18, 1.0) < 0.04) | (torch.remainder(p[:, 2] / 1.4 + shift, 1.0) < 0.01)
            floor_col = fc * (0.75 + 0.35 * tone + 0.2 * (grain - 0.5))[:, None] * torch.where(gap, 0.55, 1.0)[:, None]
        elif tpl.floor_pattern == "tiles":
            grout = (torch.remainder(p[:, 0], 0.5) < 0.015) | (torch.remainder(p[:, 2], 0.5) < 0.015)
            tile = hash01(torch.floor(p[:, 0] / 0.5).long(), torch.floor(p[:, 2] / 0.5).long(),
                          torch.zeros_like(p[:, 0]).long(), self.seed)
            floor_col = torch.where(grout[:, None], fc * 0.6, fc * (0.92 + 0.12 * tile)[:, None])
        else:
            floor_col = fc * (0.85 + 0.3 * self._noise(p[:, 0] / 0.3, p[:, 2] / 0.3))[:, None]
        col = torch.where(floor[:, None], floor_col, col)
        col = torch.where(ceiling[:, None], _vec((0.93, 0.93, 0.91), p), col)
        emission = torch.zeros_like(col)
        L = self.lighting
        for w in self.scene.windows:
            other = 2 if w.axis == 0 else 0
            on = ((p[:, w.axis] - w.value).abs() < 1e-3) & (p[:, other] > w.u[0]) & (p[:, other] < w.u[1]) \
                & (hgt > w.h[0]) & (hgt < w.h[1])
            if not bool(on.any()):
                continue
            fv = ((hgt - w.h[0]) / (w.h[1] - w.h[0])).clamp(0, 1)
            fu = ((p[:, other] - w.u[0]) / (w.u[1] - w.u[0])).clamp(0, 1)
            outside = _lerp(_vec(L.sky_horizon, p), _vec(L.sky_zenith, p), fv[:, None] ** 0.7)
            frame = (fu < 0.03) | (fu > 0.97) | (fv < 0.04) | (fv > 0.96) | ((fu - 0.5).abs() < 0.012)
            glass = (outside * 1.1).clamp(0, 1)
            col = torch.where((on & frame)[:, None], _vec((0.9, 0.9, 0.88), p), col)
            col = torch.where((on & ~frame)[:, None], torch.zeros_like(col), col)
            emission = torch.where((on & ~frame)[:, None], glass, emission)
        return col, emission

    # --- lighting ------------------------------------------------------------------------------
    def shade(self, p: Tensor, n: Tensor, v: Tensor, dist: Tensor, material: Tensor,
              color: Tensor) -> Tensor:
        """Colour (n, 3) of surface points p with normals n seen along unit directions v.

        dist: (n,) ray length from the camera (for fog); material: (n,) Material ids;
        color: (n, 3) base albedo of primitives.
        """
        L = self.lighting
        albedo = color * (0.8 + 0.4 * self._surface_noise(p, n, 0.7))[:, None]
        emission = torch.zeros_like(albedo)
        m = material
        sel = m == Material.TERRAIN
        if bool(sel.any()):
            albedo[sel] = self.terrain_albedo(p[sel], n[sel])
        sel = m == Material.STREET
        if bool(sel.any()):
            albedo[sel] = self.street_albedo(p[sel])
        sel = m == Material.BUILDING
        if bool(sel.any()):
            albedo[sel], emission[sel] = self.building_albedo(p[sel], n[sel], color[sel])
        sel = m == Material.ROOM
        if bool(sel.any()):
            albedo[sel], emission[sel] = self.room_albedo(p[sel], n[sel])
        sel = m == Material.LAMP
        if bool(sel.any()):
            emission[sel] = color[sel] * (0.6 + 0.4 * L.lamps)

        up = -n[:, 1]
        if self.scene.room is not None:
            light = self._indoor_light(p, n)
        else:
            s = _vec(sun_direction(L), p)
            sky_mean = 0.5 * (_vec(L.sky_zenith, p) + _vec(L.sky_horizon, p))
            direct = (n * s).sum(-1).clamp(min=0)
            if self.shadows is not None:
                on_ground = (m == Material.TERRAIN).to(p.dtype)
                amount = sample_plane(self.shadows[0], p[:, 0], p[:, 2], self.shadows[1])[:, 0]
                direct = direct * (1.0 - self.cfg.shadow_strength * amount * on_ground)
            light = _vec(L.sun_color, p) * direct[:, None] \
                + sky_mean * L.ambient * (0.6 + 0.4 * up)[:, None] * 1.6
        col = albedo * light + emission

        sel = m == Material.WATER
        if bool(sel.any()):
            col[sel] = self._water(p[sel], v[sel])
        if self.scene.room is None:
            col = self._fog(col, v, dist)
        return apply_palette(col.clamp(0, 1), self.scene.template.palette)

    def _indoor_light(self, p: Tensor, n: Tensor) -> Tensor:
        L, (lo, hi) = self.lighting, self.scene.room
        lamp = _vec(self.scene.lamp_position, p)
        to_lamp = lamp - p
        d2 = (to_lamp * to_lamp).sum(-1)
        lambert = ((n * to_lamp).sum(-1) / d2.sqrt().clamp_min(1e-6)).clamp(min=0)
        strength = 0.35 + 0.9 * L.lamps
        # the lamp shines mostly downward (a shade above it), so the ceiling does not glare
        downward = 0.2 + 0.8 * (-to_lamp[:, 1] / d2.sqrt().clamp_min(1e-6)).clamp(0, 1)
        lamp_light = _vec((1.0, 0.86, 0.68), p) * (strength * 2.5 * lambert * downward / (1.0 + d2))[:, None]
        window_dir = _vec((-1.0, -0.35, 0.0), p) / math.sqrt(1.0 + 0.35 ** 2)  # light enters through +x windows
        window_light = _vec(L.sun_color, p) * 0.45 * (n * -window_dir).sum(-1).clamp(min=0)[:, None]
        ambient = _vec(L.sky_horizon, p) * (0.25 + 0.45 * L.ambient)
        # corner darkening: distance to the nearest room plane other than the one hit
        dists = torch.stack([p[:, 0] - lo[0], hi[0] - p[:, 0], p[:, 1] - lo[1], hi[1] - p[:, 1],
                             p[:, 2] - lo[2], hi[2] - p[:, 2]], dim=-1).abs()
        dists = torch.where(dists < 1e-3, torch.full_like(dists, 1e3), dists)
        ao = 0.6 + 0.4 * _smoothstep(0.0, 0.7, dists.min(-1).values)
        return (ambient + window_light + lamp_light) * ao[:, None]

    def _water(self, p: Tensor, v: Tensor) -> Tensor:
        L, tpl = self.lighting, self.scene.template
        ripple_x = self._noise(p[:, 0] / 3.0 + 0.37, p[:, 2] / 1.5) - 0.5
        ripple_z = self._noise(p[:, 0] / 1.7, p[:, 2] / 3.1 + 0.61) - 0.5
        n = torch.stack([0.12 * ripple_x, -torch.ones_like(ripple_x), 0.12 * ripple_z], dim=-1)
        n = n / n.norm(dim=-1, keepdim=True)
        cos_i = (-(v * n).sum(-1)).clamp(0, 1)
        r = v + 2.0 * cos_i[:, None] * n
        r = r / r.norm(dim=-1, keepdim=True)
        r = torch.stack([r[:, 0], torch.minimum(r[:, 1], torch.full_like(r[:, 1], -0.01)), r[:, 2]], dim=-1)
        fresnel = (0.25 + 0.75 * (1.0 - cos_i) ** 5)[:, None]
        sky_mean = 0.5 * (_vec(L.sky_zenith, p) + _vec(L.sky_horizon, p))
        deep = _vec(tpl.water_color, p) * (sky_mean * L.ambient * 1.6 + _vec(L.sun_color, p) * 0.3)
        return _lerp(deep, self._sky(r), fresnel)

    def _fog(self, col: Tensor, v: Tensor, dist: Tensor) -> Tensor:
        """Blend toward the sky's colour at the horizon in the view direction."""
        cfg, L = self.cfg, self.lighting
        horizon_dir = torch.stack([v[:, 0], torch.zeros_like(v[:, 0]) - 0.02, v[:, 2]], dim=-1)
        horizon_dir = horizon_dir / horizon_dir.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        fog_col = self._sky(horizon_dir)
        amount = 1.0 - torch.exp(-L.fog_density * dist)
        z_frac = dist / cfg.sky_depth  # ray length ~ z-depth at the image centre; conservative elsewhere
        amount = torch.maximum(amount, _smoothstep(cfg.fog_full_fraction, 1.0, z_frac))
        return _lerp(col, fog_col, amount[:, None])
