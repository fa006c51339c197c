"""The property layout of the standard 3D Gaussian splatting PLY (export/ply.py documents the
format), without torch: the disk estimate of ``generate --dry-run`` sizes scene.ply from it."""

from __future__ import annotations


def gaussian_ply_property_names(sh_degree: int, feature_dim: int = 0) -> list[str]:
    """The vertex property names, in file order, for a degree and feature length."""
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)] + ["opacity"]
            + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
            + [f"feat_{i}" for i in range(feature_dim)])
