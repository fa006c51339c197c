"""`scenedreamer render`: paths, sizes and frame counts, PNG folders, panoramas, bad input."""

from __future__ import annotations

import json
import shutil

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from scenedreamer.cli import main
from shared_runs import shared_run_copy
from tiny_models import tiny_run_args
from scenedreamer.pipeline import render_run as rr


def _video(path) -> np.ndarray:
    """(F, H, W, 3) uint8 frames of an MP4 (imageio's ffmpeg reader)."""
    reader = imageio.get_reader(str(path))
    try:
        return np.stack([np.asarray(f) for f in reader])
    finally:
        reader.close()

TINY = tiny_run_args("48x32", 3)


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with the other modules that ask for the same tiny run
    return shared_run_copy(tmp_path_factory, worker_id, "a forest lake", TINY,
                           tmp_path_factory.mktemp("render") / "run")


def test_video_has_the_requested_size_and_frame_count(run, tmp_path):
    out = tmp_path / "v.mp4"
    assert main(["render", str(run), "--out", str(out), "--frames", "7", "--resolution", "40x24", "--quiet"]) == 0
    frames = _video(out)
    assert frames.shape == (7, 24, 40, 3)


def test_the_run_path_starts_exactly_at_the_run_s_first_camera(run):
    inputs = rr.load_render_inputs(run, "scene_ply")
    cams = rr.path_cameras(inputs, "", 5, None)
    assert len(cams) == 5 and (cams.width, cams.height) == (48, 32)
    assert torch.allclose(cams.c2w[0], inputs.run_cameras.c2w[0], atol=1e-6)
    assert torch.allclose(cams.c2w[-1], inputs.run_cameras.c2w[-1], atol=1e-5)
    frame = next(rr.render_frames(inputs.scene, cams[0]))
    with torch.no_grad():
        direct = inputs.scene.render(inputs.run_cameras[0]).rgb[0].clamp(0, 1)
    assert torch.allclose(frame, direct, atol=1e-5)


def test_presets_start_at_the_run_s_first_camera_and_scene_orbit_circles_the_content(run):
    inputs = rr.load_render_inputs(run, "scene_ply")
    orbit = rr.path_cameras(inputs, "rotate360", 8, (64, 64))
    assert torch.allclose(orbit.c2w[0], inputs.run_cameras.c2w[0], atol=1e-5)
    ring = rr.path_cameras(inputs, rr.SCENE_ORBIT, 12, (32, 32))
    centre = rr.content_points(inputs.scene, inputs.run_cameras).median(dim=0).values
    dist = (ring.centers - centre).norm(dim=-1)
    assert float(dist.max() - dist.min()) < 1e-4 * float(dist.mean())          # one circle ...
    to_centre = torch.nn.functional.normalize(centre - ring.centers, dim=-1)
    forward = ring.c2w[:, :3, 2]
    assert float((to_centre * forward).sum(-1).min()) > 0.9999                   # ... looking at it
    headings = torch.atan2(ring.centers[:, 0] - centre[0], -(ring.centers[:, 2] - centre[2]))
    steps = torch.remainder(headings.diff(), 2 * torch.pi)
    assert torch.allclose(steps, torch.full_like(steps, 2 * torch.pi / 12), atol=1e-4)  # a full turn


