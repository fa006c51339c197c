"""3D Gaussian splats as glTF 2.0 (binary .glb) with the Khronos KHR_gaussian_splatting extension.

Written to the extension's release-candidate text (KhronosGroup/glTF, extensions/2.0/Khronos/
KHR_gaussian_splatting): one node, one mesh, one primitive of mode POINTS (0) whose extension
object is {"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection":
"perspective", "sortingMethod": "cameraDistance"}, and these attributes, all float accessors:

    POSITION                                    VEC3  splat centre (min/max given, as glTF requires)
    KHR_gaussian_splatting:ROTATION             VEC4  unit quaternion, glTF order (x, y, z, w)
    KHR_gaussian_splatting:SCALE                VEC3  LINEAR std-devs (exp of our log scales)
    KHR_gaussian_splatting:OPACITY              SCALAR opacity after the sigmoid, in [0, 1]
    KHR_gaussian_splatting:SH_DEGREE_0_COEF_0   VEC3  DC SH coefficient (r, g, b)
    KHR_gaussian_splatting:SH_DEGREE_l_COEF_n   VEC3  higher SH, n = 0..2l from m = -l up to +l
    COLOR_0                                     VEC4  point-cloud fallback: the DC colour
                                                      (0.5 + 0.282095 c, clamped) decoded from sRGB
                                                      to LINEAR as glTF defines COLOR_0, alpha = opacity

colorSpace is srgb_rec709_display because our splats are fitted to sRGB images and shown as
they are (the 3DGS convention). Axes: glTF is +y up, right-handed; our world is the +y-down
OpenCV one, so the scene is turned 180 degrees about x first (points.to_y_up: positions,
rotations and SH rotated together), as the glb mesh export does. Units: the scene's own.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..errors import UserInputError
from ..representation.gaussians import GaussianConfig, GaussianScene, points_extent
from .points import SH_C0, to_y_up

EXTENSION = "KHR_gaussian_splatting"
PREFIX = EXTENSION + ":"
PRIMITIVE_EXTENSION = {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                       "projection": "perspective", "sortingMethod": "cameraDistance"}
_FLOAT = 5126              # glTF componentType FLOAT
_ARRAY_BUFFER = 34962      # bufferView target for vertex attributes
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
_TYPES = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}
_WIDTH = {v: k for k, v in _TYPES.items()}


def sh_attribute_names(degree: int) -> list[str]:
    """The SH attribute semantics, in order, for SH ``degree`` (0-3): degree 0's one
    coefficient, then each degree's 2l+1 coefficients from m = -l to +l."""
    return [f"{PREFIX}SH_DEGREE_{ell}_COEF_{n}" for ell in range(degree + 1) for n in range(2 * ell + 1)]


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (the IEC 61966-2-1 curve)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def splat_attributes(scene: GaussianScene) -> dict[str, np.ndarray]:
    """The primitive's attributes (name -> (N,) or (N, k) float32) for ``scene`` given in OUR
    +y-down world; positions, rotations and SH come out in glTF's +y-up frame."""
    degree = scene.config.sh_degree
    if not 0 <= degree <= 3:
        raise UserInputError(f"SH degree {degree}: KHR_gaussian_splatting holds degrees 0-3")
    up = to_y_up(scene)
    with torch.no_grad():
        means = up.means.detach().cpu().float().numpy()
        quats = torch.nn.functional.normalize(up.quats.detach().cpu().float(), dim=-1).numpy()
        scales = torch.exp(up.log_scales.detach().cpu().float()).numpy()
        opacity = torch.sigmoid(up.opacity_logits.detach().cpu().float()).numpy()
        coeffs = torch.cat([up.sh0, up.shN], dim=1).detach().cpu().float().numpy()   # (N, K, 3)
    colour = srgb_to_linear(np.clip(SH_C0 * coeffs[:, 0, :] + 0.5, 0.0, 1.0))
    attrs = {"POSITION": means,
             PREFIX + "ROTATION": quats[:, [1, 2, 3, 0]],                  # (w, x, y, z) -> glTF (x, y, z, w)
             PREFIX + "SCALE": scales,
             PREFIX + "OPACITY": opacity,
             "COLOR_0": np.concatenate([colour, opacity[:, None]], axis=1)}
    for k, name in enumerate(sh_attribute_names(degree)):
        attrs[name] = coeffs[:, k, :]
    return {name: np.ascontiguousarray(a, dtype="<f4") for name, a in attrs.items()}


