"""Backend selection: gsplat on CUDA when installed, our PyTorch tile rasterizer otherwise."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ...errors import UserInputError
from ...geometry.cameras import Cameras
from .config import RasterConfig, RasterOutput
from .gsplat_backend import gsplat_available, rasterize_gsplat
from .torch_backend import rasterize_torch

_warned_missing_gsplat = False


def select_backend(requested: str, device: torch.device) -> str:
    """The backend that will run: "torch" or "gsplat".

    "auto" picks gsplat on a CUDA device when it is installed; on CUDA without gsplat it falls
    back to the torch rasterizer with a one-line warning (once per process).
    """
    global _warned_missing_gsplat
    if requested == "torch":
        return "torch"
    if requested == "gsplat":
        if device.type != "cuda":
            raise UserInputError(f"rasterizer backend 'gsplat' needs a CUDA device, got {device}")
        if not gsplat_available():
            raise UserInputError("rasterizer backend 'gsplat' requested but gsplat is not installed "
                                 "(pip install gsplat, or use backend 'auto'/'torch')")
        return "gsplat"
    if requested != "auto":
        raise UserInputError(f"unknown rasterizer backend {requested!r}; use 'auto', 'torch' or 'gsplat'")
    if device.type != "cuda":
        return "torch"
    if gsplat_available():
        return "gsplat"
    if not _warned_missing_gsplat:
        warnings.warn("gsplat is not installed: rendering Gaussians on CUDA with the slower PyTorch "
                      "tile rasterizer (pip install gsplat for speed)", RuntimeWarning, stacklevel=3)
        _warned_missing_gsplat = True
    return "torch"


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, values: Tensor,
              cameras: Cameras, config: RasterConfig) -> RasterOutput:
    """Render N 3D Gaussians into B cameras.

    means (N, 3) world (OpenCV-style world, as everywhere); quats (N, 4) wxyz (normalised here);
    scales (N, 3) standard deviations in scene units (already exp-activated); opacities (N,) in
    (0, 1) (sigmoid-activated); values (B, N, C) per-camera values to composite (colour already
    evaluated for that camera's view directions, features, ...). Differentiable in all of them.
    Returns RasterOutput (values (B,H,W,C), accumulated depth, alpha, means2d, visible).
    """
    if values.ndim != 3 or values.shape[:2] != (len(cameras), means.shape[0]):
        raise ValueError(f"rasterize: values must be (B={len(cameras)}, N={means.shape[0]}, C), "
                         f"got {tuple(values.shape)}")
    backend = select_backend(config.backend, means.device)
    if backend == "gsplat":
        return rasterize_gsplat(means, quats, scales, opacities, values, cameras, config)
    return rasterize_torch(means, quats, scales, opacities, values, cameras, config)
