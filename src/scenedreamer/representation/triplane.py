"""Tri-plane feature NeRF in pure PyTorch (CPU and CUDA).

A world point p is normalised, x = (p - center) / radius, contracted (mip-NeRF 360 style; identity
inside the unit ball, infinity -> radius 2) and scaled to [-1, 1]^3. Three axis-aligned feature
planes (xy, xz, yz) of shape (C, R, R) are sampled bilinearly at its projections - all three in ONE
``grid_sample`` call on the stacked planes - and the three C-vectors are summed (or concatenated).
A small MLP decodes them into density, colour and a feature vector (the "3D features" the
refinement adapter consumes). Rendering is volume rendering along camera rays (volume_rendering.py)
with depth-guided sampling (sampling.py), in chunks of rays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry.cameras import Cameras, camera_rays
from .base import RenderOutput, SceneRepresentation
from .sampling import contract
from .volume_rendering import RayRender, render_rays
from .config import TriplaneConfig

# The three planes and the two world axes each one spans, in the order they are stacked.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


@dataclass(frozen=True)
class SceneBounds:
    """Centre and radius (scene units) of the region the support views look at."""

    center: tuple[float, float, float]
    radius: float


def bounds_from_views(views: list, quantile: float = TriplaneConfig.bounds_quantile,
                      margin: float = TriplaneConfig.bounds_margin,
                      max_points_per_view: int = 4096, camera_centres: Tensor | None = None) -> SceneBounds:
    """Scene centre/radius (scene units) from support views' cameras and depth.

    views: ViewRecords (depth (H, W) z-depth, valid (H, W), K, c2w). camera_centres: optional
    (N, 3) world positions of cameras still to come (e.g. the whole trajectory), so the inner
    region is placed where the cameras will be.
    The centre is the median of the camera centres (as in mip-NeRF 360: the cameras look out at
    the scene; a median of surface points would be dragged toward far backgrounds and sky). The
    radius is the ``quantile`` of the surface points' (and cameras') distances to it times
    ``margin``; cameras outside it are fine (contraction covers all space). A low quantile is
    deliberate: grazing ground planes,
    distant backgrounds and sky belong in the contracted region, while the inner region's plane
    resolution should go to the content near the cameras.
    At most ``max_points_per_view`` evenly spaced surface points per view are used.
    """
    from ..geometry.projection import unproject_depth

    if not views:
        raise ValueError("bounds_from_views: no views given")
    pts, cams = [], [v.c2w[None, :3, 3].float() for v in views]
    if camera_centres is not None:
        cams.append(camera_centres.reshape(-1, 3).float().cpu())
    for v in views:
        known = v.valid & (v.depth > 0)
        world = unproject_depth(v.depth[None].float(), v.camera.to(dtype=torch.float32))[0][known]
        if world.shape[0] > max_points_per_view:
            world = world[torch.linspace(0, world.shape[0] - 1, max_points_per_view).long()]
        pts.append(world)
    cams = torch.cat(cams)
    center = cams.median(dim=0).values
    allpts = torch.cat(pts + [cams])
    radius = float(torch.quantile((allpts - center).norm(dim=-1), quantile)) * margin
    return SceneBounds(center=tuple(float(c) for c in center), radius=max(radius, 1e-3))


class TriplaneField(nn.Module):
    """Planes + MLP: world points (N, 3) -> density (N,), colour (N, 3), features (N, F)."""

    def __init__(self, config: TriplaneConfig, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        c, r = config.channels, config.resolution
        planes = torch.randn((3, c, r, r), generator=generator, dtype=dtype) * config.plane_init_std
        self.planes = nn.Parameter(planes.to(device))
        in_dim = c if config.combine == "sum" else 3 * c
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden_width), nn.ReLU(inplace=True)]
            width = config.hidden_width
        layers.append(nn.Linear(width, 1 + 3 + config.feature_dim))
        self.mlp = nn.Sequential(*layers).to(device=device, dtype=dtype)
        if generator is not None:  # deterministic MLP init from the same generator
            with torch.no_grad():
                for p in self.mlp.parameters():
                    bound = 1.0 / math.sqrt(p.shape[-1]) if p.ndim > 1 else 0.05
                    p.copy_((torch.rand(p.shape, generator=generator, dtype=dtype) * 2 - 1) * bound)
        self.register_buffer("center", torch.tensor(config.center, device=device, dtype=dtype),
                             persistent=False)

    def plane_coordinates(self, points: Tensor) -> Tensor:
        """World points (N, 3) -> plane coordinates (N, 3) in [-1, 1] (normalise, contract, scale)."""
        x = (points - self.center) / self.config.radius
        if self.config.contraction:
            return contract(x, self.config.contraction_norm) / 2.0
        return x.clamp(-1.0, 1.0)

    def plane_features(self, coords: Tensor) -> Tensor:
        """(N, 3) coordinates in [-1, 1] -> (N, C) summed or (N, 3C) concatenated plane features."""
        # One grid_sample on the stacked planes: grid (3, 1, N, 2) holds each plane's 2D projection.
        grid = torch.stack([coords[:, [a, b]] for a, b in PLANE_AXES]).unsqueeze(1)  # (3, 1, N, 2)
        sampled = F.grid_sample(self.planes, grid, mode="bilinear", padding_mode="border",
                                align_corners=False)                        # (3, C, 1, N)
        sampled = sampled.squeeze(2)                                         # (3, C, N)
        if self.config.combine == "sum":
            return sampled.sum(dim=0).transpose(0, 1)                        # (N, C)
        return sampled.permute(2, 0, 1).reshape(coords.shape[0], -1)        # (N, 3C)

    def plane_features_reference(self, coords: Tensor) -> Tensor:
        """Slow, obviously-correct twin of ``plane_features``: explicit bilinear interpolation per plane."""
        r = self.config.resolution
        feats = []
        for p, (a, b) in enumerate(PLANE_AXES):
            plane = self.planes[p]                                           # (C, R, R): rows = axis b
            # align_corners=False: texel k has centre at -1 + (2k + 1) / R.
            u = ((coords[:, a] + 1.0) * r - 1.0) / 2.0                       # column coordinate
            v = ((coords[:, b] + 1.0) * r - 1.0) / 2.0                       # row coordinate
            u = u.clamp(0, r - 1)
            v = v.clamp(0, r - 1)
            u0, v0 = u.floor().long().clamp(0, r - 1), v.floor().long().clamp(0, r - 1)
            u1, v1 = (u0 + 1).clamp(max=r - 1), (v0 + 1).clamp(max=r - 1)
            fu, fv = (u - u0), (v - v0)
            f = (plane[:, v0, u0] * (1 - fu) * (1 - fv) + plane[:, v0, u1] * fu * (1 - fv)
                 + plane[:, v1, u0] * (1 - fu) * fv + plane[:, v1, u1] * fu * fv)
            feats.append(f.t())
        if self.config.combine == "sum":
            return feats[0] + feats[1] + feats[2]
        return torch.cat(feats, dim=-1)

    def decode(self, feats: Tensor, radius: float) -> tuple[Tensor, Tensor, Tensor]:
        """Plane features (N, in) -> density per scene unit (N,), colour (N, 3), features (N, F)."""
        out = self.mlp(feats)
        # Density is learned per scene RADIUS so the same init works at any scene scale.
        density = F.softplus(out[:, 0] + self.config.density_bias) / radius
        colour = torch.sigmoid(out[:, 1:4])
        return density, colour, out[:, 4:]

    def forward(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.decode(self.plane_features(self.plane_coordinates(points)), self.config.radius)


class TriplaneNeRF(SceneRepresentation):
    """The default scene representation: a tri-plane feature field rendered by volume rendering."""

    kind = "triplane_nerf"
    config_class = TriplaneConfig

    def __init__(self, config: TriplaneConfig, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.feature_dim = config.feature_dim
        generator = torch.Generator().manual_seed(seed)
        self.field = TriplaneField(config, device=device, dtype=dtype, generator=generator)
        # Sample jitter during training; explicit so the same seed gives the same fit.
        self.sample_generator: torch.Generator | None = None
        # Rendering is deterministic unless a fitting loop switches to train mode (and back).
        self.eval()

    @classmethod
    def from_config(cls, config: TriplaneConfig, device: torch.device | str | None = None) -> "TriplaneNeRF":
        """Build a fresh representation (the checkpoint loader uses this, then loads the state)."""
        return cls(config, device=device)

    @property
    def device(self) -> torch.device:
        return self.field.planes.device

    def param_groups(self) -> list[dict]:
        return [{"params": [self.field.planes], "lr": self.config.lr_planes, "name": "planes"},
                {"params": list(self.field.mlp.parameters()), "lr": self.config.lr_mlp, "name": "mlp"}]

    def render_rays(self, origins: Tensor, directions: Tensor, depth_hint: Tensor | None = None,
                    background: Tensor | None = None, with_losses: bool = False) -> RayRender:
        """Render R rays (origins, directions (R, 3) world, directions with camera z = 1).

        In training mode (``self.training``) samples are jittered with ``self.sample_generator``;
        in eval mode they are deterministic and use the ``eval_*`` sample counts.
        """
        sampling = self.config.sampling
        if not self.training:  # novel views: no hint, no gradients -> afford more samples
            sampling = replace(sampling, stratified_bins=sampling.eval_stratified_bins,
                               guided_edges=sampling.eval_guided_edges)
        return render_rays(origins, directions, self.field, sampling, self.config.radius,
                           depth_hint=depth_hint, background=background,
                           generator=self.sample_generator, jitter=self.training,
                           with_losses=with_losses)

    def render(self, cameras: Cameras, background: Tensor | None = None,
               depth_hint: Tensor | None = None) -> RenderOutput:
        """See SceneRepresentation.render. Rays are processed in chunks of
        ``config.sampling.render_chunk_rays``: under ``torch.no_grad()`` memory stays bounded for
        large images (with gradients the autograd graph of every chunk is kept, as it must be)."""
        return self._render(cameras, background, depth_hint, with_losses=False)[0]

    def render_with_extras(self, cameras: Cameras, background: Tensor | None = None,
                           depth_hint: Tensor | None = None) -> tuple[RenderOutput, dict[str, Tensor]]:
        """render() plus per-pixel regularisers (B, H, W): "distortion" (mip-NeRF 360) and
        "free_space" (weight in front of the hinted depth; 0 where no hint)."""
        return self._render(cameras, background, depth_hint, with_losses=True)

    def _render(self, cameras: Cameras, background: Tensor | None, depth_hint: Tensor | None,
                with_losses: bool) -> tuple[RenderOutput, dict[str, Tensor]]:
        B, H, W = len(cameras), cameras.height, cameras.width
        dtype = self.field.planes.dtype
        origins, dirs = camera_rays(cameras.to(device=self.device, dtype=dtype))
        origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
        hint = None
        if depth_hint is not None:
            if depth_hint.shape != (B, H, W):
                raise ValueError(f"depth_hint {tuple(depth_hint.shape)} does not match cameras ({B}, {H}, {W})")
            hint = depth_hint.to(device=self.device, dtype=dtype).reshape(-1)
        chunk = self.config.sampling.render_chunk_rays
        parts = []
        for start in range(0, origins.shape[0], chunk):
            sl = slice(start, start + chunk)
            parts.append(self.render_rays(origins[sl], dirs[sl], None if hint is None else hint[sl],
                                          background, with_losses))
        cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
        F_ = self.feature_dim
        out = RenderOutput(rgb=cat("rgb").reshape(B, H, W, 3), depth=cat("depth").reshape(B, H, W),
                           opacity=cat("opacity").reshape(B, H, W),
                           features=cat("features").reshape(B, H, W, F_))
        return out, {"distortion": cat("distortion").reshape(B, H, W),
                     "free_space": cat("free_space").reshape(B, H, W)}

    def total_variation(self) -> Tensor:
        """Mean squared difference of neighbouring texels over all planes (a scalar)."""
        p = self.field.planes
        return (p[:, :, 1:, :] - p[:, :, :-1, :]).square().mean() + (p[:, :, :, 1:] - p[:, :, :, :-1]).square().mean()