def glb_bytes(scene: GaussianScene) -> bytes:
    """``scene`` (our +y-down world) as a binary glTF 2.0 with KHR_gaussian_splatting."""
    attrs = splat_attributes(scene)
    n = scene.num_gaussians
    if n == 0:
        raise UserInputError("the scene has no Gaussians: glTF accessors cannot be empty")
    if not np.isfinite(attrs["POSITION"]).all():
        raise UserInputError("the scene has Gaussians with non-finite positions; glTF cannot store them")
    accessors, views, chunks, offset = [], [], [], 0
    semantics = {}
    for i, (name, a) in enumerate(attrs.items()):
        width = 1 if a.ndim == 1 else a.shape[1]
        data = a.tobytes()
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data), "target": _ARRAY_BUFFER})
        acc = {"bufferView": i, "componentType": _FLOAT, "count": n, "type": _TYPES[width]}
        if name == "POSITION":                                             # required by glTF for POSITION
            acc["min"] = [float(v) for v in a.min(axis=0)]
            acc["max"] = [float(v) for v in a.max(axis=0)]
        accessors.append(acc)
        semantics[name] = i
        chunks.append(data)
        offset += len(data)                                                # all float32: stays 4-aligned
    doc = {"asset": {"version": "2.0", "generator": "scenedreamer export --format gltf-splat"},
           "extensionsUsed": [EXTENSION],
           "scene": 0, "scenes": [{"nodes": [0]}],
           "nodes": [{"name": "gaussian splats (+y up)", "mesh": 0}],
           "meshes": [{"name": "splats", "primitives": [{"attributes": semantics, "mode": 0,
                                                         "extensions": {EXTENSION: dict(PRIMITIVE_EXTENSION)}}]}],
           "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": offset}]}
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)                                            # chunks are 4-byte aligned
    binary = b"".join(chunks)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<III", _GLB_MAGIC, 2, total), struct.pack("<II", len(js), _JSON_CHUNK), js,
                     struct.pack("<II", len(binary), _BIN_CHUNK), binary])


def write_gltf_splat(path: str | os.PathLike, scene: GaussianScene) -> None:
    """Write ``scene`` (our +y-down world) to ``path`` as .glb with KHR_gaussian_splatting, atomically."""
    atomic_write_bytes(path, glb_bytes(scene))


# ------------------------------------------------------------------------------------------
def read_glb_attributes(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """(glTF JSON, first primitive's attributes name -> float32 array) of a .glb whose
    accessors are tightly packed floats (what glb_bytes writes). Raises UserInputError otherwise."""
    try:
        raw = open(path, "rb").read()
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such glTF file") from None
    if len(raw) < 20 or struct.unpack_from("<I", raw)[0] != _GLB_MAGIC:
        raise UserInputError(f"{path}: not a binary glTF (.glb) file")
    json_len, kind = struct.unpack_from("<II", raw, 12)
    if kind != _JSON_CHUNK:
        raise UserInputError(f"{path}: the first GLB chunk is not JSON")
    doc = json.loads(raw[20:20 + json_len])
    at = 20 + json_len
    bin_len, kind = struct.unpack_from("<II", raw, at)
    if kind != _BIN_CHUNK:
        raise UserInputError(f"{path}: no binary GLB chunk")
    binary = raw[at + 8: at + 8 + bin_len]
    prim = doc["meshes"][0]["primitives"][0]
    out = {}
    for name, index in prim["attributes"].items():
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        if acc["componentType"] != _FLOAT or "byteStride" in view:
            raise UserInputError(f"{path}: attribute {name} is not tightly packed float (not read here)")
        width = _WIDTH[acc["type"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        a = np.frombuffer(binary, dtype="<f4", count=acc["count"] * width, offset=start)
        out[name] = a.reshape(acc["count"], width) if width > 1 else a.copy()
    return doc, out


def read_gltf_splat(path: str | os.PathLike, config: GaussianConfig | None = None) -> GaussianScene:
    """Read a .glb written by write_gltf_splat back into a GaussianScene in OUR +y-down world
    (the inverse of glb_bytes up to float rounding). Our own reader, for round-trip tests."""
    doc, attrs = read_glb_attributes(path)
    prim = doc["meshes"][0]["primitives"][0]
    if EXTENSION not in prim.get("extensions", {}):
        raise UserInputError(f"{path}: the primitive has no {EXTENSION} extension")
    degree = max((d for d in range(4) if all(n in attrs for n in sh_attribute_names(d))), default=-1)
    if degree < 0:
        raise UserInputError(f"{path}: no {PREFIX}SH_DEGREE_0_COEF_0 attribute")
    n = len(attrs["POSITION"])
    base = config or GaussianConfig()
    up = GaussianScene(GaussianConfig(**{**base.__dict__, "sh_degree": degree, "feature_dim": 0}), num=n)
    opacity = np.clip(attrs[PREFIX + "OPACITY"].astype(np.float64), 1e-7, 1 - 1e-7)
    coeffs = np.stack([attrs[name] for name in sh_attribute_names(degree)], axis=1)
    with torch.no_grad():
        up.means.copy_(torch.from_numpy(attrs["POSITION"].copy()))
        up.quats.copy_(torch.from_numpy(attrs[PREFIX + "ROTATION"][:, [3, 0, 1, 2]].copy()))
        up.log_scales.copy_(torch.log(torch.from_numpy(attrs[PREFIX + "SCALE"].copy())))
        up.opacity_logits.copy_(torch.from_numpy(np.log(opacity) - np.log1p(-opacity)).float())
        up.sh0.copy_(torch.from_numpy(coeffs[:, :1].copy()))
        up.shN.copy_(torch.from_numpy(coeffs[:, 1:].copy()))
        up.scene_extent.fill_(points_extent(up.means))
    return to_y_up(up)                                                     # its own inverse
