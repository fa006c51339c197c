"""Tri-plane NeRF speed and fitting quality on CPU.

    .venv/bin/python -m benchmarks.bench_nerf [--quick] [--threads N] [--fit-seconds S]

Figures (written to benchmarks/results/nerf.json with machine info):
  * field_samples_per_s: fused plane sampling + MLP, forward + backward + Adam step (the figure
    ENVIRONMENT.md measured at ~0.48 M/s for a first cut; target >= 0.5 M/s);
  * train_samples_per_s: the whole training step on rays (sample placement with a depth hint,
    field, volume rendering, losses, backward, Adam);
  * fit: 8 views of 128x128 of the analytic scene (tests/representation/scenes.py), fitted for a
    fixed wall-clock budget (default 120 s); held-out PSNR and depth error at the end
    (target >= 25 dB within 120 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "representation"))

from scenes import InMemoryDatabase, default_scene, make_views, orbit_cameras, render_scene  # noqa: E402

from scenedreamer.representation.fitting import FitConfig, fit, make_optimizer  # noqa: E402
from scenedreamer.representation.losses import psnr  # noqa: E402
from scenedreamer.representation.triplane import TriplaneConfig, TriplaneNeRF, bounds_from_views  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bench_field(config: TriplaneConfig, samples: int, repeats: int) -> float:
    """Samples per second of field forward + backward + Adam on random points."""
    rep = TriplaneNeRF(config)
    opt = make_optimizer(rep, FitConfig())
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(samples, 3, generator=g) * 2 - 1) * config.radius * 1.5

    def step():
        density, colour, feats = rep.field(points)
        loss = density.mean() + colour.square().mean() + feats.square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return samples / timed(step, repeats)


def bench_train_step(config: TriplaneConfig, rays: int, repeats: int) -> tuple[float, int]:
    """(samples per second, samples per ray) of a full ray training step with a depth hint."""
    rep = TriplaneNeRF(config).train()
    rep.sample_generator = torch.Generator().manual_seed(0)
    opt = make_optimizer(rep, FitConfig())
    g = torch.Generator().manual_seed(1)
    origins = torch.zeros(rays, 3)
    dirs = torch.cat([torch.rand(rays, 2, generator=g) - 0.5, torch.ones(rays, 1)], dim=-1)
    hint = 1.0 + 3.0 * torch.rand(rays, generator=g)
    target = torch.rand(rays, 3, generator=g)

    def step():
        out = rep.render_rays(origins, dirs, depth_hint=hint, with_losses=True)
        loss = (out.rgb - target).abs().mean() + ((out.depth - hint).abs() / hint).mean() + out.free_space.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    per_ray = config.sampling.stratified_bins + config.sampling.guided_edges
    return rays * per_ray / timed(step, repeats), per_ray


def bench_fit(size: int, seconds: float, config_kwargs: dict, fit_config: FitConfig) -> dict:
    """Fit 8 views for a wall-clock budget; held-out PSNR / depth error at the end."""
    scene = default_scene()
    views = make_views(scene, orbit_cameras([0, 45, 90, 135, 180, 225, 270, 315], size, size), sky_depth=30.0)
    db = InMemoryDatabase(views)
    b = bounds_from_views(views)
    rep = TriplaneNeRF(TriplaneConfig(center=b.center, radius=b.radius, **config_kwargs))
    held_out = orbit_cameras([22.5, 202.5], size, size)
    truth = render_scene(scene, held_out)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    # One schedule over the whole budget: time a first short call, then size the main call with a
    # safety margin (the box is shared; steps can slow down while it runs).
    calibrate, safety = 20, 0.8
    state = fit(rep, db, fit_config, calibrate, g)
    per_step = (time.perf_counter() - start) / calibrate
    remaining = max(0.0, seconds - (time.perf_counter() - start))
    steps = int(safety * remaining / per_step)
    state = fit(rep, db, fit_config, steps, g, state=state)
    train_seconds = time.perf_counter() - start
    rep.eval()
    with torch.no_grad():
        t = time.perf_counter()
        out = rep.render(held_out)
        render_seconds = time.perf_counter() - t
    depth_err = ((out.depth - truth.depth).abs() / truth.depth)[truth.hit].median()
    return {"views": 8, "size": size, "steps": state.step, "budget_seconds": seconds,
            "train_seconds": round(train_seconds, 1),
            "held_out_psnr_db": round(psnr(out.rgb, truth.rgb), 2),
            "held_out_median_rel_depth_error": round(float(depth_err), 4),
            "render_seconds_per_view": round(render_seconds / 2, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    parser.add_argument("--fit-seconds", type=float, default=120.0, help="wall-clock budget of the fit")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = TriplaneConfig()
    results: dict = {"machine": {"processor": platform.processor(), "machine": platform.machine(),
                                 "cores": os.cpu_count(), "torch": torch.__version__,
                                 "torch_threads": torch.get_num_threads(),
                                 "load_average_1min": os.getloadavg()[0]},
                     "config": {"resolution": config.resolution, "channels": config.channels,
                                "hidden_width": config.hidden_width, "feature_dim": config.feature_dim}}
    samples = 16384 if args.quick else 65536
    results["field_samples_per_s"] = round(bench_field(config, samples, 3 if args.quick else 7))
    print(f"field fwd+bwd+Adam ({samples} samples): {results['field_samples_per_s'] / 1e6:.2f} M samples/s")
    rays = 512 if args.quick else 2048
    rate, per_ray = bench_train_step(config, rays, 3 if args.quick else 5)
    results["train_samples_per_s"] = round(rate)
    results["train_samples_per_ray"] = per_ray
    print(f"full ray training step ({rays} rays x {per_ray} samples): {rate / 1e6:.2f} M samples/s")
    size = 32 if args.quick else 128
    seconds = min(args.fit_seconds, 20.0) if args.quick else args.fit_seconds
    fit_kwargs = dict(resolution=128, channels=16)
    results["fit"] = bench_fit(size, seconds, fit_kwargs, FitConfig(patch_size=32, patches_per_step=4))
    print("fit:", json.dumps(results["fit"]))
    out = ROOT / "benchmarks" / "results" / ("nerf_quick.json" if args.quick else "nerf.json")
    from scenedreamer.atomic import atomic_write_json
    atomic_write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
