"""Viewer load time: a synthetic N-splat scene.ply served by `scenedreamer view`, loaded in
headless Debian Chromium (software WebGL), timed from page navigation until the page reports
the splats loaded and drawn (window.scenedreamer.ready).

Target (issue 9): 500k splats in <= 20 s. Smoke test: --splats 10000.

    .venv/bin/python benchmarks/bench_viewer.py --splats 500000
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

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def write_scene(run: Path, n: int, seed: int = 0) -> None:
    """A run folder with an n-splat standard 3DGS scene.ply (SH degree 0) in front of the
    identity camera (OpenCV axes, y down), plus a one-camera trajectory.json and config.json."""
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.zeros(n, dtype=[(k, "f4") for k in names])
    v["x"] = rng.uniform(-2, 2, n)
    v["y"] = rng.uniform(-2, 2, n)
    v["z"] = rng.uniform(2, 6, n)
    for k in ("f_dc_0", "f_dc_1", "f_dc_2"):
        v[k] = rng.normal(0, 1, n)
    v["opacity"] = 2.0
    for k in ("scale_0", "scale_1", "scale_2"):
        v[k] = np.log(0.01)
    v["rot_0"] = 1.0
    run.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(v, "vertex")]).write(str(run / "scene.ply"))
    f = 0.5 * 256 / np.tan(np.radians(30))
    (run / "trajectory.json").write_text(json.dumps({
        "camera_model": "OPENCV", "fl_x": f, "fl_y": f, "cx": 128, "cy": 128, "w": 256, "h": 256,
        "frames": [{"file_path": "images/frame_00000.png",
                    "transform_matrix": [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]}]}))
    (run / "config.json").write_text(json.dumps({"prompt": f"bench: {n} random splats"}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=500_000)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_scene(run, args.splats)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "scenedreamer.cli", "view", str(run), "--no-browser",
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 256, "height": 256}, device_scale_factor=1)
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function("() => window.scenedreamer && (window.scenedreamer.ready || window.scenedreamer.error)",
                                       timeout=args.timeout * 1000)
                seconds = time.perf_counter() - t0
                info = page.evaluate("() => ({error: window.scenedreamer.error, n: window.scenedreamer.numSplats})")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    if info["error"]:
        print(f"viewer failed: {info['error']}", file=sys.stderr)
        return 1
    verdict = "ok" if args.splats < 500_000 or seconds <= 20.0 else "SLOWER than the 20 s target"
    print(json.dumps({"bench": "viewer_load", "splats": info["n"], "seconds": round(seconds, 2),
                      "target_s_at_500k": 20.0, "verdict": verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
