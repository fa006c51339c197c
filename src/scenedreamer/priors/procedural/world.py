"""The procedural world: an analytic scene chosen by the prompt, rendered by ray casting with
exact depth from any camera. It is the offline stand-in for the generative priors and the
ground truth for accuracy measurements.

World frame: OpenCV-like, as the cameras: camera 0 at the origin looking +z, world "up" is -y,
the ground (floor) is the plane y = +ground_height (terrain varies around it). Sky pixels get
the finite depth ``sky_depth``; so does any surface farther than it (fog hides the cut).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import InternalError, UserInputError
from ...geometry.cameras import Cameras, camera_rays
from .config import ProceduralWorldConfig
from .noise import fbm_grid
from .primitives import screen_rects
from .scene import Material, Scene, Terrain, build_scene
from .shading import Shader
from .shadows import bake_shadow_map
from .trace import trace
from .vocabulary import SceneChoice, parse_prompt


@dataclass(frozen=True)
class WorldRender:
    """Renders of B cameras at (H, W).

    rgb: (B, H, W, 3) float32 in [0, 1].
    depth: (B, H, W) float32 z-depth (camera frame, scene units); sky pixels = config.sky_depth.
    sky: (B, H, W) bool, True where the ray met no surface nearer than sky_depth.
    material: (B, H, W) int64 scene.Material ids (for tests and diagnostics).
    """

    rgb: Tensor
    depth: Tensor
    sky: Tensor
    material: Tensor


class ProceduralWorld:
    """A deterministic analytic scene built from (prompt, seed); ``render`` ray-casts it."""

    def __init__(self, choice: SceneChoice, seed: int, config: ProceduralWorldConfig | None = None,
                 prompt: str = "") -> None:
        self.config = config or ProceduralWorldConfig()
        self.choice, self.seed, self.prompt = choice, int(seed), prompt
        gen = torch.Generator().manual_seed(self.seed)
        self.scene: Scene = build_scene(choice.template, self.config, gen)
        res = self.config.texture_resolution
        detail = fbm_grid(res, 8, 4, gen, periodic=True)[None]
        clouds = fbm_grid(res, 4, 5, gen, periodic=True)[None]
        self._cpu_textures = (detail, clouds)
        self._cpu_shadows = (bake_shadow_map(self.scene, choice.lighting, self.config)
                             if self.config.shadow_map_resolution > 0 else None)
        self._per_device: dict[str, tuple[Terrain | None, Shader]] = {}
        self._last: tuple[tuple, WorldRender] | None = None

    @classmethod
    def from_prompt(cls, prompt: str, seed: int, config: ProceduralWorldConfig | None = None
                    ) -> "ProceduralWorld":
        """The world that the words of ``prompt`` select (see vocabulary.py), seeded by ``seed``."""
        if not isinstance(prompt, str):
            raise UserInputError(f"procedural world: prompt must be a string, got {type(prompt).__name__}")
        return cls(parse_prompt(prompt), seed, config, prompt)

    @property
    def template_name(self) -> str:
        return self.choice.template.name

    @property
    def lighting_name(self) -> str:
        return self.choice.lighting.name

    def _on(self, device: torch.device) -> tuple[Terrain | None, Shader]:
        key = str(device)
        if key not in self._per_device:
            terrain = self.scene.terrain.to(device) if self.scene.terrain is not None else None
            detail, clouds = (t.to(device) for t in self._cpu_textures)
            shadows = None if self._cpu_shadows is None else (self._cpu_shadows[0].to(device), self._cpu_shadows[1])
            self._per_device[key] = (terrain, Shader(self.scene, self.choice.lighting, detail, clouds,
                                                     self.config, self.seed, shadows))
        return self._per_device[key]

    def render_cached(self, cameras: Cameras) -> WorldRender:
        """``render`` that remembers its last result: the oracles ask for the same camera in turn."""
        key = (cameras.width, cameras.height, str(cameras.device), tuple(cameras.K.reshape(-1).tolist()),
               tuple(cameras.c2w.reshape(-1).tolist()))
        if self._last is None or self._last[0] != key:
            self._last = (key, self.render(cameras))
        return self._last[1]

    def render(self, cameras: Cameras) -> WorldRender:
        """Colour and exact z-depth of every pixel centre of every camera (on cameras.device)."""
        if not isinstance(cameras, Cameras):
            raise InternalError(f"procedural world: cameras must be a Cameras batch, got {type(cameras).__name__}")
        ss = self.config.antialias
        if ss == 1:
            return self._render(cameras.to(dtype=torch.float32))
        # ss x ss samples per pixel; with odd ss the middle sample sits exactly at the pixel centre
        fine = self._render(cameras.to(dtype=torch.float32).scaled(cameras.width * ss, cameras.height * ss))
        B, H, W = len(cameras), cameras.height, cameras.width
        rgb = fine.rgb.view(B, H, ss, W, ss, 3).mean(dim=(2, 4))
        mid = ss // 2
        return WorldRender(rgb, fine.depth[:, mid::ss, mid::ss].contiguous(), fine.sky[:, mid::ss, mid::ss].contiguous(),
                           fine.material[:, mid::ss, mid::ss].contiguous())

    def _render(self, cams: Cameras) -> WorldRender:
        cfg = self.config
        terrain, shader = self._on(cams.device)
        origins, dirs = camera_rays(cams)                                   # (B, H, W, 3), z_cam = 1
        rects = screen_rects(list(self.scene.primitives), cams, cfg.near, cfg.sky_depth)
        rgbs, depths, skies, mats = [], [], [], []
        for b in range(len(cams)):
            hits = trace(self.scene, terrain, origins[b], dirs[b], rects[b], cfg)
            sky = ~(hits.t <= cfg.sky_depth)                                # inf or beyond the far limit
            depth = torch.where(sky, torch.full_like(hits.t, cfg.sky_depth), hits.t)
            d = dirs[b].reshape(-1, 3)
            v = d / d.norm(dim=-1, keepdim=True)
            rgb = torch.empty_like(d)
            sky_flat = sky.reshape(-1)
            rgb[sky_flat] = shader.sky(v[sky_flat])
            surf = ~sky_flat
            if bool(surf.any()):
                t = depth.reshape(-1)[surf]
                p = origins[b].reshape(-1, 3)[surf] + t[:, None] * d[surf]
                dist = t * d[surf].norm(dim=-1)
                rgb[surf] = shader.shade(p, hits.normal.reshape(-1, 3)[surf], v[surf], dist,
                                         hits.material.reshape(-1)[surf], hits.color.reshape(-1, 3)[surf])
            material = torch.where(sky, torch.full_like(hits.material, int(Material.SKY)), hits.material)
            rgbs.append(rgb.view(cams.height, cams.width, 3))
            depths.append(depth)
            skies.append(sky)
            mats.append(material)
        return WorldRender(torch.stack(rgbs).clamp(0, 1), torch.stack(depths), torch.stack(skies),
                           torch.stack(mats))
