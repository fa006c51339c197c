"""A vertex-coloured triangle mesh of a scene by TSDF fusion of depth maps (``--mesher tsdf``).

A watertight-leaning surface at one scale (the voxel size); the default GLB mesher is
export/view_mesh.py, which keeps each view's own resolution near and far.

Fusion (``tsdf_fuse``): every voxel centre of a regular grid is projected into each view; where
it lands on a pixel with known depth d, its signed distance along the view's optical axis is
``d - z`` (positive in front of the surface, negative behind); where that lies within
+-truncation it is averaged (as distance / truncation) over views with weight 1 per observation.
Voxels farther from the surface are not updated by that view: behind it they may be free space
seen by another view, and in front of it (free-space votes) they would erode every object by a
pixel footprint at its silhouettes, where a voxel's nearest pixel sees the background (measured
on the analytic sphere of tests/export/test_mesh.py: errors up to 3 voxels with them, under 1
without). Colour is averaged the same way. Extraction
(``extract_mesh``): skimage's marching cubes at level 0, only in cubes whose 8 corners were all
observed (so no faces appear between fused and unobserved space), vertex colour by weighted
trilinear interpolation of the colour grid, and connected components smaller than a fraction
of the mesh dropped (floaters). Pure: tensors in, arrays out; no rendering, no stage order.

Axes are those of the cameras (our OpenCV world, +y down); ``points.points_to_y_up`` turns the
vertices for glTF, which is +y up (export/glb.py expects them turned already).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..geometry.projection import project_points, unproject_depth
from .view_mesh import ViewMeshConfig, depth_edges


@dataclass(frozen=True)
class MeshConfig:
    """Settings of the GLB mesh: which mesher, and TSDF fusion and surface extraction (lengths in
    scene units unless "voxels")."""

    mesher: str = "views"
    """"views": each support view's depth map where it added content (export/view_mesh.py: keeps
    every view's resolution near and far); "tsdf": one fused grid (this module: one scale)."""
    views: ViewMeshConfig = field(default_factory=ViewMeshConfig)
    """How support views become triangles (also the depth discontinuities TSDF fusion skips)."""

    voxel_size: float | None = None
    """Voxel edge length; None: the longest side of the fusion bounds / auto_voxels, but no
    smaller than the pixel footprint at the median depth (finer voxels than the depth maps'
    sampling only add staircase noise)."""
    auto_voxels: int = 256
    """Voxels along the longest side of the bounds when voxel_size is None."""
    max_voxels: int = 2 ** 26
    """Refuse grids with more voxels (67M: about 1.3 GB of float32 grids: tsdf, weight, rgb)."""
    truncation_voxels: float = 3.0
    """Truncation distance of the signed distance, in voxels."""
    bounds_percentile: float = 1.0
    """The bounds on each axis span the depth points from this percentile to 100 minus it
    (drops stray far points that would inflate the grid)."""
    min_component_fraction: float = 0.02
    """Drop connected components with fewer faces than this fraction of all faces."""
    chunk_voxels: int = 2 ** 21
    """Voxels projected at once (bounds peak memory; results do not depend on it)."""

    def __post_init__(self) -> None:
        if self.mesher not in ("views", "tsdf"):
            raise UserInputError(f"--mesher {self.mesher!r}: choose views or tsdf")


@dataclass(frozen=True)
class TsdfVolume:
    """A fused grid. tsdf (X, Y, Z) float32 in [-1, 1] (signed distance / truncation, + in
    front of surfaces); weight (X, Y, Z) float32 observations (0 = unobserved); rgb (X, Y, Z, 3)
    float32 mean colour in [0, 1] of the same observations; voxel (i, j, k) has its centre at
    origin (3,) + (i, j, k) * voxel_size."""

    tsdf: Tensor
    weight: Tensor
    rgb: Tensor
    origin: Tensor
    voxel_size: float


@dataclass(frozen=True)
class TriangleMesh:
    """vertices (V, 3) float32 world points; faces (F, 3) int64 vertex indices, counter-clockwise
    seen from the front (the side the cameras saw); colours (V, 3) uint8 sRGB."""

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray


