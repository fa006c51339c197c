"""The PyTorch backend: EWA projection per camera + the tile compositor (CPU or any device)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...geometry.cameras import Cameras
from .config import RasterConfig, RasterOutput
from .projection import Projected, project_gaussians
from .tiles import composite_tiles

# (means2d, conics, opacities, values, depths, extents, width, height, config) -> (H, W, D)
Compositor = Callable[..., Tensor]


def rasterize_with(compositor: Compositor, means: Tensor, quats: Tensor, scales: Tensor,
                   opacities: Tensor, values: Tensor, cameras: Cameras,
                   config: RasterConfig, project_all: bool = False) -> RasterOutput:
    """Project the Gaussians into every camera and composite [values, z, 1] with ``compositor``.

    Shared by the tile backend and its brute-force twin so both see identical projections.
    Shapes as in ``backends.rasterize``. Only the Gaussians a camera can see are projected with
    autograd (``project_visible``); ``project_all=True`` is the slow twin that records every one.
    """
    w2cs = cameras.w2c
    project = _project_all if project_all else project_visible
    projections = [project(means, quats, scales, opacities, cameras.K[cam], w2cs[cam],
                           cameras.width, cameras.height, config) for cam in range(len(cameras))]
    # One (B, N, 2) tensor upstream of every composite, so its .grad (for densification) is whole.
    means2d = torch.stack([full for full, _, _ in projections])
    outs, depths, alphas = [], [], []
    visible = torch.zeros(len(cameras), means.shape[0], dtype=torch.bool, device=means.device)
    for cam, (_, keep, proj) in enumerate(projections):
        visible[cam, keep] = True
        z = proj.depths
        table = torch.cat([values[cam, keep], z[:, None], torch.ones_like(z)[:, None]], dim=-1)
        image = compositor(means2d[cam, keep], proj.conics, opacities[keep], table, z,
                           proj.extents, cameras.width, cameras.height, config)
        outs.append(image[..., :-2])
        depths.append(image[..., -2])
        alphas.append(image[..., -1])
    return RasterOutput(values=torch.stack(outs), depth=torch.stack(depths), alpha=torch.stack(alphas),
                        means2d=means2d, visible=visible)


def project_visible(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, K: Tensor,
                    w2c: Tensor, width: int, height: int, config: RasterConfig) -> tuple[Tensor, Tensor, Projected]:
    """Project N Gaussians into one camera, recording autograd only for the ones it sees.

    A first pass without autograd finds the visible ones; only those are projected again with
    it. A fitting step renders small patches (8 of 24 x 24 pixels by default), each seeing a few
    per cent of the scene, and recording every Gaussian's projection per patch was the fit's
    whole working set (issue 24: 0.7 GiB above the networks in a 512x512 `sd15-fast` run, a
    fourth of it with 2 patches a step). ``_project_all`` is its slow twin (the same values and
    gradients); without autograd (renders for exports and video) it is that one pass.

    Returns the (N, 2) centres of all in pixels (differentiable in the visible rows), the (M,)
    indices of the visible ones, and their projection (a ``Projected`` of M rows).
    """
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in (means, quats, scales, opacities)):
        return _project_all(means, quats, scales, opacities, K, w2c, width, height, config)
    with torch.no_grad():
        probe = project_gaussians(means, quats, scales, opacities, K, w2c, width, height, config)
    keep = probe.visible.nonzero().squeeze(1)
    proj = project_gaussians(means[keep], quats[keep], scales[keep], opacities[keep], K, w2c, width, height, config)
    full = probe.means2d.index_put((keep,), proj.means2d)      # differentiable in the visible rows
    return full, keep, proj


def _project_all(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, K: Tensor,
                 w2c: Tensor, width: int, height: int, config: RasterConfig) -> tuple[Tensor, Tensor, Projected]:
    """The slow twin of ``project_visible`` (the same returns): every Gaussian projected in one
    pass, with autograd when it is on."""
    proj = project_gaussians(means, quats, scales, opacities, K, w2c, width, height, config)
    keep = proj.visible.nonzero().squeeze(1)
    visible = Projected(means2d=proj.means2d[keep], depths=proj.depths[keep], cov2d=proj.cov2d[keep],
                        conics=proj.conics[keep], extents=proj.extents[keep], visible=proj.visible[keep])
    return proj.means2d, keep, visible


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                    values: Tensor, cameras: Cameras, config: RasterConfig) -> RasterOutput:
    """Our differentiable tile rasterizer (the reference backend). Shapes as in ``rasterize``."""
    return rasterize_with(composite_tiles, means, quats, scales, opacities, values, cameras, config)
