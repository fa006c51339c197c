"""`export --format collider` of a tiny offline run, walked by pybullet against the procedural
world's exact ground, and its bad inputs (one line, exit 2, nothing written or lost)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scenedreamer.cli import main
from scenedreamer.export.view_mesh import ColouredMesh
from scenedreamer.geometry.trajectory_io import read_transforms_json
from scenedreamer.priors.offline import build_offline_priors
from export.collider_physics import REST_SPEED, Physics, exact_ground_y_up
from export.zbuffer import read_glb_nodes
from shared_runs import shared_run_copy

PROMPT = "a forest lake at sunset"
# the `make run` scene's prompt and trajectory (lookaround) at 96x64, 4 frames (~15 s on a CPU)
ARGS = ["--resolution", "96x64", "--frames", "4", "--representation", "gaussians",
        "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=3",
        "--set", "export.video=false", "--set", "export.nerfstudio=false", "--set", "export.distill.steps=5",
        "--quiet"]
OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1"


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with tests/export/test_mesh_run.py (same PROMPT, ARGS)
    return shared_run_copy(tmp_path_factory, worker_id, PROMPT, ARGS,
                           tmp_path_factory.mktemp("collider_run") / "run")


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("collider_out") / "walk.glb"
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 0
    return out


def _sky_vertices(run, vertices_y_up: np.ndarray) -> int:
    """How many collider vertices sit on a support view's backdrop pixel at the offline sky's
    stand-in depth (100, ProceduralWorldConfig.sky_depth; >= 95 allows the clustering's shift)."""
    from scenedreamer.support.database import SupportDatabase

    world = np.asarray(vertices_y_up, np.float64) * np.array([1.0, -1.0, -1.0])     # glTF -> run's world
    count = 0
    with SupportDatabase.open(run / "support", create=False) as db:
        for vid in db.ids():
            v = db.get(vid)
            c2w, K = v.c2w.double().numpy(), v.K.double().numpy()
            cam = (world - c2w[:3, 3]) @ c2w[:3, :3]                     # world -> camera (OpenCV)
            front = cam[:, 2] > 1e-6
            u = np.floor(K[0, 0] * cam[front, 0] / cam[front, 2] + K[0, 2]).astype(int)
            w = np.floor(K[1, 1] * cam[front, 1] / cam[front, 2] + K[1, 2]).astype(int)
            inside = (u >= 0) & (u < v.width) & (w >= 0) & (w < v.height)
            sky = v.backdrop.numpy()[w[inside], u[inside]]
            count += int((sky & (cam[front][inside, 2] >= 95.0)).sum())
    return count


def _camera_ground(run):
    """glTF (x, z) of every trajectory camera, and the exact ground height (+y up) under it."""
    c2w = read_transforms_json(run / "trajectory.json").cameras.c2w.double().numpy()
    x, z = c2w[:, 0, 3], -c2w[:, 2, 3]
    return x, z, exact_ground_y_up(build_offline_priors(PROMPT, 0).world, x, z)


def test_collider_is_a_small_glb_without_the_sky_and_spawn_json_beside_it(run, exported):
    nodes = read_glb_nodes(exported)
    assert list(nodes) == ["collider"]
    vertices, faces = nodes["collider"][0], nodes["collider"][1]
    assert 0 < len(faces) <= 200_000
    assert _sky_vertices(run, vertices) == 0              # the backdrop (sky) is left out
    spawn = json.loads(exported.with_name("walk.spawn.json").read_text())
    assert spawn["collider"] == "walk.glb" and spawn["up"] == [0.0, 1.0, 0.0] and spawn["ground_found"]
    assert spawn["units_per_metre"] == 1.0               # first-view depth oracle-exact: metres
    x, z, ground = _camera_ground(run)
    sx, sy, sz = spawn["position"]
    assert (sx, sz) == pytest.approx((x[0], z[0]), abs=1e-5)
    assert abs(sy - ground[0]) < 0.05                      # standable: on the exact ground (5 cm)


def test_the_viewer_reads_the_spawn_json_the_collider_export_writes(run, exported):
    # regression: the viewer once refused the exporter's own "up": [0, 1, 0] and ignored its
    # units_per_metre, so `view RUN --collider walk.glb` failed on every exported collider
    from scenedreamer.viewer.server import read_spawn

    written = json.loads(exported.with_name("walk.spawn.json").read_text())
    spawn = read_spawn(exported.with_name("walk.spawn.json"))
    assert spawn == {"position": written["position"], "metric_scale": written["units_per_metre"],
                     "eye_height": written["eye_height"]}
    assert spawn["eye_height"] > 0


def test_a_capsule_rests_on_the_floor_at_the_trajectory_cameras(run, exported):
    nodes = read_glb_nodes(exported)
    physics = Physics(nodes["collider"][0], nodes["collider"][1])
    try:
        x, z, ground = _camera_ground(run)
        floors = [physics.floor(a, b, g + 1.0) for a, b, g in zip(x, z, ground)]
        # the floor accuracy: within 5 cm of the procedural world's exact ground
        assert all(f is not None and abs(f - g) < 0.05 for f, g in zip(floors, ground)), (floors, ground)
        rested = 0
        for a, b, g in zip(x, z, ground):
            feet, speed = physics.drop(a, b, g + 0.3)
            rested += abs(feet - g) < 0.05 and speed < REST_SPEED
        assert rested >= 0.9 * len(x), rested             # the issue: >= 90 % at rest within 2 s
    finally:
        physics.close()


def test_existing_outputs_need_force_and_force_replaces_both(run, exported, tmp_path, capsys):
    out = tmp_path / "c.glb"
    spawn = tmp_path / "c.spawn.json"
    spawn.write_text("mine")
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "c.spawn.json" in err and "--force" in err and len(err.splitlines()) == 1
    assert not out.exists() and spawn.read_text() == "mine"          # validated before any work
    spawn.unlink()
    out.write_bytes(b"mine")
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 2
    assert out.read_bytes() == b"mine" and not spawn.exists()
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet", "--force"]) == 0
    assert out.read_bytes() == exported.read_bytes() and json.loads(spawn.read_text())["collider"] == "c.glb"


def test_unwritable_output_and_run_files_are_refused(run, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker / "c.glb", run / "support" / "c.glb"):
        assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(out) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    assert not list((run / "support").glob("c.*"))


def test_an_old_run_without_backdrop_masks_gets_them_derived(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(OLD_RUN, run)
    out = tmp_path / "old.glb"
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 0
    # SupportConfig.legacy_backdrop_depth (70) marks the old sky (stored at depth 100) as backdrop
    assert _sky_vertices(run, read_glb_nodes(out)["collider"][0]) == 0


def test_no_ground_under_the_cameras_warns_and_says_so_in_spawn_json(run, tmp_path, capsys, monkeypatch):
    import scenedreamer.pipeline.run_exports as run_exports

    square = np.array([[-5, -3, -5], [5, -3, -5], [5, -3, 5], [-5, -3, 5]], np.float32)   # 3 m above
    ceiling = ColouredMesh(square, np.array([[0, 1, 2], [0, 2, 3]]), np.full((4, 3), 0.5, np.float32))
    monkeypatch.setattr(run_exports, "mesh_from_run", lambda *a, **k: run_exports.SceneMesh(ceiling, None))
    out = tmp_path / "sky.glb"
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err.strip()
    assert "no ground found" in err and len(err.splitlines()) == 1
    spawn = json.loads((tmp_path / "sky.spawn.json").read_text())
    assert spawn["ground_found"] is False and spawn["position"] is None
    assert len(read_glb_nodes(out)["collider"][1]) == 2          # the ceiling alone, no floor made up


def test_a_failed_write_leaves_neither_file(run, tmp_path, capsys, monkeypatch):
    import errno

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full)              # the spawn file is written last
    out = tmp_path / "c.glb"
    assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) != 0
    assert "c.spawn.json" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []                      # no GLB without its spawn file, no temp
