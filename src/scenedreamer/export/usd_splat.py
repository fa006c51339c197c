"""3D Gaussian splats as OpenUSD: one ``ParticleField3DGaussianSplat`` prim (the UsdVol
particle-field schema, OpenUSD 26.03 and later), written and read through Pixar's ``usd-core``
(``pip install 'scenedreamer[usd]'``; an optional extra, imported only here).

The prim ``/Splats`` (the stage's default prim) holds, per Gaussian:

    point3f[] positions      centres
    quatf[]   orientations   unit quaternions (real part first, as Gf.Quatf)
    float3[]  scales         LINEAR std-devs (exp of our log scales)
    float[]   opacities      opacity after the sigmoid, in [0, 1]
    int       radiance:sphericalHarmonicsDegree   our SH degree (0-3)
    float3[]  radiance:sphericalHarmonicsCoefficients  N x (degree+1)^2 blocks, one Gaussian's
              block after another, DC first (3DGS coefficients: colour = 0.5 + 0.282095 c + ...)
    extent, primvars:displayColor / displayOpacity (a point-cloud fallback), and the hints
    projectionModeHint = perspective, sortingModeHint = cameraDistance.

Stage: upAxis Y, metersPerUnit 1 (the scene's own units). Our world is +y DOWN, so the scene is
turned 180 degrees about x first (points.to_y_up: positions, rotations and SH together).
The file is a binary .usd (crate) layer, exported to a temporary file and renamed.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import UserInputError
from ..representation.gaussians import GaussianConfig, GaussianScene, points_extent
from .points import SH_C0, to_y_up

INSTALL_HINT = "pip install 'scenedreamer[usd]'   (Pixar's usd-core, OpenUSD 26.03 or later)"
PRIM_PATH = "/Splats"


def require_usd():
    """The ``pxr`` modules (Usd, UsdGeom, UsdVol, Vt, Gf), or UserInputError saying how to
    install them when the optional extra is missing or too old for the splat schema."""
    try:
        from pxr import Gf, Usd, UsdGeom, UsdVol, Vt
    except ImportError:
        raise UserInputError(f"--format usd needs OpenUSD's Python library, not installed: {INSTALL_HINT}") from None
    if not hasattr(UsdVol, "ParticleField3DGaussianSplat"):
        raise UserInputError(f"--format usd: the installed usd-core has no ParticleField3DGaussianSplat "
                             f"schema (needs OpenUSD 26.03+): {INSTALL_HINT}")
    return Usd, UsdGeom, UsdVol, Vt, Gf


def write_usd_splat(path: str | os.PathLike, scene: GaussianScene) -> None:
    """Write ``scene`` (our +y-down world) to ``path`` (.usd) as a ParticleField3DGaussianSplat
    prim in a +y-up stage, atomically."""
    Usd, UsdGeom, UsdVol, Vt, Gf = require_usd()
    degree = scene.config.sh_degree
    up = to_y_up(scene)
    with torch.no_grad():
        means = up.means.detach().cpu().float().numpy()
        quats = torch.nn.functional.normalize(up.quats.detach().cpu().float(), dim=-1).numpy()   # (w, x, y, z)
        scales = torch.exp(up.log_scales.detach().cpu().float()).numpy()
        opacity = torch.sigmoid(up.opacity_logits.detach().cpu().float()).numpy()
        coeffs = torch.cat([up.sh0, up.shN], dim=1).detach().cpu().float().numpy()            # (N, K, 3)
    n = len(means)
    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    splats = UsdVol.ParticleField3DGaussianSplat.Define(stage, PRIM_PATH)
    stage.SetDefaultPrim(splats.GetPrim())
    splats.CreatePositionsAttr(Vt.Vec3fArray.FromNumpy(means))
    splats.CreateOrientationsAttr(Vt.QuatfArray.FromNumpy(np.ascontiguousarray(quats[:, [1, 2, 3, 0]])))
    splats.CreateScalesAttr(Vt.Vec3fArray.FromNumpy(scales))
    splats.CreateOpacitiesAttr(Vt.FloatArray.FromNumpy(opacity))
    splats.CreateRadianceSphericalHarmonicsDegreeAttr(int(degree))
    splats.CreateRadianceSphericalHarmonicsCoefficientsAttr(
        Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(coeffs.reshape(-1, 3))))
    splats.CreateProjectionModeHintAttr("perspective")
    splats.CreateSortingModeHintAttr("cameraDistance")
    if n:
        splats.CreateExtentAttr(Vt.Vec3fArray.FromNumpy(np.stack([means.min(0), means.max(0)])))
    splats.CreateDisplayColorAttr(Vt.Vec3fArray.FromNumpy(
        np.ascontiguousarray(np.clip(SH_C0 * coeffs[:, 0, :] + 0.5, 0, 1), dtype=np.float32)))
    splats.CreateDisplayOpacityAttr(Vt.FloatArray.FromNumpy(opacity))
    with atomic_path(path, suffix=".usd") as tmp:                        # the suffix picks the crate format
        if not stage.GetRootLayer().Export(str(tmp)):
            raise UserInputError(f"{path}: OpenUSD could not write the file")


def read_usd_splat(path: str | os.PathLike, config: GaussianConfig | None = None) -> GaussianScene:
    """Read the default prim of a .usd written by write_usd_splat (any ParticleField3DGaussianSplat
    with float attributes) back into a GaussianScene in OUR +y-down world."""
    Usd, UsdGeom, UsdVol, Vt, Gf = require_usd()
    if not os.path.isfile(path):
        raise UserInputError(f"{path}: no such USD file")
    stage = Usd.Stage.Open(str(path))
    prim = stage.GetDefaultPrim()
    if not prim or not prim.IsA(UsdVol.ParticleField3DGaussianSplat):
        raise UserInputError(f"{path}: the default prim is not a ParticleField3DGaussianSplat")
    splats = UsdVol.ParticleField3DGaussianSplat(prim)
    means = np.array(splats.GetPositionsAttr().Get(), dtype=np.float32).reshape(-1, 3)
    quats_xyzw = np.array(splats.GetOrientationsAttr().Get(), dtype=np.float32).reshape(-1, 4)
    scales = np.array(splats.GetScalesAttr().Get(), dtype=np.float32).reshape(-1, 3)
    opacity = np.array(splats.GetOpacitiesAttr().Get(), dtype=np.float64)
    degree = int(splats.GetRadianceSphericalHarmonicsDegreeAttr().Get())
    n, k = len(means), (degree + 1) ** 2
    coeffs = np.array(splats.GetRadianceSphericalHarmonicsCoefficientsAttr().Get(), dtype=np.float32).reshape(n, k, 3)
    opacity = np.clip(opacity, 1e-7, 1 - 1e-7)
    base = config or GaussianConfig()
    up = GaussianScene(GaussianConfig(**{**base.__dict__, "sh_degree": degree, "feature_dim": 0}), num=n)
    with torch.no_grad():
        up.means.copy_(torch.from_numpy(means))
        up.quats.copy_(torch.from_numpy(np.ascontiguousarray(quats_xyzw[:, [3, 0, 1, 2]])))
        up.log_scales.copy_(torch.log(torch.from_numpy(scales)))
        up.opacity_logits.copy_(torch.from_numpy(np.log(opacity) - np.log1p(-opacity)).float())
        up.sh0.copy_(torch.from_numpy(coeffs[:, :1].copy()))
        up.shN.copy_(torch.from_numpy(coeffs[:, 1:].copy()))
        up.scene_extent.fill_(points_extent(up.means))
    return to_y_up(up)
