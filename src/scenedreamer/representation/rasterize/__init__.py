"""Rasterizing 3D Gaussians: EWA projection, a differentiable PyTorch tile rasterizer (CPU and the
reference), its brute-force twin, and gsplat on CUDA, behind one ``rasterize`` call."""

from ...lazy_exports import lazy_exports

__all__ = ["RasterConfig", "RasterOutput", "Projected", "rasterize", "rasterize_torch",
           "rasterize_reference", "select_backend", "project_gaussians", "covariance_3d",
           "quat_to_rotmat", "eval_sh", "num_sh_bases", "rgb_to_sh0", "sh0_to_rgb", "SH_C0"]

_HOMES = {
    "rasterize": ".backends", "select_backend": ".backends", "RasterConfig": ".config",
    "RasterOutput": ".config", "Projected": ".projection", "covariance_3d": ".projection",
    "project_gaussians": ".projection", "quat_to_rotmat": ".projection", "rasterize_reference": ".reference",
    "SH_C0": ".sh", "eval_sh": ".sh", "num_sh_bases": ".sh", "rgb_to_sh0": ".sh", "sh0_to_rgb": ".sh",
    "rasterize_torch": ".torch_backend",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
