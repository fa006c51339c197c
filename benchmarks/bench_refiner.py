"""Refiner speed on CPU: the offline stand-in at 256/512 px, the seam helpers against their slow
twins, and the diffusion refiner's own overhead on a tiny random SD (64 px).

Run: ``.venv/bin/python -m benchmarks.bench_refiner [--repeats 3]``. Prints each figure and writes
them to benchmarks/results/refiner.json. Each figure is the best of ``--repeats`` runs (the least
disturbed by other processes); the load average at start is recorded, since a busy 2-core
machine inflates every figure. Real-weight GPU figures: benchmarks/device/refiner_sd2.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from scenedreamer.atomic import atomic_write_json
from scenedreamer.priors.adapter import AdapterConfig
from scenedreamer.priors.filters import box_mean_clipped as box_mean, box_mean_clipped_reference as box_mean_reference
from scenedreamer.priors.offline_refiner import OfflineRefiner
from scenedreamer.priors.refiner import (DiffusionRefiner, RefinerConfig, RefinerInput, feather_alpha,
                                         feather_alpha_reference)

RESULTS = Path(__file__).parent / "results" / "refiner.json"


def make_view(size: int, features: int = 0, seed: int = 0) -> RefinerInput:
    """A render opaque on its left 60%, half-transparent band, empty right; a random local frame."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(0, 1, size)[None, :].expand(size, size)
    opacity = torch.where(xs < 0.5, torch.ones(()), torch.where(xs < 0.6, torch.full((), 0.5), torch.zeros(())))
    depth = torch.where(opacity > 0, 2.0 + torch.rand(size, size, generator=g), torch.zeros(()))
    return RefinerInput(rendered_rgb=torch.rand(size, size, 3, generator=g) * opacity[..., None],
                        rendered_depth=depth, opacity=opacity,
                        features=torch.randn(size, size, features, generator=g),
                        local_rgb=torch.rand(size, size, 3, generator=g), local_known=xs < 0.7,
                        local_depth=torch.where(xs < 0.7, depth * 1.05, torch.zeros(())))


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict = {"machine": dict(processor=platform.processor(), machine=platform.machine(),
                                     cores=os.cpu_count(), torch=torch.__version__,
                                     torch_threads=torch.get_num_threads(),
                                     load_average_at_start=os.getloadavg()[0]),
                     "figures": {}, "all_runs": {}}

    def record(name: str, fn: Callable[[], object]) -> None:
        fn()                                                   # warm-up
        best, runs = best_of(args.repeats, fn)
        results["figures"][name] = round(best * 1000, 2)
        results["all_runs"][name] = [round(t * 1000, 2) for t in runs]
        print(f"{name:45s} {best * 1000:9.2f} ms")

    offline = OfflineRefiner()
    for size in (256, 512):
        view = make_view(size)
        record(f"offline_refine_{size}px_ms", lambda v=view: offline.refine(v, "", torch.Generator()))

    keep = make_view(256).opacity >= 0.995
    record("feather_alpha_256px_8px_ms (torch, any device)", lambda: feather_alpha(keep, 8))
    record("feather_alpha_256px_8px_ms (scipy twin, CPU)", lambda: feather_alpha_reference(keep, 8))
    x = torch.rand(64, 64)
    record("box_mean_64px_r4_ms (fast)", lambda: box_mean(x, 4))
    record("box_mean_64px_r4_ms (loop twin)", lambda: box_mean_reference(x, 4))

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import tiny_sd_pipeline

    pipe = tiny_sd_pipeline()
    config = RefinerConfig(num_inference_steps=4, strength=0.5, feature_channels=4,
                           adapter=AdapterConfig(base_channels=8))
    refiner = DiffusionRefiner(pipe, config, device="cpu", dtype=torch.float32)
    view = make_view(64, features=4)
    record("tiny_sd_refine_64px_2steps_ms", lambda: refiner.refine(view, "a room", torch.Generator().manual_seed(0)))
    target = torch.rand(64, 64, 3)
    record("tiny_sd_adapter_train_step_64px_ms",
           lambda: refiner.train_adapter([(view, target)], 1, torch.Generator().manual_seed(0)))

    atomic_write_json(RESULTS, results)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
