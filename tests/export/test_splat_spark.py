"""The SPZ export seen by an independent renderer: Spark (the viewer's vendored 2.2.0) in headless
Debian Chromium renders the run's scene.ply and our .spz of it at the support cameras, and the two
pictures agree; the file is a fraction of the PLY's size."""

import functools
import http.server
import io
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from scenedreamer.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "src" / "scenedreamer" / "viewer" / "static"
PAGE = Path(__file__).resolve().parent / "spark_page"
CHROMIUM = "/usr/bin/chromium"
# WebGL2 on SwiftShader needs --use-angle=swiftshader --enable-unsafe-swiftshader with --disable-gpu
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
UPSCALE = 2        # render at twice the support images' size: quantisation shows more than at 64 px


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a - b) ** 2) + 1e-12))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):        # no access log on the test's output
        pass


@pytest.fixture
def server(tmp_path):
    """(base URL, folder served as /files/) of a local HTTP server for the page, Spark and the files."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "static").symlink_to(STATIC)
    (site / "page").symlink_to(PAGE)
    (site / "files").mkdir()
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", site / "files"
    httpd.shutdown()
    httpd.server_close()


def _render(browser, url: str, frames: list, K: list, w: int, h: int) -> tuple[int, list[np.ndarray]]:
    from PIL import Image

    page = browser.new_page(viewport={"width": w, "height": h}, device_scale_factor=1)
    try:
        page.goto(url)
        page.wait_for_function("() => window.page && (window.page.ready || window.page.error)", timeout=120_000)
        assert page.evaluate("() => window.page.error") is None
        shots = []
        for c2w in frames:
            size = page.evaluate("([c, k, w, h]) => window.page.show(c, k, w, h)", [c2w, K, w, h])
            assert size == {"width": w, "height": h}
            shot = Image.open(io.BytesIO(page.locator("#view").screenshot())).convert("RGB")
            shots.append(np.asarray(shot, dtype=np.float32) / 255)
        return page.evaluate("() => window.page.numSplats"), shots
    finally:
        page.close()


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make test installs it)")
def test_spark_renders_our_spz_like_the_ply_at_the_support_cameras(tiny_run, server, tmp_path):
    run = tiny_run                                # the suite's shared tiny run (tests/conftest.py)
    from playwright.sync_api import sync_playwright

    from scenedreamer.export.ply import read_gaussians_ply

    base, files = server
    spz = files / "scene.spz"
    assert main(["export", str(run), "--format", "spz", "--out", str(spz), "--quiet"]) == 0
    shutil.copy(run / "scene.ply", files / "scene.ply")
    n = read_gaussians_ply(run / "scene.ply").num_gaussians

    tr = json.loads((run / "transforms.json").read_text())
    flip = np.diag([1.0, -1.0, -1.0, 1.0])   # nerfstudio's OpenGL camera axes -> OpenCV
    cams = [(np.array(f["transform_matrix"]) @ flip).tolist() for f in tr["frames"]]
    K = [[tr["fl_x"] * UPSCALE, 0, tr["cx"] * UPSCALE], [0, tr["fl_y"] * UPSCALE, tr["cy"] * UPSCALE], [0, 0, 1]]
    w, h = tr["w"] * UPSCALE, tr["h"] * UPSCALE
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            n_ply, ply_shots = _render(browser, f"{base}/page/index.html?file=/files/scene.ply&frame=opencv",
                                       cams, K, w, h)
            n_spz, spz_shots = _render(browser, f"{base}/page/index.html?file=/files/scene.spz&frame=yup",
                                       cams, K, w, h)
        finally:
            browser.close()
    assert n_ply == n_spz == n
    scores = [psnr(a, b) for a, b in zip(spz_shots, ply_shots)]
    # the same picture upside down: what a wrong axis convention in the SPZ would give
    flipped = [psnr(a[::-1], b) for a, b in zip(spz_shots, ply_shots)]
    print("spz vs ply in Spark, PSNR", scores, "upside down", flipped)
    assert all(s.std() > 0.02 for s in ply_shots)          # Spark drew a scene, not a blank canvas
    # Issue 22's target: the SPZ renders within 35 dB of the PLY (its 8-bit colours, opacities and
    # log-scales and 10-bit rotations are all that differ)
    assert min(scores) >= 35.0, scores
    assert max(flipped) < 25.0, flipped
    # Size: this run's SH is degree 0, whose PLY row is 17 floats (68 bytes) while an SPZ row is
    # 20 bytes before gzip (9 position, 4 rotation, 7 more), so ~4x is what the format can give
    # here (measured 4.0x on this run); issue 22's 1/8 holds for SH degree 3 scenes
    # (tests/export/test_spz.py). 1/3.5 fails if positions or rotations are stored wider.
    ply_size = os.path.getsize(run / "scene.ply")
    assert os.path.getsize(spz) <= ply_size / 3.5, (os.path.getsize(spz), ply_size)
