"""Viewer first frame for a grown world (issue 23 item 7): a synthetic run of N splats spread
along a 100-unit path (a world grown chapter by chapter: many cameras, splats on both sides of
the path and on its ground), or a run folder you give, served by `scenedreamer view` and opened
in headless Debian Chromium (software WebGL). Timed from navigation until the page reports its
first frame sorted, drawn and finished by the GPU (window.scenedreamer.ready).

Target: >= 2,000,000 splats with the first frame in <= 15 s. Quiet machine only (the lead runs it):

    .venv/bin/python benchmarks/bench_viewer_2m.py --splats 2000000
    .venv/bin/python benchmarks/bench_viewer_2m.py --splats 2000000 --lod 1   # Spark's level of detail
    .venv/bin/python benchmarks/bench_viewer_2m.py --splats 2000000 --lod 0   # without it
    (no --lod: the page's default, level of detail from viewer/server.py LOD_AUTO_SPLATS splats)
    .venv/bin/python benchmarks/bench_viewer_2m.py --run runs/grown      # an existing finished run

Smoke check (any machine): --splats 20000 (prints the JSON line, verdict "smoke").
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
TARGET_SPLATS = 2_000_000
TARGET_SECONDS = 15.0       # issue 23 item 7
PATH_LENGTH = 100.0         # scene units along +z (the run's OpenCV world, y down)
CAMERAS = 120               # one per ~0.8 units: a world of several chapters


def write_grown_world(run: Path, n: int, seed: int = 0) -> None:
    """A finished-looking run folder (marker, progress.json, config.json, trajectory.json) with an
    n-splat standard 3DGS scene.ply (SH degree 0): a ground at y = +1.5 (OpenCV: below the
    cameras) and two walls of splats at x = +-4, along z in [0, PATH_LENGTH]."""
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.zeros(n, dtype=[(k, "f4") for k in names])
    part = rng.integers(0, 3, n)                       # 0: ground, 1: left wall, 2: right wall
    v["z"] = rng.uniform(0, PATH_LENGTH, n)
    v["x"] = np.where(part == 0, rng.uniform(-4, 4, n), np.where(part == 1, -4.0, 4.0) + rng.normal(0, 0.05, n))
    v["y"] = np.where(part == 0, 1.5 + rng.normal(0, 0.02, n), rng.uniform(-3, 1.5, n))
    for k in ("f_dc_0", "f_dc_1", "f_dc_2"):
        v[k] = rng.normal(0, 1, n)
    v["opacity"] = 2.0
    for k in ("scale_0", "scale_1", "scale_2"):
        v[k] = np.log(0.03)
    v["rot_0"] = 1.0
    run.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(run / "scene.ply"))
    f = 0.5 * 256 / np.tan(np.radians(30))
    frames = []
    for i in range(CAMERAS):
        c2w_gl = np.diag([1.0, -1.0, -1.0, 1.0])       # OpenCV identity in OpenGL camera axes
        c2w_gl[2, 3] = PATH_LENGTH * i / (CAMERAS - 1)
        frames.append({"file_path": f"images/frame_{i:05d}.png", "transform_matrix": c2w_gl.tolist()})
    (run / "trajectory.json").write_text(json.dumps({
        "camera_model": "OPENCV", "fl_x": f, "fl_y": f, "cx": 128, "cy": 128, "w": 256, "h": 256,
        "frames": frames}))
    (run / "config.json").write_text(json.dumps({"prompt": f"bench: a grown world of {n} splats"}))
    # what makes it a finished run for `scenedreamer view` (pipeline/run_contract.py)
    (run / ".scenedreamer-run.json").write_text(json.dumps({"program": "scenedreamer"}))
    (run / "progress.json").write_text("{}")


def first_frame_seconds(run: Path, timeout_s: float, lod: str | None = None) -> dict:
    """Serve ``run`` and time the page's first frame; the page's own load time comes with it."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scenedreamer.cli", "view", str(run), "--no-browser",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        line = proc.stdout.readline()                 # "serving ... at URL": the port is bound
        if "serving" not in line:
            raise SystemExit(f"view did not start: {line}{proc.stderr.read()}")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 640, "height": 480}, device_scale_factor=1)
            t0 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/" + (f"?lod={lod}" if lod else ""))
            page.wait_for_function("() => window.scenedreamer && (window.scenedreamer.ready || window.scenedreamer.error)",
                                   timeout=timeout_s * 1000)
            seconds = time.perf_counter() - t0
            info = page.evaluate("() => ({error: window.scenedreamer.error, n: window.scenedreamer.numSplats,"
                                 " load: window.scenedreamer.loadSeconds})")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {"seconds": seconds, **info}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=TARGET_SPLATS, help="synthetic world size (default 2,000,000)")
    ap.add_argument("--run", type=Path, default=None, help="time this finished run instead of a synthetic one")
    ap.add_argument("--lod", choices=("0", "1", "quality"), default=None,
                    help="open the page with ?lod=0 (off) / ?lod=1 / ?lod=quality (Spark's level of "
                         "detail); left out: the page's default")
    ap.add_argument("--timeout", type=float, default=600.0, help="hang guard (s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            write_grown_world(run, args.splats)
        r = first_frame_seconds(run, args.timeout, args.lod)
    if r["error"]:
        print(f"viewer failed: {r['error']}", file=sys.stderr)
        return 1
    if r["n"] < TARGET_SPLATS:
        verdict = "smoke"
    else:
        verdict = "ok" if r["seconds"] <= TARGET_SECONDS else f"SLOWER than the {TARGET_SECONDS:g} s target"
    print(json.dumps({"bench": "viewer_first_frame", "lod": args.lod, "splats": r["n"], "seconds": round(r["seconds"], 2),
                      "page_load_seconds": round(r["load"], 2), "target_s": TARGET_SECONDS,
                      "target_splats": TARGET_SPLATS, "verdict": verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
