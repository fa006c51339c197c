"""Bake any SceneRepresentation (e.g. the tri-plane NeRF) into 3D Gaussians.

Render colour, depth and opacity from many cameras, keep pixels that are clearly on a surface,
lift them to world points, merge points that fall into the same voxel (many views see the same
surface), and put one isotropic Gaussian per voxel. The result exports as a standard 3DGS PLY.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..geometry.projection import unproject_depth
from .base import SceneRepresentation
from .gaussians import GaussianConfig, GaussianScene, depth_normals, surfel_shape
from .config import BakeConfig


@dataclass(frozen=True)
class SurfaceSamples:
    """Points lifted from renders: world positions (M,3), colours (M,3), features (M,F),
    pixel footprints (M,) in scene units, surface normals (M,3) facing the camera that saw them
    (camera-facing where unknown), unit view rays (M,3)."""

    points: Tensor
    rgb: Tensor
    features: Tensor
    footprint: Tensor
    normals: Tensor
    view_dirs: Tensor


def sample_surface(representation: SceneRepresentation, cameras: Cameras, config: BakeConfig,
                   on_event: EventSink | None = None) -> SurfaceSamples:
    """Render every camera (no grad) and lift its confident pixels to world points.

    Renders are composited on black, so colour and features are divided by opacity to get the
    surface's own values; depth is the representation's expected z-depth.
    """
    pts, cols, feats, foots, norms, views = [], [], [], [], [], []
    # Every stride-th pixel per axis = the same cameras at 1/stride resolution (same field of
    # view): rendering at that size costs stride^2 less than rendering everything and dropping
    # pixels, and the footprint (depth / focal) grows by stride on its own.
    s = config.stride
    low_res = cameras.scaled(max(1, -(-cameras.width // s)), max(1, -(-cameras.height // s)))
    for b0 in range(0, len(cameras), config.render_batch):
        cams = low_res[b0:b0 + config.render_batch]
        with torch.no_grad():
            out = representation.render(cams)
        keep = (out.opacity >= config.min_opacity) & (out.depth > 0) & torch.isfinite(out.depth)
        opacity = out.opacity.clamp_min(1e-6).unsqueeze(-1)
        cams = cams.to(device=out.depth.device, dtype=out.depth.dtype)
        points = unproject_depth(out.depth, cams)
        focal = torch.sqrt(cams.K[:, 0, 0] * cams.K[:, 1, 1])
        footprint = out.depth / focal[:, None, None]                        # one pixel, scene units
        known = (out.opacity >= config.min_opacity) & (out.depth > 0)
        normals, ok = depth_normals(points, known, footprint, config.gaussians.init_max_jump_pixels)
        view = torch.nn.functional.normalize(points - cams.centers[:, None, None, :], dim=-1)
        normals = torch.where(ok.unsqueeze(-1), normals, -view)
        normals = normals * torch.where((normals * view).sum(-1, keepdim=True) > 0, -1.0, 1.0)
        pts.append(points[keep])
        cols.append((out.rgb / opacity).clamp(0, 1)[keep])
        feats.append((out.features / opacity)[keep])
        foots.append(footprint[keep])
        norms.append(normals[keep])
        views.append(view[keep])
        emit(on_event, "bake", step=min(b0 + config.render_batch, len(cameras)), total=len(cameras),
             message="rendering views to bake")
    return SurfaceSamples(torch.cat(pts), torch.cat(cols), torch.cat(feats), torch.cat(foots),
                          torch.cat(norms), torch.cat(views))


def merge_in_voxels(samples: SurfaceSamples, voxel_size: float) -> tuple[SurfaceSamples, Tensor]:
    """Average the samples that fall into the same voxel of edge ``voxel_size`` (scene units).

    Returns the merged samples (one per occupied voxel; footprint = the smallest merged one;
    normals and view rays averaged and renormalised) and (M,) the voxel index of every sample.
    """
    keys = torch.floor(samples.points / voxel_size).long()                     # (M, 3)
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    V = int(inverse.max()) + 1 if inverse.numel() else 0
    count = torch.zeros(V, device=keys.device).index_add_(0, inverse, torch.ones_like(samples.footprint))

    def mean(x: Tensor) -> Tensor:
        total = x.new_zeros((V,) + tuple(x.shape[1:])).index_add_(0, inverse, x)
        return total / count.reshape((V,) + (1,) * (x.ndim - 1))

    smallest = samples.footprint.new_full((V,), float("inf")).scatter_reduce_(
        0, inverse, samples.footprint, reduce="amin")
    unit = lambda x: torch.nn.functional.normalize(mean(x), dim=-1)  # noqa: E731
    return SurfaceSamples(mean(samples.points), mean(samples.rgb), mean(samples.features), smallest,
                          unit(samples.normals), unit(samples.view_dirs)), inverse


def bake_to_gaussians(representation: SceneRepresentation, cameras: Cameras, config: BakeConfig,
                      on_event: EventSink | None = None) -> GaussianScene:
    """Gaussians that reproduce ``representation`` as seen from ``cameras``.

    cameras: the views to sample (more views, fewer holes; e.g. the trajectory plus its support
    cameras). Returns a GaussianScene on the representation's device, feature_dim equal to the
    representation's. Raises UserInputError when no pixel passes min_opacity.
    """
    if len(cameras) == 0:
        raise UserInputError("bake_to_gaussians: no cameras given")
    samples = sample_surface(representation, cameras, config, on_event)
    if samples.points.shape[0] == 0:
        raise UserInputError(f"bake_to_gaussians: no rendered pixel has opacity >= {config.min_opacity}; "
                             "nothing to bake (is the representation fitted?)")
    voxel = config.voxel_size
    if voxel <= 0:
        voxel = config.voxel_footprint_factor * float(samples.footprint.median())
    merged, _ = merge_in_voxels(samples, voxel)
    size = config.scale_factor * merged.footprint.clamp_min(voxel)
    g = config.gaussians
    quats, scales = surfel_shape(merged.normals, merged.view_dirs, size, g.init_flatness, g.init_min_cos)
    feature_dim = int(merged.features.shape[-1])
    gconfig = GaussianConfig(**{**config.gaussians.__dict__, "feature_dim": feature_dim})
    emit(on_event, "bake", message=f"baked {merged.points.shape[0]} Gaussians", gaussians=merged.points.shape[0])
    return GaussianScene.from_points(merged.points, merged.rgb, scales, gconfig,
                                     device=merged.points.device,
                                     features=merged.features if feature_dim > 0 else None, quats=quats)
