"""Aligning a predicted depth map to known depth, and closing the seam where they meet.

A monocular depth network predicts depth for the whole (partly inpainted) image, up to an unknown
scale and shift (metric networks are off by some factor too). Where the warped scene already
has depth (``mask``), we fit ``scale * pred + shift`` to it in closed form, robustly
(least squares on the pixels near a least-median-of-squares line through two known pixels, then a
few rounds on the inliers: residuals beyond ``outlier_mads`` robust standard deviations are
dropped). In "disparity" space the fit is on inverse depths, which
weights near geometry more and matches networks that predict disparity. The line itself is least
squares of the known value on the prediction by default; ``AlignConfig.regression`` picks an
errors-in-variables line instead (the prediction's own noise flattens that slope).

After the global fit, new geometry still misses the old by a few per cent along the hole
boundary. ``compensate_seams`` takes the per-pixel offset (known - aligned) on the known pixels
and diffuses it into the new region (a screened Poisson / membrane solve: it equals the offset
at the boundary and fades to zero ``decay_px`` pixels inside), so new meets old without a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from .config import AlignConfig, SeamConfig

SPACES = ("depth", "disparity")

# 1.4826 * MAD is a consistent estimate of the standard deviation of Gaussian noise.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class DepthAlignment:
    """Result of ``align_depth``.

    aligned: (H, W) z-depth (scene units) = the prediction mapped by scale/shift in ``space``.
    scale, shift: the fit, in ``space`` (disparity: 1/aligned = scale / pred + shift).
    residual: robust RMS of (aligned - target) on the inlier known pixels, in depth units
        (errors beyond ``outlier_mads`` robust standard deviations in depth units left out).
    space: "depth" or "disparity".
    inlier_fraction: share of the usable known pixels kept as inliers by the robust fit.
    """

    aligned: Tensor
    scale: float
    shift: float
    residual: float
    space: str
    inlier_fraction: float = 1.0


def _to_space(depth: Tensor, space: str) -> Tensor:
    return depth if space == "depth" else 1.0 / depth


def _check(pred: Tensor, target: Tensor, mask: Tensor, space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"align_depth: space must be one of {SPACES}, got {space!r}")
    if pred.ndim != 2 or pred.shape != target.shape or pred.shape != mask.shape:
        raise ValueError(f"align_depth: pred, target and mask must be the same (H, W), got "
                         f"{tuple(pred.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"align_depth: mask must be bool, got {mask.dtype}")


# |weighted covariance| at or below this times sqrt(var_x var_y): x and y are uncorrelated (to
# rounding), and the errors-in-variables slopes (var_y / cov, sign(cov) sqrt(var_y / var_x)) mean
# nothing; they fall back to least squares of y on x
_MIN_CORRELATION = 1e-9


def _weighted_line_fit(x: Tensor, y: Tensor, w: Tensor,
                       regression: str = "known_on_prediction") -> tuple[Tensor, Tensor]:
    """Closed-form weighted line y ~ s x + t (centred moments, float64), per ``regression``
    (AlignConfig.regression): "known_on_prediction" least squares of y on x, s = cov / var_x;
    "prediction_on_known" least squares of x on y (x ~ a y + b) inverted, s = 1 / a = var_y / cov;
    "geometric_mean" s = sign(cov) sqrt(var_y / var_x). Each line passes through the weighted
    means (t = mean_y - s mean_x). A constant x takes a scale-only fit, and the last two fall
    back to the first where cov is ~0 (see ``_MIN_CORRELATION``)."""
    w_sum = w.sum().clamp_min(1e-12)
    x_mean = (w * x).sum() / w_sum
    y_mean = (w * y).sum() / w_sum
    xc, yc = x - x_mean, y - y_mean
    var = (w * xc * xc).sum()
    cov = (w * xc * yc).sum()
    if var <= 1e-12 * w_sum * x_mean.abs().clamp_min(1e-12) ** 2:
        # constant prediction: scale-only fit (no shift), which then just matches the mean level
        s = (w * x * y).sum() / (w * x * x).sum().clamp_min(1e-12)
        return s, torch.zeros_like(s)
    s = cov / var
    if regression != "known_on_prediction":
        var_y = (w * yc * yc).sum()
        if cov.abs() > _MIN_CORRELATION * (var * var_y).sqrt():
            if regression == "prediction_on_known":
                s = var_y / cov
            else:
                s = cov.sign() * (var_y / var).sqrt()
    return s, y_mean - s * x_mean


def start_pairs(count: int, trials: int) -> tuple[Tensor, Tensor]:
    """The sample pairs (i, j) (two int64 tensors of ``trials`` indices in [0, count)) whose lines
    are the least-median-of-squares candidates: drawn with a fixed seed, so a fit is a function of
    its inputs. Shared with the numpy twin, which must try the same lines."""
    generator = torch.Generator().manual_seed(0)
    i = torch.randint(count, (trials,), generator=generator)
    j = torch.randint(count, (trials,), generator=generator)
    return i, j


def _least_median_start(x: Tensor, y: Tensor, scale: Tensor, config: AlignConfig) -> tuple[Tensor, Tensor] | None:
    """The line y ~ s x + t through two samples with the smallest median |residual| / scale over
    at most ``config.start_samples`` samples (Rousseeuw's least median of squares, by random pairs).
    x, y, scale: (M,) float64. None when no pair spans a range of x (a constant prediction)."""
    i, j = start_pairs(x.numel(), config.start_trials)
    dx = x[j] - x[i]
    spans = dx.abs() > 1e-12 * x.abs().max().clamp_min(1e-300)
    if not bool(spans.any()):
        return None
    i, j, dx = i[spans], j[spans], dx[spans]
    s = (y[j] - y[i]) / dx                                                  # (T,)
    t = y[i] - s * x[i]
    stride = max(1, -(-x.numel() // config.start_samples))
    xs, ys, scs = x[::stride], y[::stride], scale[::stride]
    residual = ((s[:, None] * xs[None] + t[:, None] - ys[None]) / scs[None]).abs()   # (T, m)
    median = residual.kthvalue((xs.numel() + 1) // 2, dim=1).values
    best = int(median.argmin())                                             # the first of ties
    return s[best], t[best]


def _robust_sigma(residual: Tensor) -> Tensor:
    """1.4826 * median |r| (the lower median for an even count)."""
    r = residual.abs()
    return _MAD_TO_SIGMA * r.kthvalue((r.numel() + 1) // 2).values


def _usable_samples(pred: Tensor, target: Tensor, mask: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Every ``stride``-th pixel (flattened) that is known, finite and positive in both maps.

    Returns pred values and target values (1-D, same length). Strided views, no copies
    until the final selection.
    """
    p, t, m = pred.reshape(-1)[::stride], target.reshape(-1)[::stride], mask.reshape(-1)[::stride]
    ok = m & (p > 0) & (t > 0) & torch.isfinite(p) & torch.isfinite(t)
    return p[ok], t[ok]


def align_depth(pred: Tensor, target: Tensor, mask: Tensor, space: str = "disparity",
                config: AlignConfig = AlignConfig()) -> DepthAlignment:
    """Fit a scale and shift mapping a predicted depth onto known depth, robustly.

    pred: (H, W) predicted z-depth (positive; up to scale/shift). target: (H, W) known z-depth
    (scene units), used where ``mask`` (H, W) bool is True. space: "depth" fits
    target ~ s * pred + t; "disparity" fits 1/target ~ s / pred + t; in depth space the residuals
    are relative to the target with ``config.relative_residuals``.
    Pixels with non-finite or non-positive pred/target are ignored. Large images are fitted
    on an even stride of at most ``max_fit_samples`` pixels. Returns DepthAlignment with
    ``aligned`` (H, W) for every pixel (clamped to [min_depth, max_depth]).
    Raises ValueError when fewer than ``min_pixels`` usable known pixels remain.
    """
    _check(pred, target, mask, space)
    stride = max(1, -(-pred.numel() // config.max_fit_samples))
    p, q = _usable_samples(pred, target, mask, stride)
    if p.numel() < config.min_pixels and stride > 1:       # sparse mask: use every pixel instead
        p, q = _usable_samples(pred, target, mask, 1)
    if p.numel() < config.min_pixels:
        raise ValueError(f"align_depth: only {p.numel()} usable known pixels (need {config.min_pixels})")
    x = _to_space(p, space).double()                                           # (M,)
    y = _to_space(q, space).double()

    # relative residuals (AlignConfig.relative_residuals; depth space only: there an outlier is
    # mostly too far and weighs less, while a too-far outlier's tiny disparity would weigh most):
    # (s x + t - y) / y, least squares weighted by 1 / y^2
    scale = y.abs() if config.relative_residuals and space == "depth" else torch.ones_like(y)
    precision = 1.0 / scale.square()
    weight = torch.ones_like(x)
    start = _least_median_start(x, y, scale, config) if config.robust_start else None
    if start is not None:
        # the first least-squares fit takes the start's inliers (all pixels if too few are)
        residual = (start[0] * x + start[1] - y) / scale
        near = (residual.abs() <= config.outlier_mads * _robust_sigma(residual)).to(x.dtype)
        if near.sum() >= config.min_pixels:
            weight = near
    s, t = _weighted_line_fit(x, y, weight * precision, config.regression)
    for _ in range(config.iterations):
        residual = (s * x + t - y) / scale
        sigma = _robust_sigma(residual)
        if sigma <= 0:
            break                                   # an exact fit on more than half the pixels
        new_weight = (residual.abs() <= config.outlier_mads * sigma).to(x.dtype)
        if new_weight.sum() < config.min_pixels or torch.equal(new_weight, weight):
            break
        weight = new_weight
        s, t = _weighted_line_fit(x, y, weight * precision, config.regression)

    aligned = _from_fit(pred, float(s), float(t), space, config)
    inliers = weight > 0
    fitted = _from_fit(p, float(s), float(t), space, config)                   # aligned at the samples
    err = fitted.double()[inliers] - q.double()[inliers]
    # robust RMS in depth units: a far outlier can pass the inlier test in disparity space (tiny
    # disparities), so trim once more in depth units before taking the RMS
    sigma_depth = _robust_sigma(err)
    if sigma_depth > 0:
        err = err[err.abs() <= config.outlier_mads * sigma_depth]
    return DepthAlignment(aligned=aligned, scale=float(s), shift=float(t),
                          residual=float(err.square().mean().sqrt()), space=space,
                          inlier_fraction=float(inliers.double().mean()))


def _from_fit(pred: Tensor, s: float, t: float, space: str, config: AlignConfig) -> Tensor:
    """Apply a fit to the whole prediction (H, W) -> aligned z-depth, clamped to the depth range."""
    safe = pred.clamp_min(torch.finfo(pred.dtype).tiny)
    if space == "depth":
        aligned = s * safe + t
    else:
        disparity = (s / safe + t).clamp_min(1.0 / config.max_depth)
        aligned = 1.0 / disparity
    return aligned.clamp(config.min_depth, config.max_depth)


# ---------------------------------------------------------------------------------------------
# seam compensation
# ---------------------------------------------------------------------------------------------

def _neighbour_sum(x: Tensor) -> Tensor:
    """(1, 1, H, W) -> sum of the 4-neighbours, zero outside the image."""
    p = F.pad(x, (1, 1, 1, 1))
    return p[..., 1:-1, :-2] + p[..., 1:-1, 2:] + p[..., :-2, 1:-1] + p[..., 2:, 1:-1]


def _solve_level(fixed: Tensor, values: Tensor, decay_px: float | None, config: SeamConfig) -> Tensor:
    """Screened-diffusion solve on one level, initialised from the next coarser level.

    fixed (1,1,H,W) float {0,1} where the offset is prescribed; values (1,1,H,W) the offsets there.
    Solves, on free pixels, (n_i + 1/decay^2) o_i = sum_neighbours o_j (Neumann at the border).
    Each side longer than one pixel is halved per level until the longer side would drop
    below ``min_level_size``; the coarsest level gets ``coarsest_iteration_factor`` x the sweeps.
    """
    H, W = fixed.shape[-2:]
    coarsest = max(H, W) // 2 < config.min_level_size
    if not coarsest:
        kernel = (2 if H > 1 else 1, 2 if W > 1 else 1)
        w_sum = F.avg_pool2d(fixed, kernel, ceil_mode=True)
        v_sum = F.avg_pool2d(values * fixed, kernel, ceil_mode=True)
        coarse_fixed = (w_sum > 0).to(fixed.dtype)
        coarse_values = v_sum / w_sum.clamp_min(1e-12)
        coarse = _solve_level(coarse_fixed, coarse_values, None if decay_px is None else decay_px / 2, config)
        offset = F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    else:
        offset = torch.zeros_like(values)
    screen = 0.0 if decay_px is None else 1.0 / decay_px ** 2
    count = _neighbour_sum(torch.ones_like(fixed)) + screen
    is_fixed = fixed > 0
    offset = torch.where(is_fixed, values, offset)
    sweeps = config.iterations_per_level * (config.coarsest_iteration_factor if coarsest else 1)
    for _ in range(sweeps):
        offset = torch.where(is_fixed, values, _neighbour_sum(offset) / count)
    return offset


def seam_anchors(aligned: Tensor, known_depth: Tensor, known: Tensor, config: SeamConfig = SeamConfig()) -> Tensor:
    """(H, W) bool: the known pixels that pin the seam offsets, those where the aligned
    prediction is within ``config.max_anchor_mismatch`` of the known depth (relative; None:
    every known pixel). A larger mismatch means the two see different surfaces there."""
    if config.max_anchor_mismatch is None:
        return known
    return known & ((known_depth - aligned).abs() <= config.max_anchor_mismatch * known_depth.abs())


def seam_offsets(aligned: Tensor, known_depth: Tensor, known: Tensor,
                 config: SeamConfig = SeamConfig()) -> Tensor:
    """(H, W) depth offsets: known - aligned on the anchors (``seam_anchors``), diffused into
    every other pixel."""
    anchors = seam_anchors(aligned, known_depth, known, config)
    delta = torch.where(anchors, known_depth - aligned, torch.zeros_like(aligned))
    fixed = anchors.to(aligned.dtype)[None, None]
    return _solve_level(fixed, delta[None, None], config.decay_px, config)[0, 0]


def compensate_seams(aligned: Tensor, known_depth: Tensor, known: Tensor,
                     config: SeamConfig = SeamConfig()) -> Tensor:
    """Bend new depth so it meets known depth at the hole boundary.

    aligned: (H, W) z-depth for every pixel (e.g. ``align_depth(...).aligned``).
    known_depth: (H, W) z-depth that is already in the scene, meaningful where ``known``.
    known: (H, W) bool. Returns (H, W) z-depth: ``known_depth`` on known pixels (kept exactly),
    ``aligned + offset`` on new pixels, the offset diffusing the boundary mismatch
    (known - aligned) inwards and fading over ``decay_px`` pixels (coarse-to-fine Jacobi).
    With no known pixel, returns ``aligned`` unchanged.
    """
    if aligned.shape != known_depth.shape or aligned.shape != known.shape or aligned.ndim != 2:
        raise ValueError(f"compensate_seams: aligned, known_depth and known must be the same (H, W), got "
                         f"{tuple(aligned.shape)}, {tuple(known_depth.shape)}, {tuple(known.shape)}")
    if not bool(known.any()):
        return aligned.clone()
    offsets = seam_offsets(aligned, known_depth, known, config)
    new = (aligned + offsets).clamp_min(config.min_depth)
    return torch.where(known, known_depth, new)
