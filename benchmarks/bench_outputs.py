"""Issue 9 speed targets for the scene a user takes away (run on a quiet machine):

    python -m benchmarks.bench_outputs [RUN]      (default RUN: runs/demo, the `make run` scene)

- export of 1 million Gaussians to a standard 3DGS PLY: <= 3 s (random Gaussians, SH degree 3
  as other tools write them, and SH degree 0 as our runs do);
- `scenedreamer render RUN --frames 60 --resolution 256x256 --out FILE.mp4` (from scene.ply):
  <= 30 s, the whole command timed (start-up, loading, rendering, H.264 encoding).
Writes benchmarks/results/outputs.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def time_ply_export(n: int, sh_degree: int) -> float:
    from scenedreamer.export.ply import write_gaussians_ply
    from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene(GaussianConfig(sh_degree=sh_degree), num=n)
    with torch.no_grad():
        scene.means.copy_(torch.randn(n, 3, generator=g))
        scene.log_scales.copy_(torch.randn(n, 3, generator=g) * 0.1 - 4)
        scene.quats.copy_(torch.randn(n, 4, generator=g))
        scene.sh0.copy_(torch.randn(n, 1, 3, generator=g))
        if scene.shN.numel():
            scene.shN.copy_(torch.randn(*scene.shN.shape, generator=g) * 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            write_gaussians_ply(Path(tmp) / "scene.ply", scene, include_features=False)
            best = min(best, time.perf_counter() - start)
        size = (Path(tmp) / "scene.ply").stat().st_size
    return best, size


def time_render(run: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "scenedreamer.cli", "render", str(run), "--frames", "60",
               "--resolution", "256x256", "--out", str(Path(tmp) / "v.mp4"), "--quiet"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo")
    load = os.getloadavg()[0]
    results = {"machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "load_average_start": load}}
    for deg in (3, 0):
        seconds, size = time_ply_export(1_000_000, deg)
        results[f"ply_export_1M_sh{deg}_s"] = round(seconds, 3)
        results[f"ply_export_1M_sh{deg}_bytes"] = size
        print(f"PLY export, 1M Gaussians, SH degree {deg}: {seconds:.2f} s ({size / 1e6:.0f} MB)", flush=True)
    if (run / "scene.ply").exists():
        seconds = time_render(run)
        results["render_60x256_s"] = round(seconds, 2)
        print(f"render 60 frames 256x256 from {run}/scene.ply to MP4: {seconds:.1f} s", flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "outputs.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
