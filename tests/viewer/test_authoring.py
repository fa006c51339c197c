"""Path authoring, the reset view and the fly speed in headless Debian Chromium: the page's path
interpolation equals Python's (geometry.trajectory.interpolate_poses); three keyframes dropped
in the page are saved (a download) as a trajectory file that `scenedreamer trajectory --check`
accepts and whose cameras are Python's interpolated_cameras of those keyframes."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from .conftest import cli
from .test_browser import ARGS, CHROMIUM, HANG_GUARD_MS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make browser)")]
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])    # OpenCV camera axes <-> OpenGL (the file's transform_matrix)
RUN_TO_PAGE = np.array([1.0, -1.0, -1.0])    # VIEWER_FROM_RUN_WORLD on points: 180 degrees about x


def _keys(seed: int, n: int) -> torch.Tensor:
    """n OpenCV c2w poses (float64) looking in varied directions, with roll-free look_at."""
    from scenedreamer.geometry.cameras import look_at

    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.5
    ahead = torch.randn(n, 3, generator=g, dtype=torch.float64)
    ahead[:, 1] *= 0.3                                                   # mostly level views
    return look_at(pos, pos + ahead)


def _open(p, url, viewport=(320, 240)):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1,
                            accept_downloads=True)
    page.goto(url)
    page.wait_for_function("() => window.scenedreamer && (window.scenedreamer.ready || window.scenedreamer.error)",
                           timeout=HANG_GUARD_MS)
    assert page.evaluate("() => window.scenedreamer.error") is None
    return browser, page


def test_page_interpolation_equals_python(viewer):
    from playwright.sync_api import sync_playwright

    from scenedreamer.geometry.trajectory import interpolate_poses

    url, _, _ = viewer
    with sync_playwright() as p:
        browser, page = _open(p, url)
        try:
            for seed, n, frames in ((0, 2, 5), (1, 3, 17), (2, 5, 23), (3, 4, 4), (4, 1, 3)):
                keys = _keys(seed, n)
                if seed == 2:   # a half turn about the camera's y between keys 2 and 3: slerp's hardest case
                    keys[3, :3, :3] = keys[2, :3, :3] @ torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
                got = page.evaluate("([k, f]) => window.scenedreamer.interpolatePoses(k, f)", [keys.tolist(), frames])
                want = interpolate_poses(keys, frames)
                # both in float64: the same formulas agree to rounding (1e-9 leaves room for acos near 1)
                np.testing.assert_allclose(np.array(got), want.numpy(), atol=1e-9, err_msg=f"seed {seed}")
        finally:
            browser.close()


def test_drop_three_keyframes_save_and_check(viewer, tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    from scenedreamer.export.ply import read_gaussians_ply
    from scenedreamer.geometry.cameras import Cameras
    from scenedreamer.geometry.trajectory import interpolated_cameras, path_frame_count
    from scenedreamer.geometry.trajectory_io import read_transforms_json

    url, _, _ = viewer
    run_cams = read_transforms_json(tiny_run / "trajectory.json", dtype=torch.float64).cameras
    K, w, h = run_cams.K[0].tolist(), run_cams.width, run_cams.height
    keys = _keys(7, 3)
    per_gap = 8                                            # the page's default frames per gap
    with sync_playwright() as p:
        browser, page = _open(p, url)
        try:
            # fly speed: the splats' robust extent crossed in 10 s, at least a camera step per second
            xyz = read_gaussians_ply(tiny_run / "scene.ply").means.detach().double().numpy()
            lo, hi = np.percentile(xyz, [5, 95], axis=0)
            pos = run_cams.c2w[:, :3, 3].numpy()
            step = np.linalg.norm(np.diff(pos, axis=0), axis=1).mean()
            speed = page.evaluate("() => window.scenedreamer.flySpeed()")
            assert speed == pytest.approx(max(np.linalg.norm(hi - lo) / 10, step), rel=1e-3)
            page.keyboard.press("Equal")                   # "+": 1.5 times faster
            assert page.evaluate("() => window.scenedreamer.flySpeed()") == pytest.approx(1.5 * speed, rel=1e-9)

            for c2w in keys:
                page.evaluate("([c, k, w, h]) => window.scenedreamer.setCamera(c, k, w, h)", [c2w.tolist(), K, w, h])
                page.keyboard.press("KeyK")
            page.keyboard.press("KeyK")                    # a fourth keyframe, then undone
            page.keyboard.press("Backspace")
            got_keys = np.array(page.evaluate("() => window.scenedreamer.keyframes()"))
            np.testing.assert_allclose(got_keys, keys.numpy(), atol=1e-6)
            page.keyboard.press("KeyF")                    # leave the hook camera: the panel is back
            assert page.inner_text("#keys") == f"keyframes: 3 · path: {2 * per_gap + 1} cameras"

            # scrub to the middle keyframe: the camera sits exactly there (page frame: upright)
            page.evaluate(f"""() => {{ const s = document.getElementById('scrub'); s.value = '{per_gap}';
                               s.dispatchEvent(new Event('input')); }}""")
            at = page.evaluate("() => window.scenedreamer.cameraPosition()")
            np.testing.assert_allclose(at, keys[1, :3, 3].numpy() * RUN_TO_PAGE, atol=1e-6)
            # reset: back to the run's first camera
            page.keyboard.press("KeyR")
            at = page.evaluate("() => window.scenedreamer.cameraPosition()")
            np.testing.assert_allclose(at, run_cams.c2w[0, :3, 3].numpy() * RUN_TO_PAGE, atol=1e-6)

            shown = np.array(page.evaluate("() => window.scenedreamer.authoredPath()"))
            with page.expect_download(timeout=HANG_GUARD_MS) as info:
                page.click("#save-path")
            saved = tmp_path / "path.json"
            info.value.save_as(saved)
        finally:
            browser.close()

    r = cli("trajectory", "--check", str(saved), timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{2 * per_gap + 1}" in r.stdout
    data = json.loads(saved.read_text())
    frames = path_frame_count(3, per_gap)
    assert len(data["frames"]) == frames
    file_c2w = np.array([f["transform_matrix"] for f in data["frames"]]) @ FLIP_YZ   # back to OpenCV axes
    # the keyframes are hit exactly, at frames 0, gap, 2 gap
    np.testing.assert_allclose(file_c2w[::per_gap], keys.numpy(), atol=1e-6)
    # every camera is Python's interpolated path through those keys, and the one the page showed
    cams = Cameras(torch.tensor([K], dtype=torch.float64).expand(3, 3, 3), keys, w, h)
    want = interpolated_cameras(cams, frames)
    np.testing.assert_allclose(file_c2w, want.c2w.numpy(), atol=1e-6)
    np.testing.assert_allclose(shown, want.c2w.numpy(), atol=1e-6)
    # read as `generate --trajectory` / `extend` read it: the same cameras and the run's intrinsics
    loaded = read_transforms_json(saved, dtype=torch.float64).cameras
    np.testing.assert_allclose(loaded.c2w.numpy(), want.c2w.numpy(), atol=1e-5)
    np.testing.assert_allclose(loaded.K[0].numpy(), np.array(K), atol=1e-9)
    assert (loaded.width, loaded.height) == (w, h)
    assert math.isfinite(float(loaded.c2w.abs().max()))
