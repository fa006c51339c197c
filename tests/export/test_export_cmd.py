"""`scenedreamer export`: y-up conversion matches a rotated scene; CLI writes/refuses through a subprocess."""

import subprocess
import sys

import torch

from scenedreamer.export.points import to_y_up
from scenedreamer.geometry.cameras import cameras_from_fov, look_at
from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene


def _scene() -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    n = 200
    scene = GaussianScene(GaussianConfig(sh_degree=3), num=n)
    with torch.no_grad():
        scene.means.copy_(torch.rand(n, 3, generator=g) * 2 - 1 + torch.tensor([0, 0, 4.0]))
        scene.log_scales.copy_(torch.log(torch.rand(n, 3, generator=g) * 0.2 + 0.02))
        scene.quats.copy_(torch.randn(n, 4, generator=g))
        scene.opacity_logits.fill_(1.0)
        scene.sh0.copy_(torch.randn(n, 1, 3, generator=g))
        scene.shN.copy_(torch.randn(n, 15, 3, generator=g) * 0.3)
    return scene


def test_y_up_equals_rotated_scene():
    scene = _scene()
    eye = torch.tensor([[0.5, -0.3, 0.0]])
    c2w = look_at(eye, torch.tensor([[0.0, 0.0, 4.0]])).float()
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    a = scene.render(cameras_from_fov(c2w, 32, 32, 60.0)).rgb
    b = to_y_up(scene).render(cameras_from_fov(flip @ c2w, 32, 32, 60.0)).rgb
    # same picture up to float rounding (1e-3 of the [0,1] range); a wrong SH/quaternion turn differs by ~0.1
    assert (a - b).abs().max() < 1e-3
    assert a.abs().max() > 0.05   # something was actually rendered


def test_cli_refuses_unknown_format_and_missing_run(tmp_path):
    cmd = [sys.executable, "-m", "scenedreamer.cli", "export", str(tmp_path / "nope"), "--format", "splat-ply",
           "--out", str(tmp_path / "o.ply")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "no such run folder" in r.stderr
    r = subprocess.run(cmd[:5] + ["--format", "obj", "--out", str(tmp_path / "o.ply")], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown" in r.stderr
    assert not (tmp_path / "o.ply").exists()


# --- the formats on a real (tiny) run -----------------------------------------------------------

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from scenedreamer.cli import main  # noqa: E402
from shared_runs import shared_run_copy  # noqa: E402
from tiny_models import tiny_run_args  # noqa: E402

TINY = tiny_run_args("48x32", 3)


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with the other modules that ask for the same tiny run
    return shared_run_copy(tmp_path_factory, worker_id, "a forest lake", TINY,
                           tmp_path_factory.mktemp("export") / "run")


@pytest.mark.parametrize("mesher", ["views", "tsdf"])
def test_glb_of_a_run_is_the_support_mesh_turned_y_up(run, tmp_path, mesher):
    import trimesh

    from scenedreamer.pipeline.run_exports import mesh_config, mesh_from_run

    out = tmp_path / "scene.glb"
    assert main(["export", str(run), "--format", "glb", "--out", str(out), "--mesher", mesher, "--quiet"]) == 0
    tm = trimesh.load(out, force="mesh")
    mesh = mesh_from_run(run, mesh_config(None, mesher)).surface
    assert tm.vertices.shape == mesh.vertices.shape and len(tm.faces) == len(mesh.faces) > 100
    assert np.allclose(tm.vertices, mesh.vertices * np.array([1.0, -1.0, -1.0]), atol=1e-5)
    assert mesh.colours.std() > 0.02                                     # coloured, not one flat colour


def test_points_ply_y_up_opens_in_pymeshlab_turned(run, tmp_path):
    import pymeshlab

    down, up = tmp_path / "down.ply", tmp_path / "up.ply"
    assert main(["export", str(run), "--format", "points-ply", "--out", str(down)]) == 0
    assert main(["export", str(run), "--format", "points-ply", "--out", str(up), "--y-up"]) == 0
    points = []
    for path in (down, up):
        ms = pymeshlab.MeshSet()
        ms.load_new_mesh(str(path))
        m = ms.current_mesh()
        assert m.has_vertex_color() and m.vertex_number() > 100
        points.append(np.array(m.vertex_matrix()))          # a copy: the MeshSet owns the memory
    assert points[0].shape == points[1].shape
    assert np.allclose(points[1], points[0] * np.array([1.0, -1.0, -1.0]), atol=1e-5)


def test_nerfstudio_dataset_holds_every_support_view_and_is_not_overwritten_silently(run, tmp_path, capsys):
    from scenedreamer.support.database import SupportDatabase

    out = tmp_path / "dataset"
    assert main(["export", str(run), "--format", "nerfstudio", "--out", str(out), "--quiet"]) == 0
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    with SupportDatabase.open(run / "support", create=False) as db:
        assert len(frames) == len(db.ids())
    assert all((out / f["file_path"]).is_file() and (out / f["depth_file_path"]).is_file() for f in frames)
    assert main(["export", str(run), "--format", "nerfstudio", "--out", str(out)]) == 2
    assert "use --force" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "nerfstudio", "--out", str(out), "--force", "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--format", "nerfstudio", "--out", str(out), "--force"]) == 2
    assert "does not write" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--format", "glb", "--out", "{tmp}/m.ply"], "a glb export is a .glb file"),
    (["--format", "spz", "--out", "{tmp}/m.ply"], "a spz export is a .spz file"),
    (["--format", "gltf-splat", "--out", "{tmp}/m.gltf"], "a gltf-splat export is a .glb file"),
    (["--format", "usd", "--out", "{tmp}/m.usda"], "a usd export is a .usd file"),
    (["--format", "glb", "--out", "{tmp}/m.glb", "--voxel-size", "-1"], "--voxel-size -1.0: must be > 0"),
    (["--format", "glb", "--out", "{tmp}/m.glb", "--voxel-size", "0.1"], "only for --mesher tsdf"),
    (["--format", "points-ply", "--out", "{tmp}/blocker/p.ply"], "is not a writable folder"),
    (["--format", "points-ply", "--out", "{tmp}/p.ply", "--min-opacity", "2"], "between 0 and 1"),
])
def test_bad_exports_are_one_line_and_write_nothing(run, tmp_path, capsys, args, message):
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(run), *[a.replace("{tmp}", str(tmp_path)) for a in args]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- a run's own files are never an export's output (issue 20) ----------------------------------

