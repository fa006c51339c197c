"""Volume rendering of a density + colour + feature field along rays (emission-absorption model).

For bins i along a ray with density sigma_i (per scene unit of ray LENGTH) and length delta_i:
    alpha_i = 1 - exp(-sigma_i * delta_i),  T_i = prod_{j<i} (1 - alpha_j),  w_i = T_i * alpha_i
    rgb = sum_i w_i c_i + (1 - sum_i w_i) * background,  opacity = sum_i w_i,
    depth = sum_i w_i t_i / opacity  (expected z-depth of the visible surface; 0 where opacity is 0).
Because the ray parameter t is z-depth (see sampling.py), a bin's length along the ray is
``(t_{i+1} - t_i) * |direction|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .config import SamplingConfig
from .sampling import (bin_midpoints, depth_band_edges, importance_edges, merge_edges,
                       spacing_forward, stratified_edges)

# A field maps world points (N, 3) to density (N,) per scene unit, colour (N, 3) in [0, 1] and
# features (N, F).
FieldFn = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]

# Below this opacity the expected depth is reported as 0 (nothing visible along the ray).
_OPACITY_EPS = 1e-6


@dataclass(frozen=True)
class RayRender:
    """Rendered values of R rays.

    rgb: (R, 3); depth: (R,) expected z-depth (0 where opacity ~ 0); opacity: (R,);
    features: (R, F); distortion: (R,) mip-NeRF 360 distortion of the weights; free_space: (R,)
    weight mass in front of the hinted surface (line-of-sight prior; 0 without a hint). The last
    two are zeros unless asked for (``with_losses``).
    """

    rgb: Tensor
    depth: Tensor
    opacity: Tensor
    features: Tensor
    distortion: Tensor
    free_space: Tensor


def compositing_weights(density: Tensor, lengths: Tensor) -> Tensor:
    """Rendering weights w_i = T_i * alpha_i.

    density: (R, S) >= 0 per scene unit; lengths: (R, S) bin lengths along the ray (scene units).
    Returns (R, S) weights; their sum over S is the opacity (<= 1).
    """
    tau = density * lengths                                           # optical thickness per bin
    alpha = 1.0 - torch.exp(-tau)
    # Exclusive cumulative sum: transmittance before entering bin i.
    trans = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))
    return alpha * trans


def distortion_loss(weights: Tensor, edges_normalised: Tensor) -> Tensor:
    """mip-NeRF 360 distortion loss per ray, in O(S) with cumulative sums.

    weights: (R, S); edges_normalised: (R, S + 1) bin edges mapped to [0, 1] along the ray.
    L = sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (s_{i+1} - s_i). Returns (R,).
    """
    mids = bin_midpoints(edges_normalised)
    widths = edges_normalised[:, 1:] - edges_normalised[:, :-1]
    w_cum = torch.cumsum(weights, dim=-1) - weights                   # sum_{j<i} w_j
    wm_cum = torch.cumsum(weights * mids, dim=-1) - weights * mids    # sum_{j<i} w_j m_j
    pairwise = 2.0 * (weights * (mids * w_cum - wm_cum)).sum(dim=-1)
    self_term = (weights.square() * widths).sum(dim=-1) / 3.0
    return pairwise + self_term


def distortion_loss_bruteforce(weights: Tensor, edges_normalised: Tensor) -> Tensor:
    """O(S^2) twin of ``distortion_loss`` (tests compare the two)."""
    mids = bin_midpoints(edges_normalised)
    widths = edges_normalised[:, 1:] - edges_normalised[:, :-1]
    pair = (weights[:, :, None] * weights[:, None, :] * (mids[:, :, None] - mids[:, None, :]).abs())
    return pair.sum(dim=(1, 2)) + (weights.square() * widths).sum(dim=-1) / 3.0


def place_edges(origins: Tensor, directions: Tensor, depth_hint: Tensor | None, field: FieldFn,
                config: SamplingConfig, scene_radius: float, generator: torch.Generator | None,
                jitter: bool) -> Tensor:
    """All sorted bin edges (R, S + 1) for R rays: stratified + guided (hint band or importance).

    origins, directions: (R, 3) world; depth_hint: (R,) z-depth or None (0 = unknown).
    """
    R, device, dtype = origins.shape[0], origins.device, origins.dtype
    near, far = config.near * scene_radius, config.far * scene_radius
    unit = config.linear_range * scene_radius
    edges = stratified_edges(R, config.stratified_bins, near, far, unit, generator, device, dtype, jitter)
    n_guided = config.guided_edges
    if n_guided <= 0:
        return edges
    has_hint = depth_hint > 0 if depth_hint is not None else torch.zeros(R, dtype=torch.bool, device=device)
    guided = torch.empty((R, n_guided), device=device, dtype=dtype)
    if bool(has_hint.any()):
        guided[has_hint] = depth_band_edges(depth_hint[has_hint], n_guided, config.guide_relative_width,
                                            config.guide_min_width * scene_radius, near, far, generator,
                                            jitter)
    no_hint = ~has_hint
    if bool(no_hint.any()):
        idx = no_hint.nonzero().squeeze(-1)
        if config.importance_without_hint:
            # Proposal-free hierarchical sampling: the field's own coarse weights say where to look.
            with torch.no_grad():
                coarse = edges[idx]
                weights = _weights_on_edges(origins[idx], directions[idx], coarse, field)
                guided[idx] = importance_edges(coarse, weights, n_guided, generator, jitter,
                                               config.importance_blur)
        else:
            guided[idx] = stratified_edges(idx.numel(), n_guided - 1, near, far, unit, generator,
                                           device, dtype, jitter)
    return merge_edges(edges, guided)


def _weights_on_edges(origins: Tensor, directions: Tensor, edges: Tensor, field: FieldFn) -> Tensor:
    """(R, S) rendering weights of the field on given edges (density only is used)."""
    mids = bin_midpoints(edges)
    points = origins[:, None, :] + mids[..., None] * directions[:, None, :]
    density, _, _ = field(points.reshape(-1, 3))
    lengths = (edges[:, 1:] - edges[:, :-1]) * directions.norm(dim=-1, keepdim=True)
    return compositing_weights(density.reshape(mids.shape), lengths)


def render_rays(origins: Tensor, directions: Tensor, field: FieldFn, config: SamplingConfig,
                scene_radius: float, depth_hint: Tensor | None = None, background: Tensor | None = None,
                generator: torch.Generator | None = None, jitter: bool = False,
                with_losses: bool = False) -> RayRender:
    """Volume-render R rays through ``field``.

    origins, directions: (R, 3) world; directions have camera-frame z = 1 (t is z-depth).
    depth_hint: (R,) known z-depth (0 = unknown) or None. background: (3,) or None (black).
    jitter: random sample placement (training) vs deterministic (rendering).
    with_losses: also compute the per-ray distortion and free-space regularisers.
    """
    edges = place_edges(origins, directions, depth_hint, field, config, scene_radius, generator, jitter)
    mids = bin_midpoints(edges)                                               # (R, S)
    points = origins[:, None, :] + mids[..., None] * directions[:, None, :]   # (R, S, 3)
    density, colour, features = field(points.reshape(-1, 3))
    R, S = mids.shape
    lengths = (edges[:, 1:] - edges[:, :-1]) * directions.norm(dim=-1, keepdim=True)
    weights = compositing_weights(density.reshape(R, S), lengths)             # (R, S)
    opacity = weights.sum(dim=-1)
    rgb = torch.einsum("rs,rsc->rc", weights, colour.reshape(R, S, 3))
    feats = torch.einsum("rs,rsc->rc", weights, features.reshape(R, S, -1))
    depth = (weights * mids).sum(dim=-1) / opacity.clamp_min(_OPACITY_EPS)
    depth = torch.where(opacity > _OPACITY_EPS, depth, torch.zeros_like(depth))
    if background is not None:
        rgb = rgb + (1.0 - opacity)[:, None] * background.to(rgb)
    distortion = free_space = torch.zeros_like(opacity)
    if with_losses:
        unit = config.linear_range * scene_radius
        g = spacing_forward(edges, unit)
        g0 = spacing_forward(torch.tensor(config.near * scene_radius), unit).item()
        g1 = spacing_forward(torch.tensor(config.far * scene_radius), unit).item()
        distortion = distortion_loss(weights, (g - g0) / (g1 - g0))
        if depth_hint is not None:
            # Bins that end clearly in front of the known surface should be empty.
            in_front = edges[:, 1:] < (depth_hint * (1.0 - config.free_space_margin))[:, None]
            free_space = (weights * in_front).sum(dim=-1)
    return RayRender(rgb=rgb, depth=depth, opacity=opacity, features=feats, distortion=distortion,
                     free_space=free_space)