def test_png_folder_rgbd_side_by_side_and_force_replaces_only_our_frames(run, tmp_path):
    out = tmp_path / "frames"
    assert main(["render", str(run), "--out", str(out), "--what", "rgbd", "--frames", "4", "--quiet"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [rr.RENDER_MARKER] + [f"frame_{i:05d}.png" for i in range(4)] + ["frames.json"]
    img = np.asarray(Image.open(out / "frame_00000.png"))
    assert img.shape == (32, 96, 3)
    rgb, depth = img[:, :48].astype(float), img[:, 48:].astype(float)
    assert np.abs(rgb - depth).mean() > 10                  # the right half is not the colour again
    # again with fewer frames: the stale frames of the earlier render go, the manifest says so
    assert main(["render", str(run), "--out", str(out), "--frames", "2", "--force", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [rr.RENDER_MARKER, "frame_00000.png", "frame_00001.png",
                                                     "frames.json"]
    assert json.loads((out / "frames.json").read_text())["files"] == ["frame_00000.png", "frame_00001.png"]
    (out / "notes.txt").write_text("mine")
    assert main(["render", str(run), "--out", str(out), "--frames", "2", "--force", "--quiet"]) == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_panorama_is_2_to_1_seamless_and_its_centre_looks_forward(run, tmp_path):
    out = tmp_path / "pano.png"
    assert main(["render", str(run), "--panorama", "--resolution", "512x256", "--out", str(out), "--quiet"]) == 0
    pano = np.asarray(Image.open(out)).astype(np.float64) / 255.0
    assert pano.shape == (256, 512, 3)
    seam = np.abs(pano[:, 0] - pano[:, -1]).mean()
    neighbours = np.abs(np.diff(pano, axis=1)).mean(axis=(0, 2))
    assert seam <= 1.05 * neighbours.max() + 1e-6
    # where the first camera sees, the panorama shows what it sees: sample a fine render of that
    # camera at the panorama's directions (the first camera is the world's origin, axes aligned)
    from scenedreamer.geometry.panorama import equirect_directions

    inputs = rr.load_render_inputs(run, "scene_ply")
    assert torch.allclose(inputs.run_cameras.c2w[0], torch.eye(4), atol=1e-6)
    cam = inputs.run_cameras.scaled(256, 256)[0]
    with torch.no_grad():
        first = inputs.scene.render(cam).rgb[0].clamp(0, 1)                     # (256, 256, 3)
    d = equirect_directions(512, 256)
    K = cam.K[0]
    u, v = K[0, 0] * d[..., 0] / d[..., 2] + K[0, 2], K[1, 1] * d[..., 1] / d[..., 2] + K[1, 2]
    inside = (d[..., 2] > 0) & (u > 16) & (u < 240) & (v > 16) & (v < 240)
    grid = torch.stack([u / 128 - 1, v / 128 - 1], -1)[inside].view(1, 1, -1, 2)
    seen = torch.nn.functional.grid_sample(first.permute(2, 0, 1)[None], grid, align_corners=False)[0, :, 0].T
    err = np.abs(pano[inside.numpy()] - seen.numpy()).mean()
    # measured 0.012 (8-bit PNG, two resamplings); mirrored or upside-down panoramas give 0.11-0.19
    assert int(inside.sum()) > 2000 and err < 0.03


def test_checkpoint_source_renders_the_fitted_representation(run, tmp_path):
    out = tmp_path / "ck.mp4"
    assert main(["render", str(run), "--source", "checkpoint", "--frames", "2", "--out", str(out), "--quiet"]) == 0
    assert _video(out).shape == (2, 32, 48, 3)


@pytest.mark.parametrize("extra, message", [
    (["--out", "{tmp}/x.gif"], "expected FILE.mp4"),
    (["--out", "{tmp}/x.mp4", "--frames", "1"], "--frames 1"),
    (["--out", "{tmp}/x.mp4", "--trajectory", "zigzag"], "not a preset"),
    (["--out", "{tmp}/p.png", "--panorama", "--resolution", "300x100"], "twice as wide"),
    (["--out", "{tmp}/p.png", "--panorama", "--at", "1,nan,2"], "three finite numbers"),
    (["--out", "{tmp}/p.mp4", "--panorama"], "a panorama is written as a .png"),
    (["--out", "{tmp}/blocker/x.mp4"], "is not a writable folder"),
    (["--out", "{tmp}/x.mp4", "--at", "0,0,0"], "only with --panorama"),
])
def test_bad_requests_are_one_line_and_write_nothing(run, tmp_path, capsys, extra, message):
    (tmp_path / "blocker").write_text("a file where a folder is expected")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["render", str(run), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bad_runs_name_what_is_missing(run, tmp_path, capsys):
    assert main(["render", str(tmp_path), "--out", str(tmp_path / "a.mp4")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "scene.pt").unlink()
    assert main(["render", str(copy), "--source", "checkpoint", "--out", str(tmp_path / "a.mp4")]) == 2
    assert "lacks scene.pt" in capsys.readouterr().err
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"user's file")
    assert main(["render", str(run), "--out", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and existing.read_bytes() == b"user's file"


# --- outputs owned from the first byte; a run's own files are never an output ----------------------

def test_a_render_that_failed_mid_way_may_reuse_its_folder(run, tmp_path, capsys, monkeypatch):
    from scenedreamer.errors import RunFailedError

    out = tmp_path / "frames"
    real_write = rr.write_png
    calls = []

    def disk_full_at_third_frame(path, image):
        calls.append(path)
        assert (out / rr.RENDER_MARKER).is_file()          # ownership recorded before any frame
        if len(calls) == 3:
            (out / ".frame_00002.png.abcd1234.png").write_bytes(b"half")    # what a kill leaves
            raise RunFailedError(f"disk full while writing {path}")
        real_write(path, image)

    monkeypatch.setattr(rr, "write_png", disk_full_at_third_frame)
    assert main(["render", str(run), "--out", str(out), "--frames", "4", "--quiet"]) == 1
    monkeypatch.setattr(rr, "write_png", real_write)
    assert not (out / "frames.json").exists() and (out / "frame_00001.png").is_file()
    capsys.readouterr()
    # frames exist: a re-run needs --force, and is then allowed (the marker says the folder is ours)
    assert main(["render", str(run), "--out", str(out), "--frames", "3", "--quiet"]) == 2
    assert "use --force" in capsys.readouterr().err
    assert main(["render", str(run), "--out", str(out), "--frames", "3", "--force", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [rr.RENDER_MARKER] + [f"frame_{i:05d}.png" for i in range(3)] \
        + ["frames.json"]                                  # the leftover temp file is gone


def test_a_render_killed_before_its_first_frame_is_reused_without_force(run, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / rr.RENDER_MARKER).write_text('{"written_by": "scenedreamer render"}')
    (out / ".frame_00000.png.zz9_a1b2.png").write_bytes(b"half a frame")
    assert main(["render", str(run), "--out", str(out), "--frames", "2", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [rr.RENDER_MARKER, "frame_00000.png", "frame_00001.png",
                                                     "frames.json"]


def test_a_video_render_removes_the_temp_file_a_killed_render_left(run, tmp_path):
    out = tmp_path / "v.mp4"
    stale = tmp_path / ".v.mp4.k1ll3d00.mp4"
    stale.write_bytes(b"half a video")
    other = tmp_path / ".other.mp4.k1ll3d00.mp4"
    other.write_bytes(b"not this output's")
    assert main(["render", str(run), "--out", str(out), "--frames", "2", "--quiet"]) == 0
    assert not stale.exists() and other.exists() and _video(out).shape[0] == 2


@pytest.mark.parametrize("content", [{"notes.txt": "mine"}, {"frame_00000.png": "someone's frame"},
                                     {"frames.json": '{"files": ["frame_00000.png"]}', "frame_00000.png": "x"}])
def test_a_folder_with_someone_else_s_files_is_refused_even_with_force(run, tmp_path, capsys, content):
    out = tmp_path / "theirs"
    out.mkdir()
    for name, text in content.items():
        (out / name).write_text(text)
    assert main(["render", str(run), "--out", str(out), "--frames", "2", "--force", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not write" in err and len(err.splitlines()) == 1
    assert {p.name: p.read_text() for p in out.iterdir()} == content


@pytest.mark.parametrize("target", ["video.mp4", "scene.ply", "images", "support", "checkpoints", "", "depths"])
def test_render_never_writes_into_a_run_s_own_names(run, tmp_path, capsys, target):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*")}
    out = copy / target if target else copy
    if target == "scene.ply":
        args = ["--panorama", "--out", str(copy / "scene.png")]      # a free name: allowed ...
        assert main(["render", str(copy), *args, "--resolution", "64x32", "--quiet"]) == 0
        (copy / "scene.png").unlink()
        capsys.readouterr()             # (its coverage warning is not the refusal's output)
    args = ["--out", str(out), "--frames", "2", "--force", "--quiet"]
    assert main(["render", str(copy), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert ("never replaced" in err or "is a run folder" in err) and len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*")} == before


def test_a_run_of_the_previous_release_renders(tmp_path):
    from pathlib import Path

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1", old)
    out = tmp_path / "old.mp4"
    assert main(["render", str(old), "--out", str(out), "--frames", "3", "--quiet"]) == 0
    assert _video(out).shape == (3, 32, 32, 3)
