"""A mesh of what the support cameras saw: each view's own depth map, triangulated where it is new.

Why not one fused grid: a scene seen from 2 units above the ground reaches a far limit ~50x
farther away; a single voxel size fine enough for 5 % depth at the nearest ground (about 0.1
units) cannot span the far hills (export/mesh.py's TSDF stays for a watertight surface at one
scale: ``--mesher tsdf``). Instead every support view contributes the pixels it added to the
scene (``region``: the first view all of them, later ones their ``inpainted`` pixels, which no
earlier view had), dilated by ``overlap_pixels`` so that neighbouring regions overlap instead of
leaving cracks. Pixel centres become vertices at their stored z-depth (geometry.projection);
each 2x2 block of region pixels becomes two triangles unless one of its pairs spans a depth
discontinuity (``depth_edges``). The backdrop (ViewRecord.backdrop) is never a surface; with
``backdrop_mesh`` it becomes a separate sheet on a sphere around the cameras.

Colours stay the support images' sRGB values in [0, 1] (float32); the GLB writer turns them
linear. Pure: tensors in, numpy arrays out; axes are the cameras' (OpenCV world, +y down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..geometry.cameras import Cameras
from ..geometry.projection import unproject_depth


@dataclass(frozen=True)
class ViewMeshConfig:
    """How support views become triangles (pixels and ratios; no scene units)."""

    edge_jump: float = 0.1
    """A pair of neighbouring pixels is a depth discontinuity when their inverse depths differ by
    more than this fraction of the larger one ... (the offline preset's depth noise is 1 %, so a
    noisy pair differs by ~1.4 %: 10 % is 7 sigma; measured on the `make run` scene at 256x256:
    0.05 -> coverage 86-95 %, 0.1 -> 94-97 % of the non-backdrop pixels, depth within 5 % on
    90-96 % against 86-95 %) ..."""
    edge_ratio: float = 2.0
    """... and by more than this many times the smaller of the two neighbouring steps along the
    same line. A plane has inverse depth affine in the pixel coordinates, so its steps are
    equal however grazing it is (ground seen from 2.3 units up stays whole); a silhouette is one
    step far larger than its neighbours."""
    overlap_pixels: int = 1
    """Each view's region is dilated by this many pixels into pixels earlier views already
    meshed, so neighbouring regions overlap (no crack at their seam)."""
    backdrop_radius_factor: float = 2.0
    """backdrop_mesh: the sphere radius is this x the farthest depth that is not backdrop."""
    backdrop_stride: int = 2
    """backdrop_mesh: one vertex per this many pixels per axis (the sky needs little detail)."""


@dataclass(frozen=True)
class ColouredMesh:
    """vertices (V, 3) float32 world points (the cameras' axes); faces (F, 3) int64, counter-
    clockwise seen from the camera that made them; colours (V, 3) float32 sRGB in [0, 1]."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray

    @staticmethod
    def concat(parts: "list[ColouredMesh]") -> "ColouredMesh":
        """One mesh holding all ``parts`` (faces re-indexed); an empty mesh for no parts."""
        if not parts:
            return ColouredMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64),
                                np.zeros((0, 3), np.float32))
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return ColouredMesh(np.concatenate([p.vertices for p in parts]).astype(np.float32),
                            np.concatenate([p.faces + o for p, o in zip(parts, offsets)]).astype(np.int64),
                            np.concatenate([p.colours for p in parts]).astype(np.float32))


def depth_edges(depth: Tensor, config: ViewMeshConfig = ViewMeshConfig()) -> tuple[Tensor, Tensor]:
    """Depth discontinuities between neighbouring pixels of ``depth`` (H, W) z-depth (> 0 where
    used): (across (H, W-1) bool, True where pixel (i, j) and (i, j+1) lie on different
    surfaces; down (H-1, W) bool, the same for (i, j) and (i+1, j)). See ViewMeshConfig."""
    inv = 1.0 / depth.float().clamp_min(1e-9)

    def along(w: Tensor) -> Tensor:                 # w (L, N): pairs along the last axis
        step = (w[:, 1:] - w[:, :-1]).abs()                            # (L, N-1)
        big = torch.full_like(step[:, :1], float("inf"))
        before = torch.cat([big, step[:, :-1]], dim=1)                 # the step before each pair
        after = torch.cat([step[:, 1:], big], dim=1)                   # and after it
        neighbour = torch.minimum(before, after)
        neighbour = torch.where(torch.isinf(neighbour), step, neighbour)   # a 2-pixel line
        jump = step > config.edge_jump * torch.maximum(w[:, 1:], w[:, :-1])
        return jump & (step > config.edge_ratio * neighbour)

    return along(inv), along(inv.T).T


