"""The collider's parts on analytic scenes (export/collider.py): clustering against its slow
twin, the ground heightfield against an exact ground with holes, a canopy and a rock, the
triangle budget, spawn.json's frame, and a capsule in pybullet on the result."""

from __future__ import annotations

import numpy as np
import pytest

from scenedreamer.export.collider import (ColliderConfig, build_collider, cluster_vertices,
                                          cluster_vertices_reference, ground_field, spawn_record)
from scenedreamer.export.points import points_to_y_up
from scenedreamer.export.view_mesh import ColouredMesh
from export.collider_physics import Physics


def _ground_y(x, z):
    """Exact ground of the analytic scene, run's world (+y down): 1.5 below the first camera,
    a 4 % slope and a 10 cm swell, like the procedural world's gentle hills."""
    return 1.5 + 0.04 * np.asarray(x) - 0.1 * np.sin(np.asarray(z) / 3.0)


def _grid(x0, x1, z0, z1, step, height, keep=None) -> ColouredMesh:
    """A triangulated height grid y = height(x, z) (faces whose centre fails ``keep`` dropped)."""
    xs, zs = np.arange(x0, x1 + 1e-9, step), np.arange(z0, z1 + 1e-9, step)
    gx, gz = np.meshgrid(xs, zs)
    verts = np.stack([gx, height(gx, gz), gz], -1).reshape(-1, 3)
    idx = np.arange(gx.size).reshape(gx.shape)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    if keep is not None:
        centre = verts[faces].mean(1)
        faces = faces[keep(centre[:, 0], centre[:, 2])]
    return ColouredMesh(verts.astype(np.float32), faces.astype(np.int64), np.full((len(verts), 3), 0.4, np.float32))


CAMERAS = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0], [2.0, 0.0, 4.0], [1.0, 0.0, 6.0], [0.0, 0.0, 8.0]])


def _scene() -> ColouredMesh:
    """Ground seen only farther than 3 m from every camera (the ground under a camera is out of
    its view), a canopy 3 m up with no ground seen under it, and a 1 m rock."""
    def seen(x, z):
        far = np.min(np.hypot(x[:, None] - CAMERAS[:, 0], z[:, None] - CAMERAS[:, 2]), axis=1) > 3.0
        under_canopy = np.hypot(x + 6.0, z - 4.0) < 2.0
        return far & ~under_canopy
    ground = _grid(-12, 12, -8, 18, 0.1, _ground_y, seen)
    canopy = _grid(-8, -4, 2, 6, 0.2, lambda x, z: _ground_y(x, z) - 3.0)
    rock = _grid(5, 6, 3, 4, 0.1, lambda x, z: _ground_y(x, z) - 1.0)
    return ColouredMesh.concat([ground, canopy, rock])


def test_clustering_matches_its_slow_twin():
    rng = np.random.default_rng(0)
    mesh = ColouredMesh(rng.uniform(0, 1, (300, 3)).astype(np.float32), rng.integers(0, 300, (500, 3)),
                        rng.uniform(0, 1, (300, 3)).astype(np.float32))
    for cell in (0.05, 0.2, 0.5):
        fast, slow = cluster_vertices(mesh, cell), cluster_vertices_reference(mesh, cell)
        assert np.array_equal(fast.faces, slow.faces)
        assert np.allclose(fast.vertices, slow.vertices, atol=1e-6)
        assert np.allclose(fast.colours, slow.colours, atol=1e-6)
    assert len(cluster_vertices(mesh, 0.5).faces) < len(mesh.faces)


def test_ground_is_exact_under_the_cameras_and_ignores_canopy_and_rock():
    field = ground_field(_scene(), CAMERAS)
    assert field.found
    # under each camera the ground was never seen: the fill continues the seen slope
    err = field.at(CAMERAS[:, 0], CAMERAS[:, 2]) - _ground_y(CAMERAS[:, 0], CAMERAS[:, 2])
    assert np.abs(err).max() < 0.05, err                   # the 5 cm floor accuracy
    # under the canopy (no ground seen there) and the rock the field is ground, not their tops
    for x, z in ((-6.0, 4.0), (5.5, 3.5)):
        assert abs(float(field.at(np.array([x]), np.array([z]))[0]) - _ground_y(x, z)) < 0.1


