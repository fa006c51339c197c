"""End-to-end generation on the offline preset: time, peak memory and 3D accuracy.

Runs ``scenedreamer generate`` (default trajectory, 256x256, 12 cameras; the offline preset's
oracle inpainter and corrupted-depth oracle, which isolates our geometry, alignment and
representation) in a subprocess, then measures against the procedural world's exact renders:

- held-out views: cameras half-way between consecutive trajectory cameras (never in the support
  database); PSNR of the representation's render and median relative z-depth error (sky excluded);
- 3D consistency: median depth-reprojection error between consecutive rendered held-out frames.

Run: ``.venv/bin/python -m benchmarks.bench_pipeline [--representation nerf|gaussians] [--out DIR]``.
Writes benchmarks/results/pipeline_<representation>.json. Targets (issue 5, 2 CPU cores):
end to end <= 300 s and <= 4 GB peak; held-out PSNR >= 24 dB; median relative depth error <= 5 %.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from scenedreamer.atomic import atomic_write_json
from scenedreamer.config_io import load_config
from scenedreamer.eval.metrics import depth_reprojection_error, median_relative_depth_error, psnr
from scenedreamer.geometry.cameras import Cameras
from scenedreamer.geometry.trajectory import interpolate_poses
from scenedreamer.pipeline.config import GenerateConfig
from scenedreamer.pipeline.scene_cameras import load_trajectory
from scenedreamer.priors.procedural import ProceduralWorld
from scenedreamer.representation.checkpoint import load_checkpoint

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "a forest lake at sunset"


def held_out_cameras(config: GenerateConfig) -> Cameras:
    """Cameras half-way (slerp + spline) between consecutive trajectory cameras."""
    traj = load_trajectory(config)
    n = len(traj.cameras)
    c2w = interpolate_poses(traj.cameras.c2w, 2 * n - 1)[1::2]
    return Cameras(traj.cameras.K[:1].expand(len(c2w), 3, 3).contiguous(), c2w, config.width, config.height)


def evaluate(run: Path) -> dict[str, float]:
    """Held-out PSNR / depth error and consecutive-frame reprojection error of a finished run."""
    config = load_config(GenerateConfig, run / "config.json")
    rep = load_checkpoint(run / "scene.pt").representation.eval()
    world = ProceduralWorld.from_prompt(config.prompt, config.seed, config.priors.world)
    cams = held_out_cameras(config)
    psnrs, depth_errs, reproj = [], [], []
    prev = None
    for i in range(len(cams)):
        cam = cams[i]
        truth = world.render(cam)
        with torch.no_grad():
            out = rep.render(cam)
        psnrs.append(psnr(out.rgb[0].clamp(0, 1), truth.rgb[0]))
        depth_errs.append(median_relative_depth_error(out.depth[0], truth.depth[0], ~truth.sky[0]))
        if prev is not None:
            reproj.append(depth_reprojection_error(prev[0], prev[1], out.depth[0], cam))
        prev = (out.depth[0], cam)
    med = lambda xs: float(torch.tensor(xs).median())
    return {"held_out_views": len(cams), "held_out_psnr_mean_db": float(sum(psnrs) / len(psnrs)),
            "held_out_psnr_min_db": float(min(psnrs)), "median_relative_depth_error": med(depth_errs),
            "reprojection_error_median": med(reproj)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--representation", choices=["nerf", "gaussians"], default="nerf")
    parser.add_argument("--out", default=None, help="run folder (default: a temp folder under runs/)")
    parser.add_argument("--extra", nargs="*", default=[], help="more `scenedreamer generate` arguments")
    args = parser.parse_args()
    out = Path(args.out or f"runs/bench_{args.representation}")
    cmd = [sys.executable, "-m", "scenedreamer.cli", "generate", PROMPT, "--out", str(out), "--overwrite",
           "--quiet", "--representation", args.representation, *args.extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20   # KiB -> GiB
    figures = {"end_to_end_s": round(seconds, 1), "peak_rss_gb": round(peak_gb, 2), **evaluate(out)}
    result = {"command": " ".join(cmd[1:]), "machine": {"processor": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "torch": torch.__version__, "load_average": os.getloadavg()[0]},
              "targets": {"end_to_end_s": 300, "peak_rss_gb": 4, "held_out_psnr_mean_db": 24,
                          "median_relative_depth_error": 0.05},
              "figures": figures}
    for k, v in figures.items():
        print(f"{k:32} {v:.4g}" if isinstance(v, float) else f"{k:32} {v}")
    atomic_write_json(RESULTS / f"pipeline_{args.representation}.json", result)


if __name__ == "__main__":
    main()
