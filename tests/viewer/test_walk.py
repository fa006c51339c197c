"""Walk mode in headless Debian Chromium: `view RUN --collider FILE.glb`, key G. The eye stays
1.6 m (times spawn.json's metric scale) above the floor, found by an independent ray cast in
numpy against the GLB as trimesh reads it, and walls stop the walker."""

import json
import shutil

import numpy as np
import pytest

from .conftest import cli, start_view, stop_view
from .test_authoring import _open
from .test_browser import CHROMIUM, HANG_GUARD_MS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (make browser)")]
EYE_HEIGHT_M = 1.6
RADIUS_M = 0.25          # walk.js RADIUS_M


def nearest_below(triangles: np.ndarray, x: float, y: float, z: float) -> float:
    """Distance from (x, y, z) straight down (-y) to the nearest triangle (T, 3, 3), or inf:
    barycentric coordinates of (x, z) in each triangle's x-z projection."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    v0, v1 = (b - a)[:, [0, 2]], (c - a)[:, [0, 2]]
    p = np.array([x, z]) - a[:, [0, 2]]
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    ok = np.abs(det) > 1e-12
    det = np.where(ok, det, 1.0)
    u = (p[:, 0] * v1[:, 1] - p[:, 1] * v1[:, 0]) / det
    w = (v0[:, 0] * p[:, 1] - v0[:, 1] * p[:, 0]) / det
    inside = ok & (u >= -1e-9) & (w >= -1e-9) & (u + w <= 1 + 1e-9)
    height = a[:, 1] + u * (b - a)[:, 1] + w * (c - a)[:, 1]
    below = inside & (height <= y + 1e-9)
    return float((y - height[below]).min()) if below.any() else float("inf")


def glb_triangles(path) -> np.ndarray:
    import trimesh

    mesh = trimesh.load(path, force="mesh")          # node transforms applied
    return np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)]


def walk_until(page, condition: str) -> None:
    page.keyboard.down("KeyW")
    page.wait_for_function(f"() => {{ const w = window.scenedreamer.walk; return {condition}; }}",
                           timeout=HANG_GUARD_MS)
    page.keyboard.up("KeyW")
    # the walker settles on the floor after the key is released (gravity, the floor ray)
    page.wait_for_function("() => window.scenedreamer.walk.grounded", timeout=HANG_GUARD_MS)


def test_walk_keeps_eye_height_over_a_tiny_runs_glb(tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    glb = tmp_path / "scene.glb"
    r = cli("export", str(tiny_run), "--format", "glb", "--out", str(glb), "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr
    tris = glb_triangles(glb)
    url, _, proc = start_view(tiny_run, "--collider", glb)
    try:
        with sync_playwright() as p:
            browser, page = _open(p, url)
            try:
                assert page.evaluate("() => document.getElementById('walk').disabled") is False
                page.keyboard.press("KeyG")
                assert page.evaluate("() => window.scenedreamer.mode()") == "walk"
                page.wait_for_function("() => window.scenedreamer.walk.grounded", timeout=HANG_GUARD_MS)
                heights = []
                for _ in range(2):
                    eye = page.evaluate("() => window.scenedreamer.cameraPosition()")
                    heights.append(nearest_below(tris, *eye))
                    walk_until(page, "w.distance > 0.3 || w.blocked > 30")
            finally:
                browser.close()
    finally:
        stop_view(proc)
    # no spawn.json: metric scale 1; the GLB stores float32 vertices (1e-4 covers their rounding)
    np.testing.assert_allclose(heights, EYE_HEIGHT_M, atol=1e-4)


def test_walls_stop_the_walker_and_spawn_json_sets_start_and_scale(tiny_run, tmp_path):
    from playwright.sync_api import sync_playwright

    from scenedreamer.export.glb import write_glb

    # a floor (y = 0, 10 x 10) and four walls 3 units from the centre, +y up like glTF
    quad = lambda a, b, c, d: [a, b, c, a, c, d]  # noqa: E731
    pts = []
    pts += quad((-5, 0, -5), (5, 0, -5), (5, 0, 5), (-5, 0, 5))
    for s in (-3, 3):
        pts += quad((s, 0, -5), (s, 0, 5), (s, 5, 5), (s, 5, -5))
        pts += quad((-5, 0, s), (5, 0, s), (5, 5, s), (-5, 5, s))
    verts = np.array(pts, dtype=np.float32)
    faces = np.arange(len(verts)).reshape(-1, 3)
    glb = tmp_path / "box.glb"
    write_glb(glb, [("box", verts, faces, np.full((len(verts), 3), 0.5, dtype=np.float32))])
    scale = 2.0                              # scene units per metre
    (tmp_path / "box.spawn.json").write_text(json.dumps({"position": [0.5, 0, -0.5], "up": "y",
                                                         "metric_scale": scale}))
    url, _, proc = start_view(tiny_run, "--collider", glb)
    try:
        with sync_playwright() as p:
            browser, page = _open(p, url)
            try:
                page.keyboard.press("KeyG")
                page.wait_for_function("() => window.scenedreamer.walk.grounded", timeout=HANG_GUARD_MS)
                start = page.evaluate("() => window.scenedreamer.cameraPosition()")
                walk_until(page, "w.blocked > 20")
                end = page.evaluate("() => window.scenedreamer.cameraPosition()")
            finally:
                browser.close()
    finally:
        stop_view(proc)
    np.testing.assert_allclose(start, [0.5, EYE_HEIGHT_M * scale, -0.5], atol=1e-9)
    assert end[1] == pytest.approx(EYE_HEIGHT_M * scale, abs=1e-9)
    inner = 3 - RADIUS_M * scale             # the eye keeps the capsule's radius from every wall
    assert max(abs(end[0]), abs(end[2])) <= inner + 1e-9, end
    # ... and it did walk up to a wall (a step is 1.4 m/s * scale / 120 s: well under 0.1)
    assert max(abs(end[0]), abs(end[2])) > inner - 0.1, end
