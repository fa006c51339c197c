"""Brute-force twin of the tile rasterizer: every pixel walks every Gaussian in depth order.

Slow (O(pixels x Gaussians), one Python step per Gaussian) and obviously correct; plain autograd
gives its gradients. Tests compare the tile rasterizer's values AND gradients against it. The
compositing rule is the one written at the top of ``tiles.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...geometry.cameras import Cameras, pixel_grid
from .config import RasterConfig, RasterOutput
from .torch_backend import rasterize_with


def composite_reference(means2d: Tensor, conics: Tensor, opacities: Tensor, values: Tensor,
                        depths: Tensor, width: int, height: int, config: RasterConfig) -> Tensor:
    """(H, W, D) = sum_i w_i values_i, same inputs and rule as ``tiles.composite_tiles``.

    means2d (M, 2) pixels; conics (M, 3) (a, b, c); opacities (M,); values (M, D); depths (M,).
    """
    pix = pixel_grid(height, width, device=means2d.device, dtype=means2d.dtype).reshape(-1, 2)
    trans = means2d.new_ones(pix.shape[0])
    out = values.new_zeros(pix.shape[0], values.shape[1])
    for i in torch.argsort(depths.detach(), stable=True).tolist():
        dx = pix[:, 0] - means2d[i, 0]
        dy = pix[:, 1] - means2d[i, 1]
        a, b, c = conics[i]
        q = a * dx * dx + 2 * b * dx * dy + c * dy * dy
        alpha = torch.clamp_max(opacities[i] * torch.exp(-0.5 * q), config.alpha_max)
        alpha = torch.where(alpha > config.alpha_min, alpha, torch.zeros_like(alpha))
        weight = torch.where(trans > config.transmittance_min, alpha * trans, torch.zeros_like(alpha))
        out = out + weight[:, None] * values[i]
        trans = trans * (1.0 - alpha)
    return out.reshape(height, width, -1)


def rasterize_reference(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                        values: Tensor, cameras: Cameras, config: RasterConfig) -> RasterOutput:
    """Same contract as ``backends.rasterize`` (see there), with the brute-force compositor."""
    return rasterize_with(composite_reference_from_projection, means, quats, scales, opacities,
                           values, cameras, config)


def composite_reference_from_projection(means2d, conics, opacities, values, depths, extents,
                                        width, height, config):
    """Adapter with the tile compositor's signature (extents are not needed here)."""
    return composite_reference(means2d, conics, opacities, values, depths, width, height, config)

