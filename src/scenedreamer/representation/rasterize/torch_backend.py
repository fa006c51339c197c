"""The PyTorch backend: EWA projection per camera + the tile compositor (CPU or any device)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...geometry.cameras import Cameras
from .config import RasterConfig, RasterOutput
from .projection import project_gaussians
from .tiles import composite_tiles

# (means2d, conics, opacities, values, depths, extents, width, height, config) -> (H, W, D)
Compositor = Callable[..., Tensor]


def rasterize_with(compositor: Compositor, means: Tensor, quats: Tensor, scales: Tensor,
                   opacities: Tensor, values: Tensor, cameras: Cameras,
                   config: RasterConfig) -> RasterOutput:
    """Project the Gaussians into every camera and composite [values, z, 1] with ``compositor``.

    Shared by the tile backend and its brute-force twin so both see identical projections.
    Shapes as in ``backends.rasterize``.
    """
    w2cs = cameras.w2c
    projections = [project_gaussians(means, quats, scales, opacities, cameras.K[cam], w2cs[cam],
                                     cameras.width, cameras.height, config)
                   for cam in range(len(cameras))]
    # One (B, N, 2) tensor upstream of every composite, so its .grad (for densification) is whole.
    means2d = torch.stack([p.means2d for p in projections])
    outs, depths, alphas = [], [], []
    for cam, proj in enumerate(projections):
        keep = proj.visible.nonzero().squeeze(1)
        z = proj.depths[keep]
        table = torch.cat([values[cam, keep], z[:, None], torch.ones_like(z)[:, None]], dim=-1)
        image = compositor(means2d[cam, keep], proj.conics[keep], opacities[keep], table, z,
                           proj.extents[keep], cameras.width, cameras.height, config)
        outs.append(image[..., :-2])
        depths.append(image[..., -2])
        alphas.append(image[..., -1])
    return RasterOutput(values=torch.stack(outs), depth=torch.stack(depths), alpha=torch.stack(alphas),
                        means2d=means2d, visible=torch.stack([p.visible for p in projections]))


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                    values: Tensor, cameras: Cameras, config: RasterConfig) -> RasterOutput:
    """Our differentiable tile rasterizer (the reference backend). Shapes as in ``rasterize``."""
    return rasterize_with(composite_tiles, means, quats, scales, opacities, values, cameras, config)