def test_collider_keeps_the_triangle_budget_and_the_floor():
    scene = _scene()
    config = ColliderConfig(max_triangles=20_000)
    collider = build_collider(scene, CAMERAS, config)
    assert len(scene.faces) > 100_000 and len(collider.mesh.faces) <= 20_000
    assert collider.cluster_cell > config.cluster_cell          # had to coarsen to fit


def test_a_capsule_comes_to_rest_on_the_floor_at_every_camera():
    collider = build_collider(_scene(), CAMERAS, ColliderConfig(max_triangles=30_000))
    physics = Physics(points_to_y_up(collider.mesh.vertices), collider.mesh.faces)
    try:
        for x, _, z in CAMERAS:
            ground = -_ground_y(x, z)                          # +y up
            feet, speed = physics.drop(x, -z, ground + 0.3)
            # at rest within 5 cm of the exact ground (the fill's accuracy, above) after 2 s
            assert abs(feet - ground) < 0.05 and speed < 0.05, (x, z, feet - ground, speed)
    finally:
        physics.close()


def test_spawn_stands_under_the_first_camera_in_the_glb_frame():
    collider = build_collider(_scene(), CAMERAS, ColliderConfig(max_triangles=30_000))
    c2w = np.tile(np.eye(4), (len(CAMERAS), 1, 1))
    c2w[:, :3, 3] = CAMERAS
    spawn = spawn_record(collider, c2w, "scene.glb", 1.0, "test")
    assert spawn["up"] == [0.0, 1.0, 0.0] and spawn["collider"] == "scene.glb" and spawn["ground_found"]
    x, y, z = spawn["position"]
    assert x == 0.0 and z == 0.0 and abs(y - (-_ground_y(0.0, 0.0))) < 0.05
    assert spawn["eye_height"] == pytest.approx(-y, abs=1e-5)   # the camera is at height 0
    assert spawn["forward"] == [0.0, 0.0, -1.0]                 # OpenCV +z forward -> glTF -z
    assert len(spawn["path_ground"]) == len(CAMERAS)


def test_no_ground_under_the_cameras_is_reported():
    ceiling = _grid(-5, 5, -5, 5, 0.5, lambda x, z: -2.0 + 0 * x)      # only above the cameras
    collider = build_collider(ceiling, CAMERAS[:1])
    assert not collider.ground.found
    assert len(collider.mesh.faces) == len(cluster_vertices(ceiling, collider.cluster_cell).faces)
    spawn = spawn_record(collider, np.eye(4)[None], "c.glb", None, "unknown")
    assert spawn["ground_found"] is False and spawn["position"] is None and "no ground" in spawn["note"]


def test_a_sofa_nearer_than_the_seen_floor_does_not_lift_the_floor_under_the_camera():
    # a level floor 1.5 below one camera, seen only from 3.5 m on, and a 0.5 m high "sofa"
    # top at 2-3.5 m to the front left (the floor under it unseen): the room case that tilted a
    # plane fit by 0.67 m before the objects-above-the-lowest-ground rule
    floor = _grid(-4, 4, 3.5, 9, 0.1, lambda x, z: 1.5 + 0 * x)
    sofa = _grid(-3.5, -1.5, 2.0, 3.5, 0.1, lambda x, z: 1.0 + 0 * x)
    field = ground_field(ColouredMesh.concat([floor, sofa]), np.zeros((1, 3)))
    assert abs(float(field.at(np.array([0.0]), np.array([0.0]))[0]) - 1.5) < 0.05
    assert not field.observed[field.height < 1.2].any()        # the sofa top is not ground


def test_coarsening_the_clustered_mesh_groups_like_clustering_the_original():
    # build_collider doubles the cell on the already clustered mesh (nested cubes): same faces
    # as clustering the original at the doubled cell, positions within that cell
    scene = _scene()
    direct = cluster_vertices(scene, 0.16)
    nested = cluster_vertices(cluster_vertices(scene, 0.08), 0.16)
    assert np.array_equal(direct.faces, nested.faces)
    assert np.abs(direct.vertices - nested.vertices).max() < 0.16
