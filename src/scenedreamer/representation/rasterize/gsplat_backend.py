"""The CUDA backend: gsplat's fused kernels, behind the same contract as the torch backend.

gsplat is imported lazily (only when this backend runs), so the package imports without it.
gsplat follows the same conventions we do: OpenCV camera axes, ``viewmats`` = world-to-camera,
wxyz quaternions, pixel centres at (j + 0.5, i + 0.5), alpha clamped to 0.99 and dropped below
1/255, compositing stopped at transmittance 1e-4; its "RGB+D" mode appends the accumulated
z-depth sum_i w_i z_i, which is our ``RasterOutput.depth``.
"""

from __future__ import annotations

import importlib.util

from torch import Tensor

from ...geometry.cameras import Cameras
from .config import RasterConfig, RasterOutput


def gsplat_available() -> bool:
    """True when the gsplat package can be imported (it is not imported here)."""
    return importlib.util.find_spec("gsplat") is not None


def rasterize_gsplat(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                     values: Tensor, cameras: Cameras, config: RasterConfig) -> RasterOutput:
    """gsplat.rasterization with our inputs/outputs. Shapes as in ``backends.rasterize``."""
    from gsplat import rasterization  # lazy: CUDA-only dependency

    colors, alphas, info = rasterization(
        means=means, quats=quats, scales=scales, opacities=opacities, colors=values,
        viewmats=cameras.w2c, Ks=cameras.K, width=cameras.width, height=cameras.height,
        near_plane=config.near_plane, far_plane=config.far_plane, eps2d=config.blur_2d,
        tile_size=config.tile_size, render_mode="RGB+D", packed=False, sh_degree=None,
        rasterize_mode="classic")
    radii = info["radii"]                                    # (B, N) or (B, N, 2) by version
    visible = (radii.reshape(radii.shape[0], radii.shape[1], -1) > 0).any(-1)
    return RasterOutput(values=colors[..., :-1], depth=colors[..., -1], alpha=alphas[..., 0],
                        means2d=info["means2d"], visible=visible)