def grid_faces(keep: Tensor, across: Tensor, down: Tensor) -> np.ndarray:
    """Two triangles per 2x2 block of pixels all in ``keep`` (H, W) bool with no discontinuity
    (``across``, ``down`` from depth_edges) on its four sides. Vertex index = row * W + col.
    Front faces (counter-clockwise, normal toward the camera that saw them)."""
    H, W = keep.shape
    a = keep[:-1, :-1] & keep[:-1, 1:] & keep[1:, :-1] & keep[1:, 1:]
    a = a & ~across[:-1] & ~across[1:] & ~down[:, :-1] & ~down[:, 1:]
    rows, cols = torch.nonzero(a, as_tuple=True)
    tl = (rows * W + cols).numpy().astype(np.int64)
    tr, bl, br = tl + 1, tl + W, tl + W + 1
    # camera frame (+x right, +y down, +z forward): (bl - tl) x (tr - tl) = (0,1,0) x (1,0,0)
    # = (0,0,-1) points back at the camera, so (tl, bl, tr) and (tr, bl, br) are front faces
    return np.concatenate([np.stack([tl, bl, tr], 1), np.stack([tr, bl, br], 1)])


def _dilate(mask: Tensor, pixels: int) -> Tensor:
    if pixels <= 0:
        return mask
    k = 2 * pixels + 1
    return F.max_pool2d(mask[None, None].float(), k, stride=1, padding=pixels)[0, 0] > 0


def view_region(new: Tensor, valid: Tensor, backdrop: Tensor, depth: Tensor, config: ViewMeshConfig) -> Tensor:
    """(H, W) bool pixels a view meshes: its ``new`` pixels dilated by overlap_pixels, kept only
    where ``valid``, not ``backdrop`` and with positive depth."""
    return _dilate(new, config.overlap_pixels) & valid & ~backdrop & (depth > 0)


def view_surface(rgb: Tensor, depth: Tensor, region: Tensor, camera: Cameras,
                 config: ViewMeshConfig = ViewMeshConfig()) -> ColouredMesh:
    """The triangles of one view: rgb (H, W, 3) sRGB [0, 1], depth (H, W) z-depth, region (H, W)
    bool, camera a batch of 1 of size W x H. Unused vertices are dropped."""
    across, down = depth_edges(depth, config)
    faces = grid_faces(region, across, down)
    points = unproject_depth(depth[None].float(), camera)[0].reshape(-1, 3)
    return _compact(points.numpy(), faces, rgb.reshape(-1, 3).float().numpy())


def backdrop_sheet(rgb: Tensor, backdrop: Tensor, camera: Cameras, centre: Tensor, radius: float,
                   config: ViewMeshConfig = ViewMeshConfig()) -> ColouredMesh:
    """The ``backdrop`` (H, W) bool pixels of one view (every backdrop_stride-th per axis) on the
    sphere of ``radius`` around ``centre`` (3,) world, as triangles between neighbouring samples."""
    s = config.backdrop_stride
    sub = backdrop[s // 2::s, s // 2::s]
    h, w = sub.shape
    rows = torch.arange(s // 2, camera.height, s)[:h].float() + 0.5
    cols = torch.arange(s // 2, camera.width, s)[:w].float() + 0.5
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    K, c2w = camera.K[0].float(), camera.c2w[0].float()
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    dirs = F.normalize(torch.stack([x, y, torch.ones_like(x)], -1) @ c2w[:3, :3].T, dim=-1).reshape(-1, 3)
    origin = c2w[:3, 3]
    oc = origin - centre                       # ray from inside the sphere: t = -b + sqrt(b^2 - c)
    b = dirs @ oc
    t = -b + torch.sqrt((b * b - (float(oc @ oc) - radius * radius)).clamp_min(0))
    points = origin + t[:, None] * dirs
    none = torch.zeros(h, max(w - 1, 0), dtype=torch.bool)
    faces = grid_faces(sub, none, torch.zeros(max(h - 1, 0), w, dtype=torch.bool))
    return _compact(points.numpy(), faces, rgb[s // 2::s, s // 2::s].reshape(-1, 3).float().numpy())


def _compact(points: np.ndarray, faces: np.ndarray, colours: np.ndarray) -> ColouredMesh:
    used = np.unique(faces)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return ColouredMesh(points[used].astype(np.float32), remap[faces], np.clip(colours[used], 0, 1).astype(np.float32))
