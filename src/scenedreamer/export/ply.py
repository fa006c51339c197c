"""The standard 3D Gaussian splatting PLY (the layout of the 3DGS reference code, read by
SuperSplat, Spark, gsplat's viewers, ...): one binary little-endian ``vertex`` element of float32
properties, in this order:

    x y z  nx ny nz  f_dc_0..2  f_rest_0..(3(K-1)-1)  opacity  scale_0..2  rot_0..3  [feat_0..F-1]

opacity is the logit, scales are log std-devs, rot is the quaternion (w, x, y, z), f_dc the DC SH
coefficient per channel and f_rest the higher SH coefficients channel-major (all red ones, then
green, then blue), normals are zero. ``feat_*`` (our feature vectors) is an extension viewers
ignore; pass include_features=False to leave it out.

Axes: the file keeps OUR world coordinates as they are: the OpenCV-style world of the first
camera (+x right, +y DOWN, +z forward). Viewers that assume +y up show the scene upside down
unless they flip it (the project's web viewer does, at its edge). No conversion is done here, so
the SH coefficients stay valid without rotating them.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import UserInputError
from ..representation.gaussians import GaussianConfig, GaussianScene, points_extent
from .ply_layout import gaussian_ply_property_names

_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}   # number of f_rest_* properties -> SH degree


def write_gaussians_ply(path: str | os.PathLike, scene: GaussianScene, include_features: bool = True) -> None:
    """Write ``scene`` to ``path`` as a standard 3DGS PLY (binary little endian, atomic)."""
    from plyfile import PlyData, PlyElement

    n = scene.num_gaussians
    with torch.no_grad():
        columns = [scene.means, torch.zeros(n, 3), scene.sh0[:, 0, :],
                   scene.shN.transpose(1, 2).reshape(n, -1), scene.opacity_logits[:, None],
                   scene.log_scales, scene.quats]
        if include_features and scene.feature_dim > 0:
            columns.append(scene.features)
        table = torch.cat([c.detach().float().cpu().reshape(n, -1) for c in columns], dim=1).numpy()
    names = gaussian_ply_property_names(scene.config.sh_degree,
                                        scene.feature_dim if include_features else 0)
    assert table.shape[1] == len(names), (table.shape, len(names))
    vertex = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = table[:, i]
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<")
    with atomic_path(path) as tmp:
        ply.write(str(tmp))


def read_gaussians_ply(path: str | os.PathLike, config: GaussianConfig | None = None,
                       device: torch.device | str | None = None) -> GaussianScene:
    """Read a standard 3DGS PLY (ours or another tool's) into a GaussianScene.

    The SH degree and feature length come from the file; other settings from ``config``
    (default GaussianConfig()). Raises UserInputError for a missing or malformed file.
    """
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(path))
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such PLY file") from None
    except Exception as err:  # plyfile raises several types for corrupt headers/data
        raise UserInputError(f"{path}: not a readable PLY file ({err})") from None
    if "vertex" not in ply:
        raise UserInputError(f"{path}: PLY has no 'vertex' element; not a Gaussian splat file")
    vertex = ply["vertex"].data
    props = set(vertex.dtype.names)
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + \
        [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    missing = [p for p in required if p not in props]
    if missing:
        raise UserInputError(f"{path}: PLY vertex lacks Gaussian properties {missing}")
    n_rest = sum(1 for p in props if p.startswith("f_rest_"))
    if n_rest not in _REST_COUNTS:
        raise UserInputError(f"{path}: {n_rest} f_rest_* properties do not match an SH degree 0-3")
    degree = _REST_COUNTS[n_rest]
    feature_dim = sum(1 for p in props if p.startswith("feat_"))
    base = config or GaussianConfig()
    config = GaussianConfig(**{**base.__dict__, "sh_degree": degree, "feature_dim": feature_dim})

    def cols(names: list[str]) -> torch.Tensor:
        arr = np.stack([np.asarray(vertex[nm], dtype=np.float32) for nm in names], axis=1) if names \
            else np.zeros((len(vertex), 0), dtype=np.float32)
        return torch.from_numpy(arr)

    n = len(vertex)
    scene = GaussianScene(config, device=device, num=n)
    with torch.no_grad():
        scene.means.copy_(cols(["x", "y", "z"]))
        scene.sh0.copy_(cols([f"f_dc_{i}" for i in range(3)]).reshape(n, 1, 3))
        rest = cols([f"f_rest_{i}" for i in range(n_rest)]).reshape(n, 3, -1)
        scene.shN.copy_(rest.transpose(1, 2))
        scene.opacity_logits.copy_(cols(["opacity"])[:, 0])
        scene.log_scales.copy_(cols([f"scale_{i}" for i in range(3)]))
        scene.quats.copy_(cols([f"rot_{i}" for i in range(4)]))
        scene.features.copy_(cols([f"feat_{i}" for i in range(feature_dim)]))
        scene.scene_extent.fill_(points_extent(scene.means))
    return scene

