"""An independent check of GLB meshes: a glTF reader (pygltflib) and a plain z-buffer rasteriser.

Shares no code with the meshers (export/view_mesh.py, export/mesh.py) nor the GLB writer: it
reads the file as any glTF viewer would (COLOR_0 linear, float or normalised integers), turns
the colours back to sRGB as the viewer displays them, and rasterises the triangles at pixel
centres with a z-buffer (perspective-correct depth and colour). Used by tests/export and by
benchmarks/bench_mesh.py.
"""

from __future__ import annotations

import numpy as np
import torch

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def read_accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    """Accessor ``index`` as an (count, width) array (normalised integers scaled to [0, 1])."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = np.dtype(_COMPONENT[acc.componentType]).newbyteorder("<")
    width = _WIDTH[acc.type]
    stride = view.byteStride or dtype.itemsize * width
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    rows = [np.frombuffer(blob, dtype=dtype, count=width, offset=start + i * stride) for i in range(acc.count)] \
        if stride != dtype.itemsize * width else \
        [np.frombuffer(blob, dtype=dtype, count=width * acc.count, offset=start)]
    out = np.concatenate(rows).reshape(acc.count, width)
    if acc.normalized:
        out = out.astype(np.float64) / np.iinfo(dtype).max
    return out


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """What a viewer displays for linear colours (IEC 61966-2-1)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def read_glb_nodes(path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """node name -> (vertices (V, 3) in glTF's +y-up world, faces (F, 3), displayed sRGB (V, 3))."""
    import pygltflib

    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    out = {}
    for node in gltf.nodes:
        assert node.matrix is None and node.translation is None and node.rotation is None
        prim = gltf.meshes[node.mesh].primitives[0]
        verts = read_accessor(gltf, blob, prim.attributes.POSITION).astype(np.float64)
        faces = read_accessor(gltf, blob, prim.indices).reshape(-1, 3).astype(np.int64)
        linear = read_accessor(gltf, blob, prim.attributes.COLOR_0)[:, :3].astype(np.float64)
        out[node.name] = (verts, faces, linear_to_srgb(linear))
    return out


def rasterise(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, K: np.ndarray, c2w: np.ndarray,
              width: int, height: int, near: float = 1e-3, max_candidates: int = 4_000_000
              ) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer render of a triangle mesh (world vertices (V, 3) in the camera's axes, OpenCV)
    at one pinhole camera. Returns depth (H, W) z-depth (inf where no triangle covers the pixel
    centre) and rgb (H, W, 3) (perspective-correct interpolation of the vertex colours).
    Triangles with a vertex nearer than ``near`` are skipped (no clipping)."""
    v = torch.as_tensor(vertices, dtype=torch.float64)
    R = torch.as_tensor(c2w, dtype=torch.float64)[:3, :3]
    t = torch.as_tensor(c2w, dtype=torch.float64)[:3, 3]
    cam = (v - t) @ R                                           # world -> camera: R^T (v - t)
    Kt = torch.as_tensor(K, dtype=torch.float64)
    z = cam[:, 2]
    uv = (cam @ Kt.T)[:, :2] / z.clamp_min(1e-12)[:, None]
    f = torch.as_tensor(faces, dtype=torch.long)
    f = f[(z[f] > near).all(1)]
    col = torch.as_tensor(colours, dtype=torch.float64)
    p = uv[f]                                                   # (F, 3, 2)
    lo = torch.ceil(p.min(1).values - 0.5).clamp_min(0)
    hi = torch.floor(p.max(1).values - 0.5)
    hi = torch.minimum(hi, torch.tensor([width - 1.0, height - 1.0], dtype=torch.float64))
    n = (hi - lo + 1).clamp_min(0)
    count = (n[:, 0] * n[:, 1]).long()
    keep = count > 0
    f, p, lo, n, count = f[keep], p[keep], lo[keep], n[keep], count[keep]
    zbuf = torch.full((height * width,), float("inf"), dtype=torch.float64)
    rgb = torch.zeros(height * width, 3, dtype=torch.float64)
    ends = torch.cumsum(count, 0)
    start = 0
    while start < len(f):                                       # chunks of bounded candidate count
        base = int(ends[start - 1]) if start else 0
        stop = int(torch.searchsorted(ends, base + max_candidates, right=True))
        stop = max(stop, start + 1)
        sl = slice(start, stop)
        tri = torch.repeat_interleave(torch.arange(start, stop), count[sl])
        offset = torch.arange(len(tri)) - torch.repeat_interleave(ends[sl] - count[sl] - base, count[sl])
        nx = n[tri, 0].long()
        px = lo[tri, 0] + (offset % nx)
        py = lo[tri, 1] + torch.div(offset, nx, rounding_mode="floor")
        q = torch.stack([px + 0.5, py + 0.5], -1)
        a, b, c = p[tri, 0], p[tri, 1], p[tri, 2]

        def edge(p0, p1, x):
            return (p1[:, 0] - p0[:, 0]) * (x[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (x[:, 0] - p0[:, 0])
        area = edge(a, b, c)
        w0, w1, w2 = edge(b, c, q) / area, edge(c, a, q) / area, edge(a, b, q) / area
        # inclusive edges (a pixel centre on a triangle's edge is covered): the views mesher puts
        # vertices exactly at pixel centres, where rounding decides the sign
        tol = -1e-9
        inside = (area.abs() > 1e-12) & (w0 >= tol) & (w1 >= tol) & (w2 >= tol)
        tri, w0, w1, w2, px, py = tri[inside], w0[inside], w1[inside], w2[inside], px[inside], py[inside]
        iz = torch.stack([1 / z[f[tri, 0]], 1 / z[f[tri, 1]], 1 / z[f[tri, 2]]], -1)
        bary = torch.stack([w0, w1, w2], -1) * iz
        depth = 1.0 / bary.sum(-1)
        colour = (bary[..., None] * col[f[tri]]).sum(1) * depth[:, None]
        pix = (py * width + px).long()
        zbuf.scatter_reduce_(0, pix, depth, reduce="amin")
        win = depth <= zbuf[pix]
        rgb[pix[win]] = colour[win]
        start = stop       # a nearer triangle of a later chunk overwrites the colour; a farther one cannot
    return zbuf.reshape(height, width).numpy(), rgb.reshape(height, width, 3).numpy()


def glb_at_view(nodes, name: str, K, c2w, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise node ``name`` of read_glb_nodes at a camera of the run (OpenCV world: the
    glTF +y-up vertices are turned back by 180 degrees about x)."""
    verts, faces, colours = nodes[name]
    return rasterise(verts * np.array([1.0, -1.0, -1.0]), faces, colours, np.asarray(K), np.asarray(c2w),
                     width, height)


def mesh_scores(depth: np.ndarray, rgb: np.ndarray, view_depth: np.ndarray, view_rgb: np.ndarray,
                surface: np.ndarray) -> dict[str, float]:
    """Coverage (fraction of ``surface`` pixels the mesh covers), depth_ok (fraction of them
    within 5 % of the stored depth), psnr (dB, colours on covered surface pixels)."""
    covered = surface & np.isfinite(depth)
    rel = np.abs(depth[covered] - view_depth[covered]) / view_depth[covered]
    mse = float(((rgb[covered] - view_rgb[covered]) ** 2).mean()) if covered.any() else 1.0
    return {"coverage": float(covered.sum() / max(surface.sum(), 1)),
            "depth_ok": float((rel <= 0.05).sum() / max(surface.sum(), 1)),
            "psnr": float(-10 * np.log10(max(mse, 1e-12)))}
