"""A walkable collision mesh of the scene and where to stand in it (`export --format collider`).

The collider is the scene mesh (pipeline/run_exports.mesh_from_run: the support views' surface,
backdrop left out) simplified by vertex clustering, plus a ground heightfield that closes the
floor's holes (ground the cameras never saw, gaps between view meshes). Frames: everything in
this module works in the run's world (OpenCV: +y DOWN, scene units); the caller turns vertices to
glTF's +y up (export.points.points_to_y_up) when it writes the GLB and spawn.json.

Ground heightfield: a grid of nodes (``ColliderConfig.ground_cell`` apart) over the cameras'
footprint plus a margin. A node's height is the median of the lowest layer of mesh vertices
within half a cell of it (the ground is the lowest surface below the cameras; a canopy or ceiling
above it is not ground). Nodes that saw nothing, or stand out above the plane fitted to the ground around them (a rock,
furniture, a canopy with no ground seen under it), continue the plane fitted to the observed nodes around
them. That fill is a robust local fit (``_robust_local_planes``): each filled node's plane is
fitted to the observed nodes in its own Gaussian window (sigma ``ColliderConfig.fill_radius``,
wider where the nearest observed node is farther, up to ``ColliderConfig.max_fill_radius``) by
iteratively reweighted least squares with Tukey's bisquare weights scaled by that window's median
residual (``ColliderConfig.outlier_mads``), so a group of observed nodes that disagrees with the
ground around it stops steering the plane. It is robust because the floor under a camera (never
seen: right under it) is extrapolated from the nearest ground the views saw, and that is where
they disagree most: a generated view's lowest rows 10-20 cm off the first view's ground, the foot
of a wall or the side of a low object landing in a node; a least-squares plane carries such a
node's error into the floor under the camera (7 cm under the `make run` scene's cameras). No observed
node at all = no ground found (``GroundField.found`` False, the caller warns).

The slow, obviously-correct twin of the clustering is ``cluster_vertices_reference`` (a Python
dict loop); tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .view_mesh import ColouredMesh

ROBUST_WINDOW_SIGMAS = 3.0
"""the robust fill's Gaussian windows end this many sigmas out (weight 1 % of the centre's)"""


@dataclass(frozen=True)
class ColliderConfig:
    """Tunables of the collider export (lengths in scene units; metres on the procedural world
    and on a run whose first-view depth is metric)."""

    max_triangles: int = 200_000
    """triangle budget of the collider (clustering cell doubles until the mesh fits; the
    heightfield counts too)"""
    cluster_cell: float = 0.04
    """first vertex-clustering cell edge tried: vertices move at most half its diagonal (~3.5 cm),
    inside the 5 cm floor accuracy the collider promises"""
    ground_cell: float = 0.5
    """ground heightfield node spacing: finer than the capsule's 0.4 m diameter would add nothing
    walkable, coarser would bend slopes"""
    ground_margin: float = 8.0
    """the heightfield reaches this far beyond the outermost camera (horizontally)"""
    ground_layer: float = 0.25
    """vertices within this of a node's lowest vertex count as its ground (grass, noise)"""
    max_step: float = 0.6
    """a node this much higher than the plane fitted to the ground around it is not ground (a
    rock, furniture, a canopy with no ground seen under it): refilled from that plane"""
    object_step: float = 0.3
    """an observed node this much above the lowest ground within fill_radius is an object on it
    (a sofa, a rock), whatever the slope of a fit says"""
    object_quantile: float = 0.9
    """which ground counts as lowest around a node: this quantile of the y (+y down) of the
    observed nodes (0.9: robust to a few nodes seen below the ground)"""
    envelope_passes: int = 3
    """fits of the ground's lower envelope (each drops the nodes standing above the last fit)"""
    fill_radius: float = 2.0
    """unseen ground continues the plane fitted to the seen ground this far around (Gaussian
    sigma, scene units): the ground right under a camera is outside its view"""
    max_fill_radius: float = 4.0
    """where the nearest seen ground is farther than sqrt(2) fill_radius from a filled node, its
    window widens (sigma = that distance / sqrt(2), so the nearest seen ground keeps weight e^-1),
    up to this sigma: a fit far from the seen ground otherwise rests on its window's tail alone"""
    outlier_mads: float = 6.0
    """robust fill: an observed node's weight in a filled node's plane is Tukey's bisquare
    (1 - (r/t)^2)^2 of its residual r from that plane, t = this many (Gaussian-weighted) median
    absolute residuals of the window (LOWESS's 6), 0 beyond"""
    outlier_floor: float = 0.05
    """the bisquare's t is never below this (scene units): where the seen ground agrees to the
    millimetre a node is cut only 5 cm off the plane (the floor accuracy promised), not at noise"""
    robust_iterations: int = 30
    """at most this many reweighted fits per filled node (most settle within 5-15)"""
    robust_tolerance: float = 1e-3
    """a filled node's robust fit has settled once its height moves less than this (scene units)"""
    max_ground_depth: float = 20.0
    """only surfaces at most this far below the lowest camera count as ground"""

    def __post_init__(self) -> None:
        for name in ("cluster_cell", "ground_cell", "ground_margin", "ground_layer", "max_step", "fill_radius",
                     "max_ground_depth", "object_step", "outlier_mads", "outlier_floor", "robust_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ColliderConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0.5 <= self.object_quantile <= 1.0:
            raise ValueError(f"ColliderConfig.object_quantile must be in [0.5, 1], got {self.object_quantile}")
        if self.envelope_passes < 1:
            raise ValueError(f"ColliderConfig.envelope_passes must be >= 1, got {self.envelope_passes}")
        if self.max_fill_radius < self.fill_radius:
            raise ValueError(f"ColliderConfig.max_fill_radius ({self.max_fill_radius}) must be >= fill_radius "
                             f"({self.fill_radius})")
        if self.robust_iterations < 1:
            raise ValueError(f"ColliderConfig.robust_iterations must be >= 1, got {self.robust_iterations}")
        if self.max_triangles < 2:
            raise ValueError(f"ColliderConfig.max_triangles must be >= 2, got {self.max_triangles}")


def cluster_vertices(mesh: ColouredMesh, cell: float) -> ColouredMesh:
    """``mesh`` with every vertex moved to the mean of the vertices sharing its ``cell``-sized
    grid cube (scene units), faces that collapse (two corners in one cube) and repeats dropped.
    Same frame as the input; colours averaged like the positions."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if len(v) == 0:
        return mesh
    keys = np.floor(v / cell).astype(np.int64)
    inverse = _row_ids(keys - keys.min(0))
    count = np.bincount(inverse).astype(np.float64)[:, None]
    verts = np.stack([np.bincount(inverse, weights=v[:, k]) for k in range(3)], 1) / count
    cols = np.stack([np.bincount(inverse, weights=mesh.colours[:, k]) for k in range(3)], 1) / count
    faces = inverse[np.asarray(mesh.faces, dtype=np.int64)]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    # a face and its repeats (same corners, any order or winding) collide the same: keep one
    ids = _row_ids(np.sort(faces, axis=1))
    first = np.full(ids.max() + 1 if len(ids) else 0, len(ids), np.int64)
    np.minimum.at(first, ids, np.arange(len(ids)))
    faces = faces[np.sort(first)]
    used, faces = np.unique(faces, return_inverse=True)        # drop vertices no face uses
    return ColouredMesh(verts[used].astype(np.float32), faces.reshape(-1, 3).astype(np.int64),
                        cols[used].astype(np.float32))


def _row_ids(rows: np.ndarray) -> np.ndarray:
    """(N,) int64 id of each row of ``rows`` (N, 3) non-negative ints among the distinct rows,
    numbered in lexicographic order (what np.unique(axis=0, return_inverse=True) gives, but
    through one int64 code per row: np.unique over rows is ~10x slower)."""
    span = rows.max(0) + 1 if len(rows) else np.ones(3, np.int64)
    if float(span[0]) * float(span[1]) * float(span[2]) < 2.0 ** 62:
        code = (rows[:, 0] * span[1] + rows[:, 1]) * span[2] + rows[:, 2]
        return np.unique(code, return_inverse=True)[1].reshape(-1)
    return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)      # huge spans: the slow way


def cluster_vertices_reference(mesh: ColouredMesh, cell: float) -> ColouredMesh:
    """Slow twin of ``cluster_vertices`` (a dict per cube, a loop per face): the same mesh."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, p in enumerate(np.asarray(mesh.vertices, dtype=np.float64)):
        groups.setdefault(tuple(int(k) for k in np.floor(p / cell)), []).append(i)
    ordered = sorted(groups)                                    # np.unique's order: lexicographic
    slot = {i: n for n, key in enumerate(ordered) for i in groups[key]}
    faces, seen = [], set()
    for f in np.asarray(mesh.faces):
        a, b, c = (slot[int(i)] for i in f)
        if len({a, b, c}) < 3 or frozenset((a, b, c)) in seen:
            continue
        seen.add(frozenset((a, b, c)))
        faces.append((a, b, c))
    used = sorted({i for f in faces for i in f})
    new = {old: n for n, old in enumerate(used)}
    verts = [np.mean(np.asarray(mesh.vertices, np.float64)[groups[ordered[u]]], axis=0) for u in used]
    cols = [np.mean(np.asarray(mesh.colours, np.float64)[groups[ordered[u]]], axis=0) for u in used]
    return ColouredMesh(np.asarray(verts, np.float32).reshape(-1, 3),
                        np.asarray([[new[i] for i in f] for f in faces], np.int64).reshape(-1, 3),
                        np.asarray(cols, np.float32).reshape(-1, 3))


@dataclass(frozen=True)
class GroundField:
    """A heightfield over the xz plane of the run's world (+y down).

    origin: (x0, z0) of node (0, 0); cell: node spacing; height: (Nz, Nx) float64 ground y of
    each node (world y, +y down) after filling; observed: (Nz, Nx) bool nodes measured from the
    mesh (the rest were filled). found: whether any node was observed."""

    origin: tuple[float, float]
    cell: float
    height: np.ndarray
    observed: np.ndarray

    @property
    def found(self) -> bool:
        return bool(self.observed.any())

    def at(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Ground y (+y down) at world points (x, z) (any equal shapes), bilinear between nodes,
        clamped to the field's edge."""
        nz, nx = self.height.shape
        u = np.clip((np.asarray(x, np.float64) - self.origin[0]) / self.cell, 0, nx - 1)
        w = np.clip((np.asarray(z, np.float64) - self.origin[1]) / self.cell, 0, nz - 1)
        i0, j0 = np.minimum(np.floor(w).astype(int), nz - 2), np.minimum(np.floor(u).astype(int), nx - 2)
        i0, j0 = np.maximum(i0, 0), np.maximum(j0, 0)
        fw, fu = w - i0, u - j0
        h = self.height
        i1, j1 = np.minimum(i0 + 1, nz - 1), np.minimum(j0 + 1, nx - 1)
        return ((1 - fw) * ((1 - fu) * h[i0, j0] + fu * h[i0, j1]) + fw * ((1 - fu) * h[i1, j0] + fu * h[i1, j1]))

    def mesh(self) -> ColouredMesh:
        """The heightfield as triangles (two per grid square), faces wound counter-clockwise seen
        from above (-y); a neutral grey."""
        nz, nx = self.height.shape
        xs = self.origin[0] + self.cell * np.arange(nx)
        zs = self.origin[1] + self.cell * np.arange(nz)
        gx, gz = np.meshgrid(xs, zs)
        verts = np.stack([gx, self.height, gz], -1).reshape(-1, 3).astype(np.float32)
        idx = np.arange(nz * nx).reshape(nz, nx)
        a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
        # seen from -y (above) with x right and z up the page: a -> c -> b is counter-clockwise
        faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
        return ColouredMesh(verts, faces.astype(np.int64), np.full((len(verts), 3), 0.5, np.float32))


def ground_field(mesh: ColouredMesh, camera_centres: np.ndarray, config: ColliderConfig = ColliderConfig()
                 ) -> GroundField:
    """The ground under and around cameras at ``camera_centres`` (N, 3) world (+y down), from the
    vertices of ``mesh`` (see the module docstring)."""
    c = np.asarray(camera_centres, np.float64).reshape(-1, 3)
    cell = config.ground_cell
    lo = np.floor((c[:, [0, 2]].min(0) - config.ground_margin) / cell) * cell
    hi = np.ceil((c[:, [0, 2]].max(0) + config.ground_margin) / cell) * cell
    nx, nz = (np.rint((hi - lo) / cell).astype(int) + 1)
    v = np.asarray(mesh.vertices, np.float64)
    lowest_camera = c[:, 1].max()                              # +y down: the lowest camera has the largest y
    v = v[(v[:, 1] > c[:, 1].min()) & (v[:, 1] < lowest_camera + config.max_ground_depth)]
    j = np.rint((v[:, 0] - lo[0]) / cell).astype(np.int64)
    i = np.rint((v[:, 2] - lo[1]) / cell).astype(np.int64)
    inside = (i >= 0) & (i < nz) & (j >= 0) & (j < nx)
    node, y = i[inside] * nx + j[inside], v[inside, 1]
    height = np.full(nz * nx, np.nan)
    if len(node):
        deepest = np.full(nz * nx, -np.inf)
        np.maximum.at(deepest, node, y)
        layer = y >= deepest[node] - config.ground_layer        # the lowest layer of each node
        node, y = node[layer], y[layer]
        order = np.lexsort((y, node))
        node, y = node[order], y[order]
        starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
        counts = np.diff(np.r_[starts, len(node)])
        # median of each node's sorted run (lower middle for even counts, upper averaged in)
        mid_lo, mid_hi = starts + (counts - 1) // 2, starts + counts // 2
        height[node[starts]] = 0.5 * (y[mid_lo] + y[mid_hi])
    height = height.reshape(nz, nx)
    observed = np.isfinite(height)
    if observed.any():
        # a lower envelope: a node standing more than max_step above the plane fitted around it
        # is an object (rock, sofa, a canopy with no ground seen under it), not ground; refit
        # without it, a few times, since objects also pull the first fits up
        candidates = observed & ~_above_lowest_around(height, observed, config)
        ground = candidates
        for _ in range(config.envelope_passes):
            fit = _local_planes(height, ground, config.fill_radius / cell)
            ground = candidates & ~(height < fit - config.max_step)       # +y down: above = smaller y
        observed = ground
        fill = _local_planes(height, ground, config.fill_radius / cell)
        fill[~ground] = _robust_local_planes(height, ground, ~ground, fill, config)
        height = np.where(ground, height, fill)
    else:
        height[:] = lowest_camera                              # no ground: a placeholder, never written
    return GroundField((float(lo[0]), float(lo[1])), cell, height, observed)


def _above_lowest_around(height: np.ndarray, observed: np.ndarray, config: ColliderConfig) -> np.ndarray:
    """(Nz, Nx) bool: observed nodes more than ``config.object_step`` above the lowest ground
    around them (the ``config.object_quantile`` of the observed heights within
    ``config.fill_radius``, +y down: a high quantile of y is low ground). Objects stand on the
    ground, so the lowest nearby ground is a level reference a plane fit cannot be tilted from."""
    from scipy import ndimage

    size = 2 * int(round(config.fill_radius / config.ground_cell)) + 1
    values = np.where(observed, height, np.nan)

    def low(window: np.ndarray) -> float:
        window = window[np.isfinite(window)]
        return float(np.quantile(window, config.object_quantile)) if len(window) else np.nan

    reference = ndimage.generic_filter(values, low, size=size, mode="constant", cval=np.nan)
    return observed & (height < reference - config.object_step)


def _local_planes(height: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """(Nz, Nx): at every node, the plane fitted by least squares with Gaussian weights
    (``sigma`` nodes) to the ``known`` nodes of ``height`` around it, evaluated there: the ground a camera
    cannot see (right under it, behind it) continues the slope it can see, instead of the step
    a nearest-neighbour fill would make. Nodes with too little known ground around them (or
    only a line of it) take the plane fitted to all known nodes."""
    from scipy import ndimage

    nz, nx = height.shape
    i, j = np.meshgrid(np.arange(nz, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij")
    w = known.astype(np.float64)
    h = np.where(known, height, 0.0)
    # weighted moments of (1, i, j) and h around every node, all by one Gaussian filter each
    terms = {"1": w, "i": w * i, "j": w * j, "ii": w * i * i, "ij": w * i * j, "jj": w * j * j,
             "h": w * h, "ih": w * i * h, "jh": w * j * h}
    m = {k: ndimage.gaussian_filter(v, sigma, mode="constant", truncate=4.0) for k, v in terms.items()}
    A = np.stack([np.stack([m["1"], m["i"], m["j"]], -1), np.stack([m["i"], m["ii"], m["ij"]], -1),
                  np.stack([m["j"], m["ij"], m["jj"]], -1)], -2)                # (Nz, Nx, 3, 3)
    b = np.stack([m["h"], m["ih"], m["jh"]], -1)
    known_i, known_j, known_h = i[known], j[known], height[known]
    G = np.stack([np.ones_like(known_i), known_i, known_j], 1)
    if len(known_h) >= 3 and np.linalg.matrix_rank(G) == 3:
        global_plane = np.linalg.lstsq(G, known_h, rcond=None)[0]
    else:                                                       # a point or a line of ground: level
        global_plane = np.array([np.median(known_h), 0.0, 0.0])
    filled = global_plane[0] + global_plane[1] * i + global_plane[2] * j
    # a local fit needs weight of a few nodes and a well-spread neighbourhood (not a line)
    det = np.linalg.det(A)
    ok = (m["1"] > 1e-3) & (np.abs(det) > 1e-6 * np.maximum(m["1"], 1e-12) ** 3 * sigma ** 4)
    coef = np.linalg.solve(A[ok], b[ok][..., None])[..., 0]
    filled[ok] = coef[:, 0] + coef[:, 1] * i[ok] + coef[:, 2] * j[ok]
    return filled


def _robust_local_planes(height: np.ndarray, known: np.ndarray, targets: np.ndarray, start: np.ndarray,
                         config: ColliderConfig) -> np.ndarray:
    """(T,) height at the T ``targets`` nodes (row-major order) of the plane fitted robustly to the
    ``known`` nodes of ``height`` (Nz, Nx) around each (see the module docstring): Gaussian
    weights of sigma max(``config.fill_radius``, d / sqrt 2), d the distance to the nearest known
    node, at most ``config.max_fill_radius``, out to ``ROBUST_WINDOW_SIGMAS``; times bisquare
    weights (``_irls_planes``). A target whose robust fit is ill-posed (too little ground kept,
    or only a line of it) keeps ``start`` (Nz, Nx) (the least-squares fill)."""
    from scipy import ndimage

    ti, tj = np.nonzero(targets)
    out = start[ti, tj].astype(np.float64)
    if not len(ti) or not known.any():
        return out
    base, widest = config.fill_radius / config.ground_cell, config.max_fill_radius / config.ground_cell   # nodes
    sigma = np.clip(ndimage.distance_transform_edt(~known)[ti, tj] / np.sqrt(2.0), base, widest)
    reach = np.ceil(ROBUST_WINDOW_SIGMAS * sigma).astype(np.int64)          # window half-width, nodes
    pad = int(reach.max())
    padded_h, padded_k = np.pad(np.where(known, height, 0.0), pad), np.pad(known, pad)
    for r in np.unique(reach):                                     # one window size at a time
        di, dj = (a.reshape(-1) for a in np.mgrid[-r:r + 1, -r:r + 1])
        same = np.flatnonzero(reach == r)
        for batch in np.array_split(same, -(-len(same) * len(di) // 2 ** 20)):      # ~1M window entries each
            rows, cols = ti[batch, None] + pad + di, tj[batch, None] + pad + dj      # (M, K)
            seen = padded_k[rows, cols]
            # only the known entries of each window weigh anything: keep those, padded to the fullest
            order = np.argsort(~seen, axis=1, kind="stable")[:, :max(int(seen.sum(1).max()), 1)]
            wi, wj = di[order].astype(np.float64), dj[order].astype(np.float64)
            s2 = 2.0 * sigma[batch, None] ** 2
            norm = np.exp(-(di * di + dj * dj)[None] / s2).sum(1, keepdims=True)   # a whole window weighs 1
            prior = np.where(np.take_along_axis(seen, order, 1), np.exp(-(wi * wi + wj * wj) / s2) / norm, 0.0)
            out[batch] = _irls_planes(np.take_along_axis(padded_h[rows, cols], order, 1), wi, wj, prior,
                                      out[batch], sigma[batch], config)
    return out


def _irls_planes(h: np.ndarray, di: np.ndarray, dj: np.ndarray, prior: np.ndarray, start: np.ndarray,
                 sigma: np.ndarray, config: ColliderConfig) -> np.ndarray:
    """(M,) intercepts (the height at offset 0) of M robust planes h ~ c0 + c1 di + c2 dj, each
    fitted to W points: heights ``h`` (M, W) at node offsets ``di``, ``dj`` (M, W) with Gaussian
    weights ``prior`` (M, W) (0 = no point) of sigma ``sigma`` (M,) nodes. Iteratively reweighted
    least squares: each pass weighs a point by prior times Tukey's bisquare of its residual from
    the last plane, t = ``config.outlier_mads`` prior-weighted median |residual| (at least
    ``config.outlier_floor``), until the intercept moves less than ``config.robust_tolerance``.
    ``start`` (M,) where a fit is ill-posed (``_local_planes``' test)."""
    value = start.astype(np.float64).copy()
    weight = prior.copy()
    active = np.arange(len(h))
    for step in range(config.robust_iterations):
        w, a, b, hh, p = weight[active], di[active], dj[active], h[active], prior[active]
        m1, mi, mj = w.sum(1), (w * a).sum(1), (w * b).sum(1)
        mii, mij, mjj = (w * a * a).sum(1), (w * a * b).sum(1), (w * b * b).sum(1)
        A = np.stack([np.stack([m1, mi, mj], -1), np.stack([mi, mii, mij], -1), np.stack([mj, mij, mjj], -1)], -2)
        rhs = np.stack([(w * hh).sum(1), (w * a * hh).sum(1), (w * b * hh).sum(1)], -1)
        ok = (m1 > 1e-3) & (np.abs(np.linalg.det(A)) > 1e-6 * np.maximum(m1, 1e-12) ** 3 * sigma[active] ** 4)
        coef = np.zeros((len(active), 3))
        coef[ok] = np.linalg.solve(A[ok], rhs[ok][..., None])[..., 0]
        new = np.where(ok, coef[:, 0], start[active])
        # the first pass is plain least squares (all bisquare weights 1): nothing to compare yet
        settled = ~ok | ((np.abs(new - value[active]) < config.robust_tolerance) & (step > 0))
        value[active] = new
        residual = hh - (coef[:, :1] + coef[:, 1:2] * a + coef[:, 2:] * b)
        order = np.argsort(np.where(p > 0, np.abs(residual), np.inf), axis=1)
        cum = np.cumsum(np.take_along_axis(p, order, 1), axis=1)
        median = np.take_along_axis(order, np.argmax(cum >= 0.5 * cum[:, -1:], axis=1)[:, None], 1)
        t = np.maximum(config.outlier_mads * np.abs(np.take_along_axis(residual, median, 1)), config.outlier_floor)
        weight[active] = p * np.clip(1.0 - (residual / t) ** 2, 0.0, None) ** 2
        active = active[~settled]
        if not len(active):
            break
    return value


@dataclass(frozen=True)
class Collider:
    """mesh: the collision mesh (run's world, +y down); ground: the heightfield in it;
    cluster_cell: the clustering cell used (scene units)."""

    mesh: ColouredMesh
    ground: GroundField
    cluster_cell: float


def build_collider(surface: ColouredMesh, camera_centres: np.ndarray,
                   config: ColliderConfig = ColliderConfig()) -> Collider:
    """The collider of a scene surface (backdrop already left out) seen from cameras at
    ``camera_centres`` (N, 3): the clustered surface plus the ground heightfield (when ground
    was found), within ``config.max_triangles``. Run's world, +y down."""
    ground = ground_field(surface, camera_centres, config)
    floor = ground.mesh() if ground.found else None
    budget = config.max_triangles - (len(floor.faces) if floor is not None else 0)
    if budget < 1:
        raise ValueError(f"ColliderConfig: the ground heightfield alone has {len(floor.faces)} triangles, "
                         f"over max_triangles {config.max_triangles} (raise ground_cell)")
    cell = config.cluster_cell
    simple = cluster_vertices(surface, cell)
    while len(simple.faces) > budget:                           # each doubling keeps ~1/4 of the faces
        # doubling nests the cubes (a 2c cube holds 8 c cubes, both grids anchored at 0), so
        # clustering the clustered mesh groups exactly as clustering the original would, on a
        # mesh ~4x smaller each time; positions become means of the finer means
        cell *= 2.0
        simple = cluster_vertices(simple, cell)
    mesh = ColouredMesh.concat([simple] + ([floor] if floor is not None else []))
    return Collider(mesh, ground, cell)


SPAWN_VERSION = 1


def spawn_record(collider: Collider, c2w: np.ndarray, collider_name: str, units_per_metre: float | None,
                 scale_source: str) -> dict:
    """What spawn.json holds (docs/usage/export.md "collider"), in the collider GLB's frame
    (glTF: +y up, right-handed; the run's world turned 180 degrees about x).

    c2w: (N, 4, 4) the trajectory's cameras (run's world, OpenCV). position: on the ground under
    the first camera (feet; None when no ground was found); eye_height: that camera's height
    above it; forward: its view direction made horizontal; path_ground: the ground point under
    every trajectory camera (the viewer's walk path)."""
    from .points import points_to_y_up

    c2w = np.asarray(c2w, np.float64).reshape(-1, 4, 4)
    centres = c2w[:, :3, 3]
    found = collider.ground.found
    record: dict = {"format": "scenedreamer-spawn", "version": SPAWN_VERSION, "collider": collider_name,
                    "frame": "the collider GLB's: glTF, +y up, right-handed, scene units",
                    "up": [0.0, 1.0, 0.0], "units_per_metre": units_per_metre, "scale_source": scale_source,
                    "ground_found": found}
    look = points_to_y_up(c2w[0, :3, 2])
    flat = np.array([look[0], 0.0, look[2]])
    record["forward"] = ((flat / np.linalg.norm(flat)).round(6) + 0.0).tolist() if np.linalg.norm(flat) > 1e-6 \
        else [0.0, 0.0, -1.0]
    if found:
        ground_y = collider.ground.at(centres[:, 0], centres[:, 2])
        feet = np.stack([centres[:, 0], ground_y, centres[:, 2]], 1)
        up_feet = points_to_y_up(feet)
        record["position"] = (up_feet[0].round(6) + 0.0).tolist()          # + 0.0: no "-0.0" in the file
        record["eye_height"] = round(float(ground_y[0] - centres[0, 1]), 6)   # +y down: ground y > eye y
        record["path_ground"] = (up_feet.round(6) + 0.0).tolist()
    else:
        record["position"] = None
        record["eye_height"] = None
        record["path_ground"] = None
        record["note"] = "no ground found under the cameras: place the player yourself"
    return record
