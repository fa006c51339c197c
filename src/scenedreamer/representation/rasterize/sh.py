"""Real spherical harmonics up to degree 3, in the 3DGS convention (colour = 0.5 + SH . dir).

Coefficients are stored per Gaussian as (N, (degree+1)^2, 3); index 0 is the DC term, which the
standard 3DGS PLY calls f_dc_*. Directions are unit vectors from the camera centre to the
Gaussian, in world coordinates.
"""

from __future__ import annotations

from torch import Tensor

SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
       0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    """Coefficients per colour channel for a degree: (degree + 1)^2."""
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """(..., 3) colour in [0, 1] -> DC coefficient giving that colour from every direction."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """Inverse of rgb_to_sh0."""
    return sh0 * SH_C0 + 0.5


def eval_sh(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Colour (..., 3) = 0.5 + sum_k coeffs[..., k, :] Y_k(dirs), not clamped.

    coeffs (..., K, 3) with K = (d+1)^2 for d in 0..3; dirs (..., 3) unit vectors.
    """
    K = coeffs.shape[-2]
    out = SH_C0 * coeffs[..., 0, :]
    if K > 1:
        x, y, z = (dirs[..., i:i + 1] for i in range(3))
        out = out - _C1 * y * coeffs[..., 1, :] + _C1 * z * coeffs[..., 2, :] - _C1 * x * coeffs[..., 3, :]
        if K > 4:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (out + _C2[0] * xy * coeffs[..., 4, :] + _C2[1] * yz * coeffs[..., 5, :]
                   + _C2[2] * (2 * zz - xx - yy) * coeffs[..., 6, :]
                   + _C2[3] * xz * coeffs[..., 7, :] + _C2[4] * (xx - yy) * coeffs[..., 8, :])
            if K > 9:
                out = (out + _C3[0] * y * (3 * xx - yy) * coeffs[..., 9, :]
                       + _C3[1] * xy * z * coeffs[..., 10, :]
                       + _C3[2] * y * (4 * zz - xx - yy) * coeffs[..., 11, :]
                       + _C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * coeffs[..., 12, :]
                       + _C3[4] * x * (4 * zz - xx - yy) * coeffs[..., 13, :]
                       + _C3[5] * z * (xx - yy) * coeffs[..., 14, :]
                       + _C3[6] * x * (xx - 3 * yy) * coeffs[..., 15, :])
    return out + 0.5
