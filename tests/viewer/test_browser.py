"""The viewer end to end in headless Debian Chromium (software WebGL via SwiftShader): Spark
loads scene.ply, the hook sets a support camera, and the capture matches the support image."""

import io
import math
import json
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.slow
# Every wait below is on an event of the page (ready, framesDrawn, pathsFlown), never a count of
# frames within some time: software WebGL on a busy machine takes minutes for what takes seconds
# on a quiet one. HANG_GUARD_MS only ends a page that will never get there (a JavaScript error):
# far above the slowest wait seen on a busy 2-core machine (~90 s for the first load).
HANG_GUARD_MS = 600_000

CHROMIUM = "/usr/bin/chromium"
# WebGL2 on SwiftShader needs --use-angle=swiftshader --enable-unsafe-swiftshader with --disable-gpu
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])  # nerfstudio OpenGL camera axes <-> OpenCV


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a - b) ** 2) + 1e-12))


def open_loaded_page(browser, url: str):
    """A 256x256 page of ``url`` once the viewer has loaded its splats without an error."""
    page = browser.new_page(viewport={"width": 256, "height": 256}, device_scale_factor=1)
    page.goto(url)
    page.wait_for_function("() => window.scenedreamer && (window.scenedreamer.ready || window.scenedreamer.error)",
                           timeout=HANG_GUARD_MS)
    assert page.evaluate("() => window.scenedreamer.error") is None
    return page


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make test installs it)")
def test_spark_render_matches_support_views(viewer, tiny_run):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    url, _, _ = viewer
    tr = json.loads((tiny_run / "transforms.json").read_text())
    K = [[tr["fl_x"], 0, tr["cx"]], [0, tr["fl_y"], tr["cy"]], [0, 0, 1]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = open_loaded_page(browser, url)
            assert page.evaluate("() => window.scenedreamer.numSplats") > 0
            # the prompt is shown as text, not parsed as HTML
            assert page.inner_text("#prompt") == "a forest lake <b>&amp;</b>"
            assert page.locator("#prompt b").count() == 0
            scores, flipped = [], []
            for frame in tr["frames"][:2]:
                c2w = (np.array(frame["transform_matrix"]) @ FLIP_YZ).tolist()
                size = page.evaluate("([c, k, w, h]) => window.scenedreamer.setCamera(c, k, w, h)",
                                     [c2w, K, tr["w"], tr["h"]])
                assert size == {"width": tr["w"], "height": tr["h"]}
                shot = Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB")
                got = np.asarray(shot, dtype=np.float32) / 255
                ref = np.asarray(Image.open(tiny_run / frame["file_path"]).convert("RGB"), dtype=np.float32) / 255
                assert got.shape == ref.shape
                scores.append(psnr(got, ref))
                flipped.append(psnr(got[::-1], ref))
        finally:
            browser.close()
    print("spark vs support PSNR", scores, "upside-down", flipped)
    # Measured on a 64x64, 2-camera Gaussian run (default fit steps): our own rasterizer renders
    # scene.ply at 25.3-26.1 dB against the support views, Spark at 21.6-22.5 dB (Spark and ours
    # agree to ~26 dB at this size: sub-pixel footprint and cut-off differences weigh more on 64 px
    # than the 35-39 dB seen at 256 px). With this fixture's shorter fit Spark scored 19.8-20.2 dB
    # and the same captures upside down 9.1-9.2 dB. 18 dB leaves ~2 dB for SwiftShader variation
    # and still fails a wrong pose, a wrong flip, a shifted principal point or an empty canvas.
    assert min(scores) > 18.0, scores
    # upright: the capture matches the support image far better than the same image upside down
    assert min(s - f for s, f in zip(scores, flipped)) > 3.0, (scores, flipped)


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make test installs it)")
def test_the_page_draws_on_demand_and_redraws_when_the_view_moves(viewer):
    """Idle, the page draws nothing (each frame of a big scene costs seconds in software WebGL);
    an orbit drag and the fly-along-the-path button still redraw it."""
    import time

    from PIL import Image
    from playwright.sync_api import sync_playwright

    url, _, _ = viewer
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # large enough that the panel (top left) leaves the lower right of the canvas free
            page = browser.new_page(viewport={"width": 640, "height": 480}, device_scale_factor=1)
            page.goto(url)
            page.wait_for_function("() => window.scenedreamer && window.scenedreamer.ready", timeout=HANG_GUARD_MS)
            frames = lambda: page.evaluate("() => window.scenedreamer.framesDrawn")  # noqa: E731
            shot = lambda: np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB"),  # noqa: E731
                                      dtype=np.float32)
            before, idle = shot(), frames()
            time.sleep(1.0)
            assert frames() == idle, "an idle page kept drawing"
            x, y = 480, 360
            assert page.evaluate(f"() => document.elementFromPoint({x}, {y}).id") == "view"
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 60, y + 10, steps=5)
            page.mouse.up()
            page.wait_for_function(f"() => window.scenedreamer.framesDrawn > {idle}", timeout=HANG_GUARD_MS)
            time.sleep(0.5)
            assert np.abs(shot() - before).mean() > 1.0, "the orbit drag did not change the picture"
            moved = frames()
            page.click("#fly-path")
            # the flight is timed (SECONDS_PER_CAMERA of wall clock per camera): on a busy machine
            # it draws few frames, so wait for the flight to end, not for a count of frames
            page.wait_for_function("() => window.scenedreamer.pathsFlown >= 1", timeout=HANG_GUARD_MS)
            assert frames() > moved, "the flight drew nothing"
            # it ends at the path's last camera (the loop kept running: no exception stopped it)
            end, last = page.evaluate("() => [window.scenedreamer.cameraPosition(), window.scenedreamer.pathEnd()]")
            np.testing.assert_allclose(end, last, atol=1e-4)
        finally:
            browser.close()


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make test installs it)")
def test_level_of_detail_page_loads_and_draws(viewer, tiny_run):
    """?lod=1 (Spark's level of detail, for multi-million-splat worlds) loads, counts the file's
    splats and draws something where the plain page does."""
    from PIL import Image
    from playwright.sync_api import sync_playwright
    from plyfile import PlyData

    url, _, _ = viewer
    lit = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for query in ("", "?lod=1"):
                page = browser.new_page(viewport={"width": 256, "height": 256}, device_scale_factor=1)
                page.goto(url + "/" + query)
                page.wait_for_function("() => window.scenedreamer && (window.scenedreamer.ready || window.scenedreamer.error)",
                                       timeout=HANG_GUARD_MS)
                assert page.evaluate("() => window.scenedreamer.error") is None
                assert page.evaluate("() => window.scenedreamer.numSplats") == PlyData.read(str(tiny_run / "scene.ply"))["vertex"].count
                # the bare view from the first support camera (panel and frusta hidden)
                tr = json.loads((tiny_run / "transforms.json").read_text())
                K = [[tr["fl_x"], 0, tr["cx"]], [0, tr["fl_y"], tr["cy"]], [0, 0, 1]]
                c2w = (np.array(tr["frames"][0]["transform_matrix"]) @ FLIP_YZ).tolist()
                page.evaluate("([c, k, w, h]) => window.scenedreamer.setCamera(c, k, w, h)", [c2w, K, tr["w"], tr["h"]])
                img = np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB"), dtype=np.float32)
                lit[query] = float((img.sum(-1) > 30).mean())
                page.close()
        finally:
            browser.close()
    # the plain page's share of lit pixels is the reference; LoD may drop the faintest splats
    # (half of it still means the scene is drawn, an empty canvas gives 0)
    assert lit["?lod=1"] > 0.5 * lit[""] > 0, lit


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make test installs it)")
def test_a_far_sky_shell_is_drawn_not_cut_by_the_far_plane(tiny_run, tmp_path):
    """A sky shell can lie thousands of units out (representation/distill.py shell_radius with
    sky_parallax_pixels). The page's far plane follows the splats' reach (/api/scene.json scene_reach),
    so the shell is drawn; behind the fixed far plane of 1000 units before, the canvas stayed
    black."""
    import torch
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from scenedreamer.export.ply import write_gaussians_ply
    from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene
    from viewer.conftest import start_view, stop_view

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    tr = json.loads((run / "transforms.json").read_text())
    c2w = np.array(tr["frames"][0]["transform_matrix"]) @ FLIP_YZ
    # only a red shell at radius 3000 round the first support camera, splats ~0.06 rad apart
    n, radius = 4000, 3000.0
    k = torch.arange(n, dtype=torch.float64) + 0.5
    polar, azimuth = torch.acos(1 - 2 * k / n), math.pi * (1 + 5 ** 0.5) * k
    dirs = torch.stack([polar.sin() * azimuth.cos(), polar.sin() * azimuth.sin(), polar.cos()], -1)
    centres = (torch.tensor(c2w[:3, 3]) + radius * dirs).float()
    shell = GaussianScene.from_points(centres, torch.tensor([[0.9, 0.1, 0.1]]).expand(n, 3), torch.full((n,), 0.06 * radius),
                                      GaussianConfig(), opacities=torch.full((n,), 0.99))
    (run / "scene.ply").unlink()
    write_gaussians_ply(run / "scene.ply", shell)
    url, _, proc = start_view(run)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = open_loaded_page(browser, url)
                K = [[tr["fl_x"], 0, tr["cx"]], [0, tr["fl_y"], tr["cy"]], [0, 0, 1]]
                page.evaluate("([c, k, w, h]) => window.scenedreamer.setCamera(c, k, w, h)",
                              [c2w.tolist(), K, tr["w"], tr["h"]])
                img = np.asarray(Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB"), dtype=np.float32)
            finally:
                browser.close()
    finally:
        stop_view(proc)
    red = (img[..., 0] > 100) & (img[..., 0] > 2 * img[..., 1])
    # the shell surrounds the camera: (nearly) every pixel shows it; a cut shell leaves 0 %
    assert red.mean() >= 0.9, red.mean()