def fusion_grid(depths: Tensor, valid: Tensor, cameras: Cameras,
                config: MeshConfig = MeshConfig()) -> tuple[Tensor, tuple[int, int, int], float]:
    """(origin (3,), grid shape (X, Y, Z), voxel size) covering the depth points of ``depths``
    (B, H, W) where ``valid`` (B, H, W): per axis from the bounds_percentile to 100 minus it,
    padded by the truncation + 1 voxel. Raises UserInputError when there is no valid depth or
    the grid would exceed max_voxels (the message says which voxel size would fit)."""
    pts = unproject_depth(depths, cameras)[valid]
    if len(pts) == 0:
        raise UserInputError("no opaque rendered pixel to fuse into a mesh")
    stride = max(1, len(pts) // 1_000_000)                       # a deterministic subsample
    sample = pts[::stride].double().cpu().numpy()
    lo = np.percentile(sample, config.bounds_percentile, axis=0)
    hi = np.percentile(sample, 100.0 - config.bounds_percentile, axis=0)
    extent = float(max((hi - lo).max(), 1e-6))
    if config.voxel_size is None:
        focal = float(cameras.K[:, 0, 0].mean())
        footprint = float(depths[valid].median()) / focal
        voxel = max(extent / config.auto_voxels, footprint)
    else:
        voxel = config.voxel_size
    if not voxel > 0:
        raise UserInputError(f"--voxel-size {voxel}: must be > 0")
    pad = (config.truncation_voxels + 1.0) * voxel
    lo, hi = lo - pad, hi + pad
    shape = tuple(int(math.ceil((h - l) / voxel)) + 1 for l, h in zip(lo, hi))
    count = shape[0] * shape[1] * shape[2]
    if count > config.max_voxels:
        fit = voxel * (count / config.max_voxels) ** (1 / 3) * 1.01
        raise UserInputError(f"voxel size {voxel:.4g}: a {shape[0]}x{shape[1]}x{shape[2]} grid ({count:,} voxels) "
                             f"exceeds the limit of {config.max_voxels:,}; use --voxel-size {fit:.4g} or larger")
    return torch.tensor(lo, dtype=torch.float32), shape, float(voxel)


def tsdf_fuse(depths: Tensor, colours: Tensor, valid: Tensor, cameras: Cameras,
              config: MeshConfig = MeshConfig(), on_event: EventSink | None = None) -> TsdfVolume:
    """Fuse z-depth maps ``depths`` (B, H, W) (scene units) and ``colours`` (B, H, W, 3) in [0, 1],
    known where ``valid`` (B, H, W) bool, seen by ``cameras`` (B cameras of size W x H, OpenCV
    axes), into a TSDF grid (see the module docstring). Runs on the device of ``depths``.
    Pixels at a depth discontinuity (``edge_pixels``) are not fused. Emits one "mesh" event per
    block of chunk_voxels voxels. Raises UserInputError for an empty or too large grid."""
    device = depths.device
    depths = depths.float()
    valid = valid & (depths > 0)
    valid = valid & ~edge_pixels(depths, valid, config.views)
    origin, shape, voxel = fusion_grid(depths, valid, cameras, config)
    X, Y, Z = shape
    count = X * Y * Z
    trunc = config.truncation_voxels * voxel
    tsdf = torch.ones(count, dtype=torch.float32, device=device)
    weight = torch.zeros(count, dtype=torch.float32, device=device)
    rgb_sum = torch.zeros(count, 3, dtype=torch.float32, device=device)
    origin_d = origin.to(device)
    cams = cameras.to(device)
    H, W = depths.shape[1:]
    flat_depths, flat_colours, flat_valid = depths.reshape(len(depths), -1), colours.float().reshape(
        len(depths), -1, 3), valid.reshape(len(depths), -1)
    chunks = range(0, count, config.chunk_voxels)
    for c, start in enumerate(chunks):
        # voxel centres once per chunk, then every view (not once per view: issue 20)
        flat = torch.arange(start, min(start + config.chunk_voxels, count), device=device)
        ijk = torch.stack([flat // (Y * Z), (flat // Z) % Y, flat % Z], dim=-1).float()
        centres = origin_d + ijk * voxel
        for b in range(len(depths)):
            uv, z = project_points(centres, cams[b])
            uv, z = uv[0], z[0]
            col, row = torch.floor(uv[:, 0]), torch.floor(uv[:, 1])   # pixel (row, col) holds centre + 0.5
            inside = (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
            idx = torch.nonzero(inside).squeeze(1)
            pix = (row[idx] * W + col[idx]).long()
            seen = flat_valid[b][pix]
            idx, pix = idx[seen], pix[seen]
            sdf = flat_depths[b][pix] - z[idx]
            keep = sdf.abs() <= trunc                             # the truncation band only
            idx, pix, sdf = idx[keep], pix[keep], sdf[keep]
            target = flat[idx]
            w_old = weight[target]
            tsdf[target] = (tsdf[target] * w_old + sdf / trunc) / (w_old + 1.0)
            weight[target] = w_old + 1.0
            rgb_sum[target] += flat_colours[b][pix]
        emit(on_event, "mesh", step=c + 1, total=len(chunks), message=f"fusing block {c + 1}/{len(chunks)}")
    rgb = rgb_sum / weight.clamp_min(1.0)[:, None]
    return TsdfVolume(tsdf.reshape(shape), weight.reshape(shape), rgb.reshape(*shape, 3), origin, voxel)


def edge_pixels(depths: Tensor, valid: Tensor, config: ViewMeshConfig = ViewMeshConfig()) -> Tensor:
    """(B, H, W) bool: valid pixels of ``depths`` (B, H, W) on either side of a depth
    discontinuity (view_mesh.depth_edges: a jump in inverse depth, so grazing ground is kept) or
    next to an invalid pixel: at silhouettes the nearest pixel's depth belongs to the other
    surface (measured on the analytic sphere of tests/export/test_mesh.py)."""
    import torch.nn.functional as F

    bad = torch.zeros(depths.shape, dtype=torch.bool, device=depths.device)
    for i in range(len(depths)):
        d = torch.where(valid[i], depths[i], torch.ones_like(depths[i]))
        across, down = depth_edges(d, config)
        v = valid[i]
        across = across | (v[:, 1:] ^ v[:, :-1])
        down = down | (v[1:] ^ v[:-1])
        bad[i] = (F.pad(across, (0, 1)) | F.pad(across, (1, 0)) | F.pad(down, (0, 0, 0, 1))
                  | F.pad(down, (0, 0, 1, 0)))
    return bad & valid


def _observed_cubes(weight: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool: True at voxel (i, j, k) when all 8 corners of the cube starting there
    are observed (the mask marching cubes gets)."""
    seen = weight > 0
    cubes = seen.copy()
    cubes[-1, :, :] = cubes[:, -1, :] = cubes[:, :, -1] = False
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                if di or dj or dk:
                    cubes[:-1, :-1, :-1] &= seen[di:seen.shape[0] - 1 + di, dj:seen.shape[1] - 1 + dj,
                                                 dk:seen.shape[2] - 1 + dk]
    return cubes


def _vertex_colours(volume: TsdfVolume, index_coords: np.ndarray) -> np.ndarray:
    """(V, 3) uint8 colours at continuous voxel coordinates (V, 3): trilinear over the 8
    surrounding voxels, each weighted by whether it holds a colour."""
    rgb = volume.rgb.cpu().numpy()
    has = volume.weight.cpu().numpy() > 0
    shape = np.array(rgb.shape[:3])
    base = np.clip(np.floor(index_coords).astype(np.int64), 0, shape - 2)
    frac = np.clip(index_coords - base, 0.0, 1.0)
    total = np.zeros((len(index_coords), 3))
    norm = np.zeros(len(index_coords))
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                i, j, k = base[:, 0] + di, base[:, 1] + dj, base[:, 2] + dk
                w = (np.where(di, frac[:, 0], 1 - frac[:, 0]) * np.where(dj, frac[:, 1], 1 - frac[:, 1])
                     * np.where(dk, frac[:, 2], 1 - frac[:, 2])) * has[i, j, k]
                total += w[:, None] * rgb[i, j, k]
                norm += w
    colour = total / np.maximum(norm, 1e-12)[:, None]
    return np.rint(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)


def _faces_between_observed(verts: np.ndarray, faces: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The faces (F', 3) all of whose vertices lie on grid edges joining two observed voxels.

    skimage's ``mask`` argument only limits where marching cubes looks (0.26 still emits
    vertices in cubes with unobserved corners: 29 % of them on the analytic sphere, an inner
    shell at the truncation depth), so the rule "no faces between fused and unobserved space" is
    applied here on the output. A vertex at continuous voxel coordinates lies on the edge from
    floor(v) to ceil(v)."""
    top = np.array(seen.shape) - 1
    lo = np.clip(np.floor(verts).astype(np.int64), 0, top)
    hi = np.clip(np.ceil(verts).astype(np.int64), 0, top)
    ok = seen[lo[:, 0], lo[:, 1], lo[:, 2]] & seen[hi[:, 0], hi[:, 1], hi[:, 2]]
    return faces[ok[faces].all(axis=1)]


def _drop_small_components(vertices: np.ndarray, faces: np.ndarray, min_fraction: float
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Keep the faces of connected components (sharing vertices) with at least min_fraction of
    all faces; drop unused vertices. Returns (kept vertex indices (V',), faces reindexed (F', 3))."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    face_label = label[faces[:, 0]]
    sizes = np.bincount(face_label)
    faces = faces[sizes[face_label] >= min_fraction * len(faces)]
    used = np.unique(faces)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return used, remap[faces]


def extract_mesh(volume: TsdfVolume, config: MeshConfig = MeshConfig()) -> TriangleMesh:
    """The zero level set of ``volume`` as a TriangleMesh (world units, the cameras' axes),
    faces facing the observed (positive) side, small components dropped. Raises
    UserInputError when no surface was found."""
    from skimage.measure import marching_cubes

    tsdf = volume.tsdf.cpu().numpy()
    mask = _observed_cubes(volume.weight.cpu().numpy())
    if not (mask.any() and (tsdf[mask] < 0).any() and (tsdf[mask] > 0).any()):
        raise UserInputError("no surface found in the fused depths (try a smaller --voxel-size)")
    verts, faces, _, _ = marching_cubes(tsdf, level=0.0, mask=mask, gradient_direction="descent",
                                        allow_degenerate=False)
    if len(faces) == 0:
        raise UserInputError("no surface found in the fused depths (try a smaller --voxel-size)")
    faces = _faces_between_observed(verts, faces.astype(np.int64), volume.weight.cpu().numpy() > 0)
    if len(faces) == 0:
        raise UserInputError("no surface found in the fused depths (try a smaller --voxel-size)")
    used, faces = _drop_small_components(verts, faces, config.min_component_fraction)
    verts = verts[used]
    colours = _vertex_colours(volume, verts)
    world = volume.origin.numpy()[None, :].astype(np.float64) + verts * volume.voxel_size
    return TriangleMesh(world.astype(np.float32), faces, colours)
