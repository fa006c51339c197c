"""TSDF fusion and meshing on an analytic scene, and the GLB / PLY files in the tools people use
(trimesh, MeshLab's own library pymeshlab, and a glTF structure check with pygltflib)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from scenedreamer.export.glb import linear_to_srgb, write_glb
from scenedreamer.export.mesh import MeshConfig, TriangleMesh, extract_mesh, tsdf_fuse
from scenedreamer.export.points import write_points_ply
from scenedreamer.geometry.cameras import camera_rays, cameras_from_fov, look_at

CENTRE = torch.tensor([0.0, 0.0, 4.0])
RADIUS = 1.0
BLOB = (torch.tensor([1.6, -0.2, 3.0]), 0.06)         # a tiny separate sphere: a floater to drop
VOXEL = 0.04


def _cameras(size: int = 96):
    """10 cameras on a sphere of radius 3.5 around CENTRE, looking at it."""
    eyes = []
    for k in range(8):
        a = 2 * np.pi * k / 8
        eyes.append([3.5 * np.sin(a), 0.0, 4.0 - 3.5 * np.cos(a)])
    eyes += [[0.0, -2.5, 4.0 - 2.45], [0.0, 2.5, 4.0 - 2.45]]
    eyes = torch.tensor(eyes, dtype=torch.float32)
    c2w = look_at(eyes, CENTRE.expand_as(eyes))
    return cameras_from_fov(c2w, size, size, 50.0)


def _intersect(o, d, centre, radius):
    """Ray parameter t of the first hit (inf if none) of rays o + t d with a sphere."""
    oc = o - centre
    b = (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - radius ** 2
    a = (d * d).sum(-1)
    disc = b * b - a * c
    t = (-b - torch.sqrt(disc.clamp_min(0))) / a
    return torch.where((disc > 0) & (t > 0), t, torch.full_like(t, float("inf")))


def _colour(normal):
    return (normal + 1.0) / 2.0


def _render(cameras):
    """Exact z-depth (B, H, W), colour (B, H, W, 3) and hit mask of the two spheres; rays from
    camera_rays have camera-frame z = 1, so the ray parameter t is the z-depth."""
    o, d = camera_rays(cameras)
    t1 = _intersect(o, d, CENTRE, RADIUS)
    t2 = _intersect(o, d, *BLOB)
    t = torch.minimum(t1, t2)
    hit = torch.isfinite(t)
    p = o + torch.where(hit, t, 0)[..., None] * d
    centre = torch.where((t2 < t1)[..., None], BLOB[0], CENTRE)
    normal = torch.nn.functional.normalize(p - centre, dim=-1)
    return torch.where(hit, t, 0), torch.where(hit[..., None], _colour(normal), 0), hit


@pytest.fixture(scope="module")
def sphere_mesh():
    cams = _cameras()
    depth, colour, hit = _render(cams)
    config = replace(MeshConfig(), voxel_size=VOXEL)
    return extract_mesh(tsdf_fuse(depth, colour, hit, cams, config), config)


def test_mesh_lies_on_the_sphere_and_the_floater_is_dropped(sphere_mesh):
    v = torch.from_numpy(sphere_mesh.vertices)
    err = ((v - CENTRE).norm(dim=-1) - RADIUS).abs()
    # measured: max 0.33 voxel, median 0.05 (nearest-pixel depth lookups, 96 px views); an inner
    # shell at the truncation depth (faces next to unobserved voxels) gave 3.4 voxels
    assert float(err.max()) < 0.5 * VOXEL and float(err.median()) < 0.1 * VOXEL
    assert len(sphere_mesh.faces) > 5000
    near_blob = ((v - BLOB[0]).norm(dim=-1) < 3 * BLOB[1]).sum()
    assert int(near_blob) == 0                      # its component is < 2 % of the faces


def test_faces_face_the_cameras_and_colours_follow_the_surface(sphere_mesh):
    v, f = sphere_mesh.vertices, sphere_mesh.faces
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    outward = ((v[f].mean(1) - CENTRE.numpy()) * n).sum(-1) > 0
    assert outward.mean() > 0.99                    # counter-clockwise seen from outside
    expected = _colour(torch.nn.functional.normalize(torch.from_numpy(v) - CENTRE, dim=-1)).numpy() * 255
    # colours are averaged over the truncation band, one voxel either side of the surface
    assert np.abs(sphere_mesh.colours.astype(float) - expected).mean() < 8


def test_nothing_to_fuse_is_one_line():
    from scenedreamer.errors import UserInputError

    cams = _cameras(16)
    with pytest.raises(UserInputError, match="no opaque rendered pixel"):
        tsdf_fuse(torch.zeros(len(cams), 16, 16), torch.zeros(len(cams), 16, 16, 3),
                  torch.zeros(len(cams), 16, 16, dtype=torch.bool), cams)


def test_glb_opens_in_trimesh_pymeshlab_and_has_a_valid_gltf_structure(sphere_mesh, tmp_path):
    import pygltflib
    import pymeshlab
    import trimesh

    path = tmp_path / "sphere.glb"
    srgb = sphere_mesh.colours.astype(np.float64) / 255.0
    write_glb(path, [("scene", sphere_mesh.vertices, sphere_mesh.faces, srgb)])
    V, F = len(sphere_mesh.vertices), len(sphere_mesh.faces)

    tm = trimesh.load(path, force="mesh")
    assert tm.vertices.shape == (V, 3) and tm.faces.shape == (F, 3)
    assert np.allclose(tm.vertices, sphere_mesh.vertices, atol=1e-6)

    ms = pymeshlab.MeshSet()
    ms.load_new_mesh(str(path))
    m = ms.current_mesh()
    assert (m.vertex_number(), m.face_number()) == (V, F)

    gltf = pygltflib.GLTF2().load(str(path))
    assert gltf.asset.version == "2.0" and gltf.nodes[0].name == "scene"
    prim = gltf.meshes[0].primitives[0]
    assert prim.mode in (None, pygltflib.TRIANGLES)
    pos, col, idx = (gltf.accessors[i] for i in (prim.attributes.POSITION, prim.attributes.COLOR_0, prim.indices))
    assert pos.count == V and pos.type == "VEC3" and pos.componentType == pygltflib.FLOAT
    assert np.allclose(pos.min, sphere_mesh.vertices.min(0), atol=1e-5)       # required by the spec
    assert np.allclose(pos.max, sphere_mesh.vertices.max(0), atol=1e-5)
    # linear colours, normalised 16-bit (8-bit linear would band the dark tones)
    assert col.count == V and col.normalized and col.componentType == pygltflib.UNSIGNED_SHORT
    assert idx.count == 3 * F and idx.type == "SCALAR"
    blob = gltf.binary_blob()
    for acc in (pos, col, idx):                      # every accessor fits inside its buffer view
        view = gltf.bufferViews[acc.bufferView]
        assert (view.byteOffset or 0) % 4 == 0       # vertex attributes 4-byte aligned (spec)
        item = {"VEC3": 3, "VEC4": 4, "SCALAR": 1}[acc.type] * {5126: 4, 5123: 2, 5125: 4}[acc.componentType]
        assert (acc.byteOffset or 0) + acc.count * item <= view.byteLength
        assert (view.byteOffset or 0) + view.byteLength <= len(blob)
    raw = np.frombuffer(blob, dtype="<u2", count=4 * V, offset=gltf.bufferViews[col.bufferView].byteOffset)
    shown = linear_to_srgb(raw.reshape(V, 4)[:, :3] / 65535.0)   # what a viewer displays
    assert np.abs(shown - srgb).max() < 1e-3
    # a non-metallic material (glTF's default is fully metallic: dark in three.js), unlit
    material = gltf.materials[prim.material]
    assert material.pbrMetallicRoughness.metallicFactor == 0.0
    assert "KHR_materials_unlit" in material.extensions and "KHR_materials_unlit" in gltf.extensionsUsed


def test_point_cloud_ply_opens_in_pymeshlab_with_colours(tmp_path):
    import pymeshlab

    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(500, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    write_points_ply(tmp_path / "p.ply", xyz, rgb)
    ms = pymeshlab.MeshSet()
    ms.load_new_mesh(str(tmp_path / "p.ply"))
    m = ms.current_mesh()
    assert m.vertex_number() == 500 and m.has_vertex_color()
    assert np.allclose(m.vertex_matrix(), xyz, atol=1e-6)
    assert np.array_equal(np.rint(m.vertex_color_matrix()[:, :3] * 255).astype(np.uint8), rgb)


def test_triangle_mesh_holds_what_glb_needs():
    mesh = TriangleMesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]]), np.zeros((3, 3), np.uint8))
    assert mesh.faces.dtype.kind == "i" and mesh.colours.dtype == np.uint8


def test_fusion_does_not_depend_on_the_voxel_block_size():
    """Voxel centres are computed once per block and projected into every view (issue 20): the
    grid is the same whatever the block size."""
    cams = _cameras(32)
    depth, colour, hit = _render(cams)
    base = replace(MeshConfig(), voxel_size=0.1)
    a = tsdf_fuse(depth, colour, hit, cams, base)
    b = tsdf_fuse(depth, colour, hit, cams, replace(base, chunk_voxels=1000))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.tsdf, b.tsdf) and torch.equal(a.rgb, b.rgb)
    assert float(a.weight.sum()) > 0


def test_grazing_ground_is_fused_and_silhouettes_are_not():
    """A plane seen at 85 degrees from its normal keeps its pixels (the old 75-degree filter
    dropped them); the pixels on both sides of a depth jump are dropped."""
    from scenedreamer.export.mesh import edge_pixels
    from scenedreamer.geometry.cameras import cameras_from_fov

    cams = cameras_from_fov(torch.eye(4)[None], 64, 48, 60.0)
    o, d = camera_rays(cams)
    h = 1.0                                                  # ground plane y = +1 (+y down)
    t = torch.where(d[..., 1] > 1e-6, h / d[..., 1].clamp_min(1e-6), torch.zeros_like(d[..., 1]))
    ground = (t > 0) & (t < 200)
    depth = torch.where(ground, t, torch.zeros_like(t))
    incidence = torch.rad2deg(torch.acos(d[..., 1] / d.norm(dim=-1)))
    steep = ground & (incidence > 85)
    assert int(steep.sum()) > 50
    edges = edge_pixels(depth, ground)
    # away from the ground's border with the sky (an edge to an invalid pixel, rightly)
    inner = -torch.nn.functional.max_pool2d(-ground.float(), 3, stride=1, padding=1) > 0
    grazing_kept = (steep & ~edges & inner).sum() / (steep & inner).sum()
    assert float(grazing_kept) > 0.9
    # a box in front of the ground: its outline is an edge on both sides
    box = torch.zeros_like(ground)
    box[:, 30:40, 20:30] = True
    with_box = torch.where(box, torch.full_like(depth, 2.0), depth)
    e = edge_pixels(with_box, ground | box)
    assert bool(e[0, 35, 19] and e[0, 35, 20] and e[0, 35, 29] and e[0, 35, 30])
    assert not bool(e[0, 35, 25])
