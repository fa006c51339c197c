"""EWA projection of 3D Gaussians to screen-space 2D Gaussians (Zwicker et al. 2002, as in 3DGS).

Everything here is plain differentiable PyTorch over N Gaussians; the per-pixel work lives in
``tiles.py``. Frames: ``means`` are world points; ``w2c`` maps world to the OpenCV camera frame
(+x right, +y down, +z forward); pixel coordinates (u, v) have pixel centres at (j+0.5, i+0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import RasterConfig


@dataclass(frozen=True)
class Projected:
    """N Gaussians seen by one camera.

    means2d: (N, 2) centre in pixels (u, v).
    depths: (N,) camera z-depth of the centre (scene units).
    cov2d: (N, 3) screen covariance (xx, xy, yy) in pixels^2, blur included.
    conics: (N, 3) inverse covariance (a, b, c): q(d) = a dx^2 + 2 b dx dy + c dy^2.
    extents: (N, 2) half width/height (pixels) of the box where alpha can reach alpha_min.
    visible: (N,) bool: in front, not degenerate, opaque enough, and its box meets the image.
    """

    means2d: Tensor
    depths: Tensor
    cov2d: Tensor
    conics: Tensor
    extents: Tensor
    visible: Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm -> (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariance R S S^T R^T: quats (N, 4) wxyz, scales (N, 3) std-devs -> (N, 3, 3)."""
    M = quat_to_rotmat(quats) * scales.unsqueeze(-2)            # R @ diag(s): scale the columns
    return M @ M.transpose(-1, -2)


def project_gaussians(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                      K: Tensor, w2c: Tensor, width: int, height: int,
                      config: RasterConfig) -> Projected:
    """Project N world Gaussians into one camera with the EWA local-affine approximation.

    means (N, 3) world; quats (N, 4) wxyz; scales (N, 3) std-devs (scene units, activated);
    opacities (N,) in (0, 1); K (3, 3) pixels; w2c (4, 4) world -> OpenCV camera.
    Differentiable in means, quats, scales (through means2d, depths, conics).
    """
    R, t = w2c[:3, :3], w2c[:3, 3]
    p_cam = means @ R.T + t                                    # (N, 3) camera frame
    x, y, z = p_cam.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    in_depth = (z > config.near_plane) & (z < config.far_plane)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))      # keeps culled rows finite

    # Jacobian of the perspective map at the centre; x/z and y/z are clamped to a little beyond
    # the field of view so Gaussians far off-screen do not get huge screen footprints.
    lim_x = config.fov_clamp * max(float(cx), float(width - cx)) / float(fx)
    lim_y = config.fov_clamp * max(float(cy), float(height - cy)) / float(fy)
    tx = (x / z_safe).clamp(-lim_x, lim_x) * z_safe
    ty = (y / z_safe).clamp(-lim_y, lim_y) * z_safe
    # Screen covariance J W Sigma W^T J^T with Sigma = M M^T, M = R_q diag(s): with the rows of
    # A = J W M (2 x 3 per Gaussian), cov = A A^T. J has only four non-zeros, so A's rows are
    # cheap combinations of the rows of W M (written out: batched 3x3 matmuls were 5x slower).
    M = quat_to_rotmat(quats) * scales.unsqueeze(-2)                    # (N, 3, 3) = R_q diag(s)
    WM = [R[i, 0] * M[:, 0] + R[i, 1] * M[:, 1] + R[i, 2] * M[:, 2] for i in range(3)]  # rows, (N, 3)
    j00, j02 = fx / z_safe, -fx * tx / z_safe ** 2
    j11, j12 = fy / z_safe, -fy * ty / z_safe ** 2
    row0 = j00[:, None] * WM[0] + j02[:, None] * WM[2]
    row1 = j11[:, None] * WM[1] + j12[:, None] * WM[2]
    cov_xx = (row0 * row0).sum(-1) + config.blur_2d
    cov_xy = (row0 * row1).sum(-1)
    cov_yy = (row1 * row1).sum(-1) + config.blur_2d
    det = cov_xx * cov_yy - cov_xy ** 2
    ok_det = det > 0
    det_safe = torch.where(ok_det, det, torch.ones_like(det))
    conics = torch.stack([cov_yy / det_safe, -cov_xy / det_safe, cov_xx / det_safe], dim=-1)

    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)

    # Screen box where alpha = o * exp(-q/2) can still reach alpha_min: q <= 2 ln(o / alpha_min);
    # the box of the ellipse {d^T cov^-1 d <= q} has half sides sqrt(q cov_xx), sqrt(q cov_yy).
    with torch.no_grad():
        opaque_enough = opacities > config.alpha_min
        q_max = 2.0 * torch.log((opacities / config.alpha_min).clamp_min(1.0))
        extents = torch.stack([torch.sqrt(q_max * cov_xx.clamp_min(0)),
                               torch.sqrt(q_max * cov_yy.clamp_min(0))], dim=-1)
        u, v = means2d.unbind(-1)
        on_screen = ((u + extents[:, 0] > 0) & (u - extents[:, 0] < width)
                     & (v + extents[:, 1] > 0) & (v - extents[:, 1] < height))
        visible = in_depth & ok_det & opaque_enough & on_screen & torch.isfinite(means2d).all(-1)
    return Projected(means2d=means2d, depths=z, cov2d=torch.stack([cov_xx, cov_xy, cov_yy], -1),
                     conics=conics, extents=extents, visible=visible)

