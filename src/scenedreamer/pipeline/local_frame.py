"""Building blocks of a pipeline step that combine geometry and priors (no stage order here).

- the LOCAL frame of a camera: warp neighbouring support views into it, z-buffer them, inpaint
  what none of them sees (docs/method.md part a.3 and the regulariser of part d);
- depth for new content: estimate, align to known depth, compensate seams;
- dropping new points that would occlude what earlier views saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry.cameras import Cameras
from ..geometry.depth_align import AlignConfig, SeamConfig, align_depth, compensate_seams
from ..geometry.projection import project_points, unproject_depth
from ..geometry.warp import ForwardWarpConfig, forward_warp
from ..priors.base import DepthCompleter, DepthEstimator, DepthKind, Inpainter
from ..support.records import ViewRecord


@dataclass(frozen=True)
class LocalFrame:
    """The warp + inpaint frame of one camera.

    rgb: (H, W, 3) in [0, 1], warped where ``known``, inpainted elsewhere.
    warped_depth: (H, W) z-depth of the warped pixels (0 where not ``known``).
    known: (H, W) bool, pixels some support view saw (carried by the warp, not generated).
    """

    rgb: Tensor
    warped_depth: Tensor
    known: Tensor


def warp_views_into(views: list[ViewRecord], camera: Cameras, config: ForwardWarpConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Z-buffer the forward warps of several support views into ``camera`` (a batch of 1).

    Returns rgb (H, W, 3), depth (H, W) z-depth in ``camera`` (0 where unseen), known (H, W) bool.
    The nearest surface over all views wins, as in a single z-buffer.
    """
    H, W = camera.height, camera.width
    device = camera.device
    best_depth = torch.full((H, W), float("inf"), device=device)
    rgb = torch.zeros(H, W, 3, device=device)
    for view in views:
        warp = forward_warp(view.rgb[None].to(device), view.depth[None].to(device), view.camera.to(device),
                            camera, valid=view.valid[None].to(device), config=config)
        closer = warp.valid[0] & (warp.depth[0] < best_depth)
        best_depth = torch.where(closer, warp.depth[0], best_depth)
        rgb = torch.where(closer[..., None], warp.rgb[0], rgb)
    known = torch.isfinite(best_depth)
    depth = torch.where(known, best_depth, torch.zeros_like(best_depth))
    return rgb, depth, known


def make_local_frame(views: list[ViewRecord], camera: Cameras, prompt: str, inpainter: Inpainter,
                     generator: torch.Generator, config: ForwardWarpConfig) -> LocalFrame:
    """Warp the given support views into ``camera`` and inpaint the pixels none of them sees."""
    rgb, depth, known = warp_views_into(views, camera, config)
    if bool(known.all()):
        filled = rgb
    else:
        filled = inpainter.inpaint(rgb, ~known, prompt, generator, camera=camera)
    return LocalFrame(rgb=filled, warped_depth=depth, known=known)


def metric_depth_for_new_view(image: Tensor, camera: Cameras, known_depth: Tensor, known: Tensor,
                              estimator: DepthEstimator | DepthCompleter, align: AlignConfig, seams: SeamConfig,
                              fallback_median_depth: float) -> Tensor:
    """The depth of ``depth_and_backdrop_for_new_view`` alone (same arguments)."""
    return depth_and_backdrop_for_new_view(image, camera, known_depth, known, estimator, align, seams,
                                           fallback_median_depth)[0]


