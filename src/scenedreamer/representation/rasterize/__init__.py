"""Rasterizing 3D Gaussians: EWA projection, a differentiable PyTorch tile rasterizer (CPU and the
reference), its brute-force twin, and gsplat on CUDA, behind one ``rasterize`` call."""

from .backends import rasterize, select_backend
from .config import RasterConfig, RasterOutput
from .projection import Projected, covariance_3d, project_gaussians, quat_to_rotmat
from .reference import rasterize_reference
from .sh import SH_C0, eval_sh, num_sh_bases, rgb_to_sh0, sh0_to_rgb
from .torch_backend import rasterize_torch

__all__ = ["RasterConfig", "RasterOutput", "Projected", "rasterize", "rasterize_torch",
           "rasterize_reference", "select_backend", "project_gaussians", "covariance_3d",
           "quat_to_rotmat", "eval_sh", "num_sh_bases", "rgb_to_sh0", "sh0_to_rgb", "SH_C0"]
