"""Settings shared by every rasterizer backend, and the backends' common output type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:                   # annotations only: the config must import without torch
    from torch import Tensor

BackendName = Literal["auto", "torch", "gsplat"]


@dataclass(frozen=True)
class RasterConfig:
    """How 3D Gaussians become pixels (EWA splatting + front-to-back alpha compositing)."""

    backend: BackendName = "auto"
    """"auto": gsplat on CUDA when installed, else our PyTorch tile rasterizer; or force one."""
    tile_size: int = 8
    """Side of the square screen tiles (pixels) that Gaussians are binned into. 8 beat 16 on CPU
    (less wasted pixel x Gaussian work per tile; 4 made binning dominate); gsplat wants 16."""
    near_plane: float = 0.01
    """Gaussians whose centre has camera z-depth below this (scene units) are culled."""
    far_plane: float = 1e10
    """Gaussians whose centre is beyond this z-depth (scene units) are culled."""
    blur_2d: float = 0.3
    """Added to the diagonal of every 2D covariance (pixels^2): low-pass filter, as in 3DGS."""
    alpha_min: float = 1.0 / 255.0
    """A Gaussian's alpha at a pixel below this is treated as 0 (and bounds its screen extent)."""
    alpha_max: float = 0.99
    """Alpha is clamped to this so transmittance never reaches exactly 0."""
    transmittance_min: float = 1e-4
    """A pixel stops compositing once the transmittance in front of a Gaussian drops below this."""
    fov_clamp: float = 1.3
    """The EWA Jacobian uses x/z, y/z clamped to this multiple of the half field of view."""
    batch_elements: int = 1 << 21
    """Work size of one tile batch (tiles x pixels x Gaussians per tile); bounds the memory."""
    depth_chunk: int = 64
    """Forward pass walks each tile's depth-sorted list in chunks of this many Gaussians and
    stops once every pixel of the batch is opaque (early termination)."""


@dataclass(frozen=True)
class RasterOutput:
    """What a backend returns for B cameras at (H, W).

    values: (B, H, W, C) alpha-composited per-Gaussian values (colour, features, ...).
    depth: (B, H, W) accumulated z-depth sum_i w_i z_i (camera frame, scene units); divide by
        ``alpha`` for the expected depth of the visible surface.
    alpha: (B, H, W) accumulated opacity sum_i w_i = 1 - final transmittance.
    means2d: (B, N, 2) projected centres in pixels (u, v); retain its grad for densification.
    visible: (B, N) bool, the Gaussian touched at least one tile of that camera.
    """

    values: Tensor
    depth: Tensor
    alpha: Tensor
    means2d: Tensor
    visible: Tensor
