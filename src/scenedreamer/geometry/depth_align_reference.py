"""Slow, obviously-correct twins of ``depth_align`` (numpy / scipy), for tests on small images.

``align_depth_reference``: the same robust fit spelled out with ``numpy.linalg.lstsq`` (the
inverse regression too: x on y, then inverted; the geometric-mean line from numpy's weighted
moments) and sorted medians on every usable pixel (the least-median-of-squares start tries the same pairs,
``start_pairs``, one line at a time). ``seam_offsets_reference``: the screened Poisson problem
that ``seam_offsets`` approximates coarse-to-fine, solved exactly as one sparse linear system.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from torch import Tensor

from .depth_align import AlignConfig, SeamConfig, seam_anchors, start_pairs


def align_depth_reference(pred: Tensor, target: Tensor, mask: Tensor, space: str = "disparity",
                          config: AlignConfig = AlignConfig()) -> tuple[float, float, np.ndarray]:
    """(scale, shift, inlier mask over the usable pixels) of the robust fit, on every usable pixel."""
    p = pred.double().numpy().ravel()
    q = target.double().numpy().ravel()
    usable = mask.numpy().ravel() & np.isfinite(p) & np.isfinite(q) & (p > 0) & (q > 0)
    x, y = p[usable], q[usable]
    if space == "disparity":
        x, y = 1.0 / x, 1.0 / y
    inliers = np.ones(x.shape, bool)
    # relative residuals in depth space: each row of the system divided by |y| (weighted least
    # squares, 1 / y^2)
    scale = np.abs(y) if config.relative_residuals and space == "depth" else np.ones_like(y)

    def least_squares(u, v, rows, row_scale):
        """v ~ a u + b on ``rows``, each row divided by its scale (weights 1 / scale^2)."""
        A = np.stack([u[rows], np.ones(rows.sum())], 1) / row_scale[rows, None]
        return np.linalg.lstsq(A, v[rows] / row_scale[rows], rcond=None)[0]

    def fit(rows, row_scale):
        s, t = least_squares(x, y, rows, row_scale)               # known on prediction
        if config.regression == "known_on_prediction":
            return s, t
        w = 1.0 / row_scale[rows] ** 2
        xr, yr = x[rows], y[rows]
        xm, ym = np.average(xr, weights=w), np.average(yr, weights=w)
        var_x = np.average((xr - xm) ** 2, weights=w)
        var_y = np.average((yr - ym) ** 2, weights=w)
        cov = np.average((xr - xm) * (yr - ym), weights=w)
        # a constant prediction, or no correlation: keep least squares of y on x (as the fast path)
        if var_x <= 1e-12 * xm ** 2 or abs(cov) <= 1e-9 * np.sqrt(var_x * var_y):
            return s, t
        if config.regression == "prediction_on_known":
            a, b = least_squares(y, x, rows, row_scale)           # prediction on known, inverted
            return 1.0 / a, -b / a
        slope = np.sign(cov) * np.sqrt(var_y / var_x)            # geometric mean (reduced major axis)
        return slope, ym - slope * xm

    if config.robust_start and x.size >= 1:
        # least median of squares over the same candidate pairs as the fast path
        pi, pj = (a.numpy() for a in start_pairs(x.size, config.start_trials))
        stride = max(1, -(-x.size // config.start_samples))
        best = None
        for i, j in zip(pi, pj):
            if abs(x[j] - x[i]) <= 1e-12 * max(np.abs(x).max(), 1e-300):
                continue
            s0 = (y[j] - y[i]) / (x[j] - x[i])
            t0 = y[i] - s0 * x[i]
            r = np.sort(np.abs((s0 * x[::stride] + t0 - y[::stride]) / scale[::stride]))
            median = r[(r.size + 1) // 2 - 1]
            if best is None or median < best[0]:
                best = (median, s0, t0)
        if best is not None:
            residual = (best[1] * x + best[2] - y) / scale
            r = np.sort(np.abs(residual))
            near = np.abs(residual) <= config.outlier_mads * 1.4826 * r[(r.size + 1) // 2 - 1]
            if near.sum() >= config.min_pixels:
                inliers = near
    s, t = fit(inliers, scale)
    for _ in range(config.iterations):
        residual = (s * x + t - y) / scale
        r = np.sort(np.abs(residual))
        sigma = 1.4826 * r[(r.size + 1) // 2 - 1]            # lower median, as kthvalue
        if sigma <= 0:
            break
        new = np.abs(residual) <= config.outlier_mads * sigma
        if new.sum() < config.min_pixels or np.array_equal(new, inliers):
            break
        inliers = new
        s, t = fit(inliers, scale)
    return float(s), float(t), inliers


def seam_offsets_reference(aligned: Tensor, known_depth: Tensor, known: Tensor,
                           config: SeamConfig = SeamConfig()) -> Tensor:
    """Exact solution of the seam offset problem (H, W): offsets = known - aligned on the anchors
    (``seam_anchors``: the same pixels the fast solver pins); on the others
    (n_i + 1/decay^2) o_i - sum_{4-neighbours j in the image} o_j = 0."""
    H, W = aligned.shape
    delta = (known_depth - aligned).double().numpy()
    fixed = seam_anchors(aligned, known_depth, known, config).numpy()
    screen = 0.0 if config.decay_px is None else 1.0 / config.decay_px ** 2
    n = H * W
    A = scipy.sparse.lil_matrix((n, n))
    b = np.zeros(n)
    for i in range(H):
        for j in range(W):
            k = i * W + j
            if fixed[i, j]:
                A[k, k] = 1.0
                b[k] = delta[i, j]
                continue
            neighbours = [(i + di, j + dj) for di, dj in ((0, -1), (0, 1), (-1, 0), (1, 0))
                          if 0 <= i + di < H and 0 <= j + dj < W]
            A[k, k] = len(neighbours) + screen
            for ni, nj in neighbours:
                A[k, ni * W + nj] = -1.0
    offsets = scipy.sparse.linalg.spsolve(A.tocsr(), b)
    return torch.from_numpy(offsets.reshape(H, W)).to(aligned.dtype)
