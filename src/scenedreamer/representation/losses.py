"""Losses of the fitting loop: colour (L1 + SSIM), depth, and the usual image metrics.

Images are (B, H, W, 3) in [0, 1]; per-pixel weights (B, H, W) >= 0 (0 = ignore) let the caller
down-weight inpainted pixels and skip unknown ones. Every weighted mean divides by the weight sum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """sum(values * weights) / sum(weights), 0 when all weights are 0. Shapes broadcast."""
    w = weights.expand_as(values) if weights.shape != values.shape else weights
    return (values * w).sum() / w.sum().clamp_min(1e-8)


def l1_colour_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean absolute colour error. pred, target (B, H, W, 3); weights (B, H, W)."""
    return weighted_mean((pred - target).abs().mean(dim=-1), weights)


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(pred: Tensor, target: Tensor, window: int = 7, sigma: float = 1.5) -> Tensor:
    """Per-pixel SSIM (B, H', W') of two (B, H, W, 3) images in [0, 1], channels averaged.

    Gaussian window, 'valid' convolution: H' = H - window + 1 (the map is for the window centres).
    Constants C1 = 0.01^2, C2 = 0.03^2 (Wang et al. 2004, data range 1).
    """
    if pred.shape[1] < window or pred.shape[2] < window:
        raise ValueError(f"ssim_map: images {tuple(pred.shape[1:3])} are smaller than the window {window}")
    x = pred.permute(0, 3, 1, 2)
    y = target.permute(0, 3, 1, 2)
    c = x.shape[1]
    g = _gaussian_window(window, sigma, x.device, x.dtype)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, per channel
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean(dim=1)


def ssim_loss(pred: Tensor, target: Tensor, weights: Tensor, window: int = 7) -> Tensor:
    """Weighted mean of (1 - SSIM); a window's weight is the weight of its centre pixel."""
    s = ssim_map(pred, target, window)
    half = window // 2
    w = weights[:, half:half + s.shape[1], half:half + s.shape[2]]
    return weighted_mean(1.0 - s, w)


def depth_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Relative L1 depth error |pred - target| / target on pixels with target > 0 and weight > 0.

    Relative, so near and far surfaces of an unbounded scene count alike. (B, H, W) each.
    """
    known = target > 0
    rel = (pred - target).abs() / torch.where(known, target, torch.ones_like(target))
    return weighted_mean(rel, weights * known)


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (optionally over mask (B, H, W))."""
    se = (pred.detach().float() - target.detach().float()).square().mean(dim=-1)
    mse = float(se.mean()) if mask is None else float(se[mask].mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))
