"""Where to evaluate a radiance field along camera rays, and scene contraction.

Ray parameter: every ray is ``x(t) = origin + t * direction`` with the direction scaled so that its
camera-frame z component is 1 (``geometry.cameras.camera_rays``). The parameter ``t`` is therefore
the z-depth of the point in that camera, in scene units, and the expected ``t`` under the volume
rendering weights is the rendered z-depth directly.

Samples are described as sorted BIN EDGES ``(R, S + 1)`` along each ray; the field is evaluated at
bin midpoints and each bin's length is its ``delta``. Three sources of edges are merged:
  * stratified edges over [near, far], uniform in a "contraction-matched" spacing (linear inside the
    scene radius, linear in disparity beyond) so that unbounded outdoor rays are covered cheaply;
  * depth-guided edges in a narrow band around a known surface depth (the support database's depth);
  * importance edges drawn from the weights of a coarse pass (proposal-free hierarchical sampling),
    used where no depth is known.
"""

from __future__ import annotations


import torch
from torch import Tensor


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device,
            dtype: torch.dtype) -> Tensor:
    """U[0, 1) noise of ``shape`` on ``device``, drawn on the generator's own device (a CPU
    generator may drive CUDA sampling: same seed, same samples on any device)."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source, dtype=dtype).to(device)


def contract(points: Tensor, norm: str = "inf") -> Tensor:
    """mip-NeRF 360 scene contraction of normalised points (..., 3) into the ball of radius 2.

    Points with ||x|| <= 1 are unchanged; points outside map to ``(2 - 1/||x||) * x/||x||``, so
    infinity lands on the sphere of radius 2. ``norm="inf"`` uses the max-norm (the contracted
    space is then the cube [-2, 2]^3, which axis-aligned planes cover without waste, as in MERF);
    ``norm="l2"`` is the original Euclidean version. Continuous and monotone along rays from the
    origin; identity inside the unit ball.
    """
    if norm == "inf":
        mag = points.abs().amax(dim=-1, keepdim=True)
    elif norm == "l2":
        mag = points.norm(dim=-1, keepdim=True)
    else:
        raise ValueError(f"contract: norm must be 'inf' or 'l2', got {norm!r}")
    safe = mag.clamp_min(1.0)  # only used where mag > 1: avoids 0/0 at the origin
    return torch.where(mag <= 1.0, points, (2.0 - 1.0 / safe) * (points / safe))


def spacing_forward(t: Tensor, unit: float) -> Tensor:
    """Map ray depth t (scene units) to the sampling coordinate g(t / unit).

    g(u) = u for u < 1 and 2 - 1/u beyond: linear near the scene, linear in disparity far away
    (the 1D version of the contraction), so uniform steps in g give sensible unbounded sampling.
    """
    u = t / unit
    return torch.where(u < 1.0, u, 2.0 - 1.0 / u.clamp_min(1.0))


def spacing_inverse(g: Tensor, unit: float) -> Tensor:
    """Inverse of ``spacing_forward``: sampling coordinate -> ray depth t (scene units)."""
    u = torch.where(g < 1.0, g, 1.0 / (2.0 - g).clamp_min(1e-6))
    return u * unit


def stratified_edges(num_rays: int, num_bins: int, near: float, far: float, spacing_unit: float,
                     generator: torch.Generator | None, device: torch.device, dtype: torch.dtype,
                     jitter: bool) -> Tensor:
    """(R, num_bins + 1) sorted edges over [near, far], uniform in the ``spacing_forward`` coordinate.

    With ``jitter`` the inner edges move randomly within their strata (training; every region of
    the ray is eventually seen); without it they are the regular grid (deterministic rendering).
    """
    g_near = spacing_forward(torch.tensor(near, dtype=torch.float64), spacing_unit).item()
    g_far = spacing_forward(torch.tensor(far, dtype=torch.float64), spacing_unit).item()
    s = torch.linspace(0.0, 1.0, num_bins + 1, device=device, dtype=dtype).expand(num_rays, -1)
    if jitter and num_bins > 1:
        step = 1.0 / num_bins
        noise = uniform((num_rays, num_bins - 1), generator, device, dtype)
        inner = s[:, 1:-1] + (noise - 0.5) * step
        s = torch.cat([s[:, :1], inner, s[:, -1:]], dim=-1)
    g = g_near + s * (g_far - g_near)
    return spacing_inverse(g, spacing_unit).clamp(near, far)


def depth_band_edges(depth_hint: Tensor, num_edges: int, relative_width: float, min_width: float,
                     near: float, far: float, generator: torch.Generator | None, jitter: bool) -> Tensor:
    """(R, num_edges) edges packed in a band around each ray's known depth.

    depth_hint: (R,) z-depth in scene units, > 0 on every ray passed here.
    The band is ``hint * (1 +- relative_width)`` widened to at least ``+- min_width``: dense samples
    where the support database says the surface is, so a thin surface is resolved with few samples.
    """
    half = torch.maximum(depth_hint * relative_width, torch.full_like(depth_hint, min_width))
    lo = depth_hint - half
    s = torch.linspace(0.0, 1.0, num_edges, device=depth_hint.device, dtype=depth_hint.dtype)
    s = s.expand(depth_hint.shape[0], -1)
    if jitter and num_edges > 1:
        step = 1.0 / (num_edges - 1)
        noise = uniform(tuple(s.shape), generator, s.device, s.dtype)
        s = (s + (noise - 0.5) * step).clamp(0.0, 1.0)
    return (lo[:, None] + s * (2.0 * half[:, None])).clamp(near, far)


def importance_edges(edges: Tensor, weights: Tensor, num_edges: int, generator: torch.Generator | None,
                     jitter: bool, blur_floor: float = 1e-2) -> Tensor:
    """Draw (R, num_edges) new edges from the piecewise-constant pdf of ``weights`` over ``edges``.

    edges: (R, S + 1) sorted; weights: (R, S) >= 0 (e.g. a coarse pass's rendering weights).
    ``blur_floor`` adds a uniform share to every bin so rays with all-zero weights still sample
    their whole range. Inverse-CDF sampling; the result is sorted and lies inside [edges[0], edges[-1]].
    """
    R, S = weights.shape
    w = weights + blur_floor * weights.sum(dim=-1, keepdim=True).clamp_min(1e-6) / S + 1e-8
    pdf = w / w.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)  # (R, S + 1)
    cdf[:, -1] = 1.0
    if jitter:
        u = (torch.arange(num_edges, device=edges.device, dtype=edges.dtype) +
             uniform((R, num_edges), generator, edges.device, edges.dtype))
        u = u / num_edges
    else:
        u = ((torch.arange(num_edges, device=edges.device, dtype=edges.dtype) + 0.5) / num_edges).expand(R, -1)
    u = u.contiguous().clamp(0.0, 1.0 - 1e-6)
    idx = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, S)  # bin index + 1
    cdf_lo, cdf_hi = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    e_lo, e_hi = edges.gather(1, idx - 1), edges.gather(1, idx)
    frac = ((u - cdf_lo) / (cdf_hi - cdf_lo).clamp_min(1e-12)).clamp(0.0, 1.0)
    return e_lo + frac * (e_hi - e_lo)


def merge_edges(*edge_sets: Tensor) -> Tensor:
    """Concatenate (R, k_i) edge sets along the ray and sort them: (R, sum k_i)."""
    return torch.sort(torch.cat(edge_sets, dim=-1), dim=-1).values


def bin_midpoints(edges: Tensor) -> Tensor:
    """(R, S + 1) edges -> (R, S) midpoints."""
    return 0.5 * (edges[:, 1:] + edges[:, :-1])


# ----------------------------------------------------------------------------------------------
# The sampling plan of one renderer (a config dataclass; every number documented).
# ----------------------------------------------------------------------------------------------
