"""Benchmark of the offline priors: procedural world render (image + depth) and classical
inpainting / depth completion at 512x512.

Run: .venv/bin/python -m benchmarks.bench_priors   (writes benchmarks/results/priors.json)
Targets (2 CPU cores): world image + depth <= 1 s; classical inpainting of 25 % holes <= 1 s.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import cv2
import numpy as np
import torch

from scenedreamer.atomic import atomic_write_json
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.priors.classical import ClassicalInpainter, complete_depth
from scenedreamer.priors.procedural import ProceduralWorld

SIZE = 512
REPEATS = 3
PROMPTS = ["a forest lake at sunset", "snowy mountains", "a city street at night", "a cozy living room"]


def timed(fn, repeats: int = REPEATS) -> tuple[float, float]:
    """(median wall seconds, median process CPU seconds) over repeats after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def blob_holes(size: int, fraction: float, seed: int) -> torch.Tensor:
    """Disocclusion-like holes: random blobs and thin cracks until ``fraction`` of the image."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    while mask.mean() < fraction:
        if rng.random() < 0.3:
            x0, y0 = rng.integers(0, size, 2)
            x1, y1 = rng.integers(0, size, 2)
            cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 1, int(rng.integers(1, 3)))
        else:
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(4, size // 10, 2))
            cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return torch.from_numpy(mask.astype(bool))


def main() -> None:
    results: dict = {
        "machine": {"processor": platform.processor(), "machine": platform.machine(),
                    "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "opencv": cv2.__version__,
                    "load_average_1min": os.getloadavg()[0]},
        "size": SIZE,
    }
    cam = Cameras(intrinsics_from_fov(70.0, SIZE, SIZE), torch.eye(4), SIZE, SIZE)
    world_rows = {}
    for prompt in PROMPTS:
        t0 = time.perf_counter()
        world = ProceduralWorld.from_prompt(prompt, seed=0)
        build = time.perf_counter() - t0
        wall, cpu = timed(lambda: world.render(cam))
        world_rows[prompt] = {"build_s": round(build, 4), "render_s": round(wall, 4), "render_cpu_s": round(cpu, 4),
                              "primitives": len(world.scene.primitives)}
        print(f"world {prompt!r:32s} build {build:6.3f} s  render image+depth {wall:6.3f} s "
              f"(cpu {cpu:6.3f} s)  target <= 1 s")
    results["procedural_world_render_512"] = world_rows

    image = ProceduralWorld.from_prompt("a forest lake at sunset", seed=0).render(cam).rgb[0]
    inpainter = ClassicalInpainter()
    inpaint_rows = {}
    square = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    square[SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4] = True
    for name, hole in (("one square hole (25 %)", square), ("blobs and cracks (25 %)", blob_holes(SIZE, 0.25, 0))):
        wall, cpu = timed(lambda: inpainter.inpaint(image, hole, "", torch.Generator().manual_seed(0)))
        inpaint_rows[name] = {"seconds": round(wall, 4), "cpu_s": round(cpu, 4),
                              "hole_fraction": round(float(hole.float().mean()), 4)}
        print(f"classical inpainting, {name:26s} {wall:6.3f} s (cpu {cpu:6.3f} s)  target <= 1 s")
    results["classical_inpaint_512"] = inpaint_rows

    depth = ProceduralWorld.from_prompt("a forest lake at sunset", seed=0).render(cam).depth[0]
    known = ~blob_holes(SIZE, 0.25, 1)
    wall, cpu = timed(lambda: complete_depth(depth, known))
    results["complete_depth_512_s"] = round(wall, 4)
    print(f"depth completion, 25 % holes          {wall:6.3f} s (cpu {cpu:6.3f} s)")

    atomic_write_json("benchmarks/results/priors.json", results)
    print("wrote benchmarks/results/priors.json")


if __name__ == "__main__":
    main()
