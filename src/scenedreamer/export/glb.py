"""Binary glTF 2.0 (GLB) of vertex-coloured triangle meshes, one named node per mesh.

Written by hand (json + numpy) because the colours must be linear and more precise than 8 bits:
glTF defines COLOR_0 as linear, so sRGB support-image colours are converted (the viewer turns
them back to sRGB for display) and stored as normalised unsigned 16-bit RGBA (8-bit linear
would band the dark tones; trimesh writes only 8-bit colours). Each element is 8 bytes, so the
4-byte alignment glTF requires of vertex attributes holds. The material is KHR_materials_unlit
with a non-metallic, fully rough PBR fallback: a viewer shows the colours the cameras saw rather
than glTF's default fully metallic material (dark in three.js). glTF is +y up, right-handed:
pass vertices already turned (export.points.points_to_y_up).
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from ..atomic import atomic_write_bytes

_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_FLOAT, _UNSIGNED_SHORT, _UNSIGNED_INT = 5126, 5123, 5125


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1), same shape, float64."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Inverse of srgb_to_linear: what a glTF viewer displays for linear COLOR_0 values."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def glb_bytes(meshes: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """A GLB holding one node per (name, vertices (V, 3) float y-up, faces (F, 3) int, colours
    (V, 3) sRGB in [0, 1]). Meshes without faces are left out; at least one must remain."""
    meshes = [m for m in meshes if len(m[2]) > 0]
    if not meshes:
        raise ValueError("glb_bytes: no triangles to write")
    blob = bytearray()
    views, accessors, gltf_meshes, nodes = [], [], [], []

    def add_view(data: bytes, target: int) -> int:
        while len(blob) % 4:
            blob.append(0)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data), "target": target})
        blob.extend(data)
        return len(views) - 1

    for name, vertices, faces, colours in meshes:
        pos = np.ascontiguousarray(vertices, dtype="<f4")
        linear = srgb_to_linear(colours)
        rgba = np.concatenate([linear, np.ones((len(linear), 1))], axis=1)
        col = np.ascontiguousarray(np.rint(rgba * 65535.0), dtype="<u2")
        idx = np.ascontiguousarray(faces, dtype="<u4").reshape(-1)
        if len(pos) and int(np.asarray(faces).max()) >= len(pos):
            raise ValueError(f"glb_bytes: mesh {name!r} has a face index beyond its {len(pos)} vertices")
        first = len(accessors)
        accessors += [
            {"bufferView": add_view(pos.tobytes(), _ARRAY_BUFFER), "componentType": _FLOAT, "count": len(pos),
             "type": "VEC3", "min": pos.min(0).tolist(), "max": pos.max(0).tolist()},
            {"bufferView": add_view(col.tobytes(), _ARRAY_BUFFER), "componentType": _UNSIGNED_SHORT,
             "normalized": True, "count": len(col), "type": "VEC4"},
            {"bufferView": add_view(idx.tobytes(), _ELEMENT_ARRAY_BUFFER), "componentType": _UNSIGNED_INT,
             "count": len(idx), "type": "SCALAR"},
        ]
        gltf_meshes.append({"name": name, "primitives": [{
            "attributes": {"POSITION": first, "COLOR_0": first + 1}, "indices": first + 2, "material": 0,
            "mode": 4}]})
        nodes.append({"name": name, "mesh": len(gltf_meshes) - 1})
    while len(blob) % 4:
        blob.append(0)
    doc = {
        "asset": {"version": "2.0", "generator": "scenedreamer"},
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0, "scenes": [{"nodes": list(range(len(nodes)))}], "nodes": nodes, "meshes": gltf_meshes,
        "materials": [{"name": "vertex colour (unlit)", "doubleSided": True,
                       "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0,
                                                "roughnessFactor": 1.0},
                       "extensions": {"KHR_materials_unlit": {}}}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
    }
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)                     # the JSON chunk is padded with spaces
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(blob), b"BIN\0"), bytes(blob)])


def write_glb(path: str | os.PathLike, meshes: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
    """Write ``meshes`` (see glb_bytes) to ``path`` as GLB, atomically (temp file, then rename)."""
    atomic_write_bytes(path, glb_bytes(meshes))