def depth_and_backdrop_for_new_view(image: Tensor, camera: Cameras, known_depth: Tensor, known: Tensor,
                                    estimator: DepthEstimator | DepthCompleter, align: AlignConfig,
                                    seams: SeamConfig, fallback_median_depth: float,
                                    backdrop_depth: float | None = None) -> tuple[Tensor, Tensor]:
    """Z-depth (H, W) for every pixel of ``image`` seen from ``camera``.

    Known pixels keep ``known_depth``; the rest come from the depth network, aligned (scale and
    shift, robust least squares) to the known depth and seam-compensated so that the new surface
    meets the old one at the hole boundary. With no known pixel (the first view) a non-metric
    prediction is scaled to ``fallback_median_depth``. A network-free DepthCompleter fills the
    rest from the known depth itself (already in the scene's units: nothing to align).

    Returns (depth (H, W) z-depth, backdrop (H, W) bool). The backdrop (ViewRecord.backdrop) is
    what the depth prior marks as having no surface (the offline world's sky, exactly), plus,
    when ``backdrop_depth`` (SupportConfig.backdrop_depth, scene units) is set, every pixel whose
    final depth is at or beyond it (a depth network's far distance).
    """
    if isinstance(estimator, DepthCompleter):
        depth = estimator.complete(known_depth, known)
        return depth, _beyond(depth, backdrop_depth, None)
    prediction = estimator.estimate(image, camera=camera)
    depth = _metric_depth(prediction, known_depth, known, align, seams, fallback_median_depth)
    return depth, _beyond(depth, backdrop_depth, prediction.backdrop)


def _beyond(depth: Tensor, backdrop_depth: float | None, marked: Tensor | None) -> Tensor:
    """(H, W) bool: ``marked`` (the prior's own backdrop, or none) | depth >= backdrop_depth."""
    backdrop = torch.zeros_like(depth, dtype=torch.bool) if marked is None else marked.to(depth.device).bool()
    if backdrop_depth is not None:
        backdrop = backdrop | (depth >= backdrop_depth)
    return backdrop


def _metric_depth(prediction, known_depth: Tensor, known: Tensor, align: AlignConfig, seams: SeamConfig,
                  fallback_median_depth: float) -> Tensor:
    """A DepthPrediction turned into the scene's z-depth (see depth_and_backdrop_for_new_view)."""
    values = prediction.values.to(known_depth.device, torch.float32)
    if prediction.kind is DepthKind.DISPARITY:
        # an affine-invariant disparity: make it positive before inverting; alignment fixes the rest
        values = 1.0 / (values - values.min() + 1e-3 * values.abs().max().clamp_min(1e-6))
    if int(known.sum()) < align.min_pixels:   # nothing to align to (the first view)
        if prediction.kind is DepthKind.METRIC:
            return values
        return values * (fallback_median_depth / values.median().clamp_min(1e-6))
    # align where the prediction is affine: relative and metric depth in depth space, an
    # affine-invariant disparity (made a pseudo-depth above) in disparity space
    space = "disparity" if prediction.kind is DepthKind.DISPARITY else "depth"
    aligned = align_depth(values, known_depth, known, space=space, config=align).aligned
    new = compensate_seams(aligned, known_depth, known, config=seams)
    return torch.where(known, known_depth, new)


def drop_occluding_points(depth: Tensor, new: Tensor, camera: Cameras, earlier: list[ViewRecord],
                          margin: float) -> Tensor:
    """New pixels whose 3D points would hide surfaces that earlier support views saw.

    depth: (H, W) z-depth of the new view; new: (H, W) bool pixels generated in this view.
    A new point that projects inside an earlier view, in front of that view's known depth by
    more than ``margin`` (relative), would occlude what that view saw: it is flagged.
    Returns (H, W) bool: the new pixels to drop (keep them out of ``valid``).
    """
    drop = torch.zeros_like(new)
    if not bool(new.any()):
        return drop
    points = unproject_depth(depth[None], camera)[0][new]                 # (N, 3) world
    for view in earlier:
        cam = view.camera.to(depth.device)
        uv, z = project_points(points[None], cam)
        uv, z = uv[0], z[0]
        col = uv[:, 0].floor().long()
        row = uv[:, 1].floor().long()
        inside = (z > 1e-6) & (col >= 0) & (col < view.width) & (row >= 0) & (row < view.height)
        seen_depth = torch.zeros_like(z)
        vd = view.depth.to(depth.device)
        vv = view.valid.to(depth.device)
        idx = inside.nonzero(as_tuple=True)[0]
        seen = torch.zeros_like(inside)
        seen[idx] = vv[row[idx], col[idx]]
        seen_depth[idx] = vd[row[idx], col[idx]]
        occludes = seen & (z < (1.0 - margin) * seen_depth)
        flat = drop[new]
        drop[new] = flat | occludes
    return drop
