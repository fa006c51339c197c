"""Building blocks of a pipeline step that combine geometry and priors (no stage order here).

- the LOCAL frame of a camera: warp neighbouring support views into it, z-buffer them, inpaint
  what none of them sees (docs/method.md part a.3 and the regulariser of part d);
- depth for new content: estimate, align to known depth, compensate seams;
- dropping new points that would occlude what earlier views saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    backdrop: (H, W) bool, the known pixels whose warped support pixel was backdrop
        (ViewRecord.backdrop): what this frame's image shows there, carried with its colour.
    """

    rgb: Tensor
    warped_depth: Tensor
    known: Tensor
    backdrop: Tensor


def warp_views_into(views: list[ViewRecord], camera: Cameras,
                    config: ForwardWarpConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Z-buffer the forward warps of several support views into ``camera`` (a batch of 1).

    Returns rgb (H, W, 3), depth (H, W) z-depth in ``camera`` (0 where unseen), known (H, W) bool
    and backdrop (H, W) bool (known pixels whose source pixel was its view's backdrop).
    ``views`` come best first (SupportDatabase.neighbours' order): with
    ``config.best_view_free_space`` the later views lose the pixels the first one saw through
    (``seen_through_by``); then a later view's pixel replaces an earlier one's only when it is
    nearer by more than ``config.same_surface_margin`` (a surface in front of it); None: the
    nearest over all views wins, as in a single z-buffer.
    """
    H, W = camera.height, camera.width
    device = camera.device
    best_depth = torch.full((H, W), float("inf"), device=device)
    carried = torch.zeros(H, W, 4, device=device)
    for index, view in enumerate(views):
        # the backdrop flag travels as a fourth channel, so it stays with the colour it describes
        # (a crack filled between two sky pixels is sky: the fill averages, > 0.5 reads it back)
        source = torch.cat([view.rgb, view.backdrop.to(view.rgb.dtype)[..., None]], -1)
        valid = view.valid.to(device)
        if index > 0 and config.best_view_free_space:
            valid = valid & ~seen_through_by(view, views[0], config.free_space_margin)
        warp = _warp_view(source.to(device), view, valid, camera, config)
        # within same_surface_margin the pixel shows the surface an earlier, better view already
        # gave: that copy stays (nearest-wins would pick the most negative depth error every step)
        margin = 0.0 if config.same_surface_margin is None else config.same_surface_margin
        closer = warp.valid[0] & (warp.depth[0] < (1.0 - margin) * best_depth)
        best_depth = torch.where(closer, warp.depth[0], best_depth)
        carried = torch.where(closer[..., None], warp.rgb[0], carried)
    known = torch.isfinite(best_depth)
    depth = torch.where(known, best_depth, torch.zeros_like(best_depth))
    return carried[..., :3], depth, known, known & (carried[..., 3] > 0.5)


def _warp_view(source: Tensor, view: ViewRecord, valid: Tensor, camera: Cameras, config: ForwardWarpConfig):
    """The forward warp (batch of 1) of ``source`` (H, W, C: colour plus the backdrop flag) at
    ``view``'s depth into ``camera``, over the ``valid`` (H, W) pixels. With
    ``config.backdrop_at_infinity`` the backdrop pixels are warped apart, from a copy of the
    view's camera moved to ``camera``'s centre: a pure rotation, as for points infinitely far;
    they keep their stand-in depth as their z-depth there and show only where no surface lands."""
    depth = view.depth[None].to(source.device)
    source_camera = view.camera.to(source.device)
    backdrop = view.backdrop.to(valid.device) & valid
    if not config.backdrop_at_infinity or not bool(backdrop.any()):
        return forward_warp(source[None], depth, source_camera, camera, valid=valid[None], config=config)
    surfaces = forward_warp(source[None], depth, source_camera, camera, valid=(valid & ~backdrop)[None],
                            config=config)
    c2w = source_camera.c2w.clone()
    c2w[:, :3, 3] = camera.c2w[:, :3, 3].to(c2w)
    beside = Cameras(source_camera.K, c2w, source_camera.width, source_camera.height)
    sky = forward_warp(source[None], depth, beside, camera, valid=backdrop[None], config=config)
    # a surface pixel wins over the backdrop wherever it lands, whatever their stand-in depths
    sky_shows = sky.valid & ~surfaces.valid
    return replace(surfaces, rgb=torch.where(sky_shows[..., None], sky.rgb, surfaces.rgb),
                   depth=torch.where(sky_shows, sky.depth, surfaces.depth), valid=surfaces.valid | sky_shows)


def seen_through_by(view: ViewRecord, best: ViewRecord, margin: float) -> Tensor:
    """(H, W) bool over ``view``'s pixels: those whose 3D point lies in front of what ``best``
    saw along the same line of sight (inside best's image, on a valid pixel of it, at a depth in
    best's camera below (1 - margin) x best's depth there). ``best`` looked through such a point,
    so it is no surface; it is a copy of one that a depth error put in the wrong place."""
    device = view.depth.device
    points = unproject_depth(view.depth[None], view.camera.to(device))[0].reshape(-1, 3)
    uv, z = project_points(points[None], best.camera.to(device))
    uv, z = uv[0], z[0]
    col, row = uv[:, 0].floor(), uv[:, 1].floor()
    inside = (z > 0) & (col >= 0) & (col < best.width) & (row >= 0) & (row < best.height)
    col = col.clamp(0, best.width - 1).long()
    row = row.clamp(0, best.height - 1).long()
    seen = best.valid.to(device)[row, col] & inside
    through = seen & (z < (1.0 - margin) * best.depth.to(device)[row, col])
    return through.reshape(view.depth.shape)


def make_local_frame(views: list[ViewRecord], camera: Cameras, prompt: str, inpainter: Inpainter,
                     generator: torch.Generator, config: ForwardWarpConfig) -> LocalFrame:
    """Warp the given support views into ``camera`` and inpaint the pixels none of them sees."""
    rgb, depth, known, backdrop = warp_views_into(views, camera, config)
    if bool(known.all()):
        filled = rgb
    else:
        filled = inpainter.inpaint(rgb, ~known, prompt, generator, camera=camera)
    return LocalFrame(rgb=filled, warped_depth=depth, known=known, backdrop=backdrop)


def metric_depth_for_new_view(image: Tensor, camera: Cameras, known_depth: Tensor, known: Tensor,
                              estimator: DepthEstimator | DepthCompleter, align: AlignConfig, seams: SeamConfig,
                              fallback_median_depth: float) -> Tensor:
    """The depth of ``depth_and_backdrop_for_new_view`` alone (same arguments)."""
    return depth_and_backdrop_for_new_view(image, camera, known_depth, known, estimator, align, seams,
                                           fallback_median_depth)[0]


def depth_and_backdrop_for_new_view(image: Tensor, camera: Cameras, known_depth: Tensor, known: Tensor,
                                    estimator: DepthEstimator | DepthCompleter, align: AlignConfig,
                                    seams: SeamConfig, fallback_median_depth: float,
                                    backdrop_depth: float | None = None,
                                    known_backdrop: Tensor | None = None,
                                    stand_in_views: list[ViewRecord] | None = None) -> tuple[Tensor, Tensor]:
    """Z-depth (H, W) for every pixel of ``image`` seen from ``camera``.

    Known pixels keep ``known_depth``; the rest come from the depth network, aligned (scale and
    shift, robust least squares) to the known surfaces' depth and seam-compensated so that the new
    surface meets the old one at the hole boundary. With no known pixel (the first view) a
    non-metric prediction is scaled to ``fallback_median_depth``. A network-free DepthCompleter
    fills the rest from the known depth itself (already in the scene's units: nothing to align).

    ``known_backdrop`` (H, W) bool: the known pixels that show the backdrop (LocalFrame.backdrop,
    carried by the warp; None: none). They keep their warped depth but take no part in the
    alignment, whose affine model holds for surfaces, not for a stand-in depth; nor do the known
    pixels that the prior marks as backdrop (its value there is its own stand-in). A new backdrop
    pixel gets the median depth of the known backdrop (a stand-in, like theirs: the sky then
    stays one consistent shell in 3D instead of taking whatever the alignment extrapolates).
    With too few known backdrop pixels (align.min_pixels) it gets the stand-in of
    ``stand_in_views`` (the neighbouring support views: ``backdrop_stand_in_depth``, read only
    then), and where they hold none either (no view has seen the sky yet: the first view), the
    prior's own (metric or aligned) depth. Without that rule a camera that sees almost no sky (a hill ahead) took the
    alignment's extrapolation of the prior's sky (a few units away on a long walk), and every
    later view carried that near sky on.

    Returns (depth (H, W) z-depth, backdrop (H, W) bool). The backdrop (ViewRecord.backdrop) is
    ``known_backdrop`` on known pixels (what the image shows there) and, on new pixels, what the
    depth prior marks as having no surface (the offline world's sky, exactly), plus, when
    ``backdrop_depth`` (SupportConfig.backdrop_depth, scene units) is set, every pixel whose
    final depth is at or beyond it (a depth network's far distance).
    """
    if known_backdrop is None:
        known_backdrop = torch.zeros_like(known)
    known_backdrop = known_backdrop.to(known.device) & known
    if isinstance(estimator, DepthCompleter):
        depth = estimator.complete(known_depth, known)
        return depth, known_backdrop | _beyond(depth, backdrop_depth, None)
    prediction = estimator.estimate(image, camera=camera)
    surfaces = known & ~known_backdrop
    if prediction.backdrop is not None:
        # Where the prior sees backdrop its value is a stand-in that no scale and shift relate to
        # a surface's depth; a known surface there is a copy the warp misplaced in front of the
        # sky, or sky the prior misjudges. Left in, such pixels (1 in 30 on a walk, at the far
        # end of the prediction's range) set the fit by their leverage: scale 0.30 instead of 1.40
        surfaces = surfaces & ~prediction.backdrop.to(known.device)
    depth = _metric_depth(prediction, known_depth, surfaces, align, seams, fallback_median_depth)
    depth = torch.where(known, known_depth, depth)
    backdrop = torch.where(known, known_backdrop | _beyond(depth, backdrop_depth, None),
                           _beyond(depth, backdrop_depth, prediction.backdrop))
    new_backdrop = backdrop & ~known
    if bool(new_backdrop.any()):
        if int(known_backdrop.sum()) >= align.min_pixels:
            depth = torch.where(new_backdrop, known_depth[known_backdrop].median(), depth)
        else:
            stand_in = backdrop_stand_in_depth(stand_in_views or [], align.min_pixels)
            if stand_in is not None:
                depth = torch.where(new_backdrop, torch.as_tensor(stand_in, dtype=depth.dtype, device=depth.device),
                                    depth)
    return depth, backdrop


def backdrop_stand_in_depth(views: list[ViewRecord], min_pixels: int) -> float | None:
    """The backdrop's stand-in z-depth (scene units) in ``views``: the median stored depth of
    their valid backdrop pixels (ViewRecord.backdrop), or None when they hold fewer than
    ``min_pixels`` of them. A new view's sky takes it when the warp carries too little sky of
    its own (depth_and_backdrop_for_new_view)."""
    depths = [v.depth[v.backdrop & v.valid].float() for v in views]
    depths = torch.cat([d.cpu() for d in depths]) if depths else torch.zeros(0)
    if depths.numel() < max(min_pixels, 1):
        return None
    return float(depths.median())


def _beyond(depth: Tensor, backdrop_depth: float | None, marked: Tensor | None) -> Tensor:
    """(H, W) bool: ``marked`` (the prior's own backdrop, or none) | depth >= backdrop_depth."""
    backdrop = torch.zeros_like(depth, dtype=torch.bool) if marked is None else marked.to(depth.device).bool()
    if backdrop_depth is not None:
        backdrop = backdrop | (depth >= backdrop_depth)
    return backdrop


def _metric_depth(prediction, known_depth: Tensor, known: Tensor, align: AlignConfig, seams: SeamConfig,
                  fallback_median_depth: float) -> Tensor:
    """A DepthPrediction turned into the scene's z-depth (see depth_and_backdrop_for_new_view);
    ``known``: the pixels whose ``known_depth`` it is aligned to (and keeps)."""
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
