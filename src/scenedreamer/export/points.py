"""Coloured point clouds and the y-up splat conversion for other tools.

points-ply: binary PLY, float x y z + uchar red green blue (what MeshLab, CloudCompare and
Blender read as vertex colour). Axes: our OpenCV-style world (+y down, +z = first camera's
forward) unless turned with ``points_to_up``: "y" (+y up, +z backward: glTF, three.js, Unity
after its importer's x flip) or "z" (+z up, +y = first camera's forward: Blender, Unreal-style
z-up tools; Blender's PLY importer keeps the file's axes with its default Y forward / Z up).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..atomic import atomic_path
from ..representation.gaussians import GaussianScene, rotmat_to_quat
from ..representation.rasterize.projection import quat_to_rotmat

SH_C0 = 0.28209479177387814
"""Degree-0 real SH constant: colour = SH_C0 * f_dc + 0.5 (3DGS convention)."""

# Sign each real SH basis function (3DGS order, degree 0..3) takes under (x, y, z) -> (x, -y, -z):
# every basis polynomial has a definite parity in y + z, so the 180-degree turn about x flips it or not.
_SH_SIGNS_FLIP_YZ = [1, -1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1]


_FLIP_YZ = (1.0, -1.0, -1.0)
"""The 180-degree turn about x, (x, y, z) -> (x, -y, -z): our +y-down world to +y up (+z backward)."""


def points_to_y_up(xyz):
    """Points or directions (..., 3) (numpy array or torch tensor, any float dtype) turned 180
    degrees about x: our OpenCV world (+y down) to a +y-up one. A proper rotation (det +1), so
    triangle winding and handedness are kept. The one place this turn is written for points,
    point clouds and mesh vertices; ``to_y_up`` applies it to Gaussians."""
    if isinstance(xyz, torch.Tensor):
        return xyz * torch.tensor(_FLIP_YZ, dtype=xyz.dtype, device=xyz.device)
    return np.asarray(xyz) * np.asarray(_FLIP_YZ, dtype=np.asarray(xyz).dtype)


UP_AXES = ("y", "z")
"""The up axes ``points_to_up`` turns to (None = keep our +y-down world)."""


def points_to_z_up(xyz):
    """Points or directions (..., 3) (numpy or torch) turned 90 degrees about x:
    (x, y, z) -> (x, z, -y), our +y-down world to +z up with the first camera looking along +y
    (Blender's front view). A proper rotation (det +1): handedness and winding kept."""
    if isinstance(xyz, torch.Tensor):
        return torch.stack([xyz[..., 0], xyz[..., 2], -xyz[..., 1]], -1)
    xyz = np.asarray(xyz)
    return np.stack([xyz[..., 0], xyz[..., 2], -xyz[..., 1]], -1)


def points_to_up(xyz, up: str | None):
    """``xyz`` (..., 3) in the axis convention ``up`` (None: unchanged; "y": ``points_to_y_up``;
    "z": ``points_to_z_up``)."""
    if up is None:
        return xyz
    if up == "y":
        return points_to_y_up(xyz)
    if up == "z":
        return points_to_z_up(xyz)
    raise ValueError(f"up must be one of {UP_AXES} or None, got {up!r}")


def to_y_up(scene: GaussianScene) -> GaussianScene:
    """A copy of ``scene`` turned 180 degrees about x (our +y-down world -> +y-up, +z backward):
    positions, rotations and SH coefficients all rotated, so every view of it matches."""
    out = GaussianScene(scene.config, num=scene.num_gaussians)
    flip = torch.diag(torch.tensor(_FLIP_YZ))
    signs = torch.tensor(_SH_SIGNS_FLIP_YZ[: scene.sh_coeffs.shape[1]], dtype=torch.float32)
    with torch.no_grad():
        out.means.copy_(points_to_y_up(scene.means.detach().cpu()))
        R = quat_to_rotmat(torch.nn.functional.normalize(scene.quats.detach().cpu(), dim=-1))
        out.quats.copy_(rotmat_to_quat(flip @ R))
        out.log_scales.copy_(scene.log_scales.detach().cpu())
        out.opacity_logits.copy_(scene.opacity_logits.detach().cpu())
        out.sh0.copy_(scene.sh0.detach().cpu() * signs[0])
        out.shN.copy_(scene.shN.detach().cpu() * signs[1:, None])
        out.features.copy_(scene.features.detach().cpu())
        out.scene_extent.copy_(scene.scene_extent)
    return out


def gaussian_points(scene: GaussianScene, min_opacity: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres (M, 3) float32 (scene's world frame) and DC colours (M, 3) uint8 of the Gaussians
    whose opacity >= min_opacity."""
    with torch.no_grad():
        keep = scene.opacities.detach().cpu() >= min_opacity
        xyz = scene.means.detach().cpu()[keep].numpy().astype(np.float32)
        rgb = (SH_C0 * scene.sh0.detach().cpu()[keep, 0, :] + 0.5).clamp(0, 1).numpy()
    return xyz, (rgb * 255 + 0.5).astype(np.uint8)


def write_points_ply(path: str | os.PathLike, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Write points (M, 3) float and colours (M, 3) uint8 as a binary PLY, atomically."""
    from plyfile import PlyData, PlyElement

    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, name in enumerate("xyz"):
        vertex[name] = xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(str(tmp))