@pytest.mark.parametrize("fmt, target", [("points-ply", "scene.ply"), ("splat-ply", "scene.ply"),
                                         ("glb", "support/x.glb"), ("nerfstudio", "images"),
                                         ("nerfstudio", "support"), ("nerfstudio", ""),
                                         ("points-ply", ".scenedreamer-run.json/../scene.ply")])
def test_export_never_replaces_a_run_s_own_file_even_with_force(run, tmp_path, capsys, fmt, target):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    out = copy / target if target else copy
    assert main(["export", str(copy), "--format", fmt, "--out", str(out), "--force", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert ("never replaced" in err or "is a run folder" in err) and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    # a name of the user's beside the run's files is fine
    assert main(["export", str(copy), "--format", "points-ply", "--out", str(copy / "points.ply"), "--quiet"]) == 0


def test_export_of_a_folder_with_someone_else_s_config_is_not_a_run(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "scene.ply").write_text("not ours")
    assert main(["export", str(other), "--format", "points-ply", "--out", str(tmp_path / "p.ply")]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and "progress" not in err and not (tmp_path / "p.ply").exists()


def test_a_run_of_the_previous_release_resumes_renders_and_exports(tmp_path):
    """tests/fixtures/old_run_v1 was written by the release before the run-folder contract
    (`generate "an old forest" --out RUN` with tiny_run_args("32x32", 2))."""
    import shutil
    from pathlib import Path

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1", old)
    assert main(["export", str(old), "--format", "points-ply", "--out", str(tmp_path / "p.ply"), "--quiet"]) == 0
    assert main(["export", str(old), "--format", "nerfstudio", "--out", str(tmp_path / "ns"), "--quiet"]) == 0
    frames = json.loads((tmp_path / "ns" / "transforms.json").read_text())["frames"]
    assert len(frames) == 3          # the initial view, its neighbour and the second camera's view
    assert main(["generate", "an old forest", "--out", str(old), "--resume", *tiny_run_args("32x32", 2)]) == 0
    assert main(["render", str(old), "--out", str(tmp_path / "v.mp4"), "--frames", "2", "--quiet"]) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 0


def _ground_normal(xyz: np.ndarray, up: int) -> np.ndarray:
    """Unit normal of the plane fitted (least squares, SVD) to the lowest 20 % of the points along
    axis ``up`` (the ground of an outdoor scene: the sky and trees are above it)."""
    low = xyz[xyz[:, up] <= np.quantile(xyz[:, up], 0.2)]
    normal = np.linalg.svd(low - low.mean(0))[2][-1]
    return normal * np.sign(normal[up])


@pytest.mark.parametrize("up, axis", [("z", 2), ("y", 1)])
def test_points_ply_up_axis_puts_the_ground_horizontal(run, tmp_path, up, axis):
    from plyfile import PlyData

    out = tmp_path / f"{up}.ply"
    assert main(["export", str(run), "--format", "points-ply", "--out", str(out), "--up", up, "--quiet"]) == 0
    v = PlyData.read(str(out))["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float64)
    # the ground's normal is the chosen up axis within 10 degrees (the offline world's ground is
    # flat to a few degrees and the first camera is level; a wrong turn gives ~90 degrees)
    assert _ground_normal(xyz, axis)[axis] > np.cos(np.radians(10))
    # up is up, not down: the up coordinate is minus the run's y (+y down in the run's world),
    # and the turn is a rotation (lengths kept: no mirror, no scale)
    plain = tmp_path / "plain.ply"
    assert main(["export", str(run), "--format", "points-ply", "--out", str(plain), "--quiet"]) == 0
    w = PlyData.read(str(plain))["vertex"]
    world = np.stack([w["x"], w["y"], w["z"]], -1).astype(np.float64)
    np.testing.assert_allclose(xyz[:, axis], -world[:, 1], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(xyz, axis=1), np.linalg.norm(world, axis=1), rtol=1e-6)
    assert np.linalg.det(np.linalg.lstsq(world, xyz, rcond=None)[0]) > 0.99
    if up == "y":                       # --y-up is the same as --up y
        alias = tmp_path / "alias.ply"
        assert main(["export", str(run), "--format", "points-ply", "--out", str(alias), "--y-up", "--quiet"]) == 0
        assert alias.read_bytes() == out.read_bytes()


def test_up_z_is_points_ply_only(run, tmp_path, capsys):
    assert main(["export", str(run), "--format", "splat-ply", "--out", str(tmp_path / "s.ply"), "--up", "z"]) == 2
    assert "only points-ply" in capsys.readouterr().err and not (tmp_path / "s.ply").exists()
