"""How fast this machine's cores compute, against the box the work-unit rate was measured on.

`generate --dry-run` states the time a run should take "on this machine" (issue 21). The rate
of one work unit (pipeline/plan.py ``SECONDS_PER_UNIT``) was measured on one reference box;
this module measures the machine in hand with a short calibration and gives the factor that
turns the reference rate into this machine's.

The calibration (~0.2 s, numpy only: ``--dry-run`` must not import torch) is a fixed float32
workload shaped like the inner loop of a fitting step, the tile compositor of
representation/rasterize/tiles.py: exponentials of a few hundred thousand Gaussian exponents,
clamped alphas, running products along the depth order and a weighted sum. It is timed in this
process's CPU seconds (``time.process_time``), not wall seconds: other programs on the cores
slow a run through the thread count the run chooses (threads.py picks fewer threads when cores
are busy, and plan.py scales by the threads), so a wall-clock calibration would count a busy
machine twice. The fastest of a few repeats counts (cache warm-up and interruptions only ever
add time).

What it cannot see: the speed-up a run gets from more than one thread, a GPU, or a CPU whose
torch kernels use instructions numpy's do not (native bf16 matmuls on the real-network path);
the figure stays "rough" and the dry run says so.
"""

from __future__ import annotations

import functools
import time

REFERENCE_CPU_SECONDS = 0.0195
"""CPU seconds of one ``calibration_workload`` on the reference box (the quiet 2-core AMD EPYC
of BENCHMARKS.md "Issues 20-25", where pipeline/plan.py SECONDS_PER_UNIT was measured):
the fastest of CALIBRATION_REPEATS, its median over fresh processes printed by ``python -m benchmarks.bench_dry_run_time``."""
CALIBRATION_REPEATS = 5
"""timed repeats of the workload; the fastest counts"""
WORKLOAD_SHAPE = (64, 4096)
"""(depth-ordered Gaussians per pixel, pixels): 262,144 values, the size of a 64x64 tile batch
of a fitting step; ~20 ms of CPU per workload on the reference box"""
WORKLOAD_ROUNDS = 2
"""passes over the values per workload (so one repeat is long against the timer's tick)"""


def calibration_workload() -> float:
    """One fixed compositing-shaped workload (see the module docstring); returns its result
    (so no step can be skipped). Deterministic: the same inputs on every machine."""
    import numpy as np

    depth, pixels = WORKLOAD_SHAPE
    rng = np.random.default_rng(0)
    exponent = rng.random((depth, pixels), dtype=np.float32) * np.float32(-4.0)
    colour = rng.random((depth, pixels), dtype=np.float32)
    total = 0.0
    for _ in range(WORKLOAD_ROUNDS):
        alpha = np.minimum(np.float32(0.99), np.exp(exponent) * np.float32(0.8))
        transmittance = np.cumprod(np.float32(1.0) - alpha, axis=0)
        total += float((alpha * transmittance * colour).sum())
        exponent *= np.float32(0.999)          # a new input each round, as a fitting step's would be
    return total


def calibration_cpu_seconds(repeats: int = CALIBRATION_REPEATS) -> float:
    """The fastest CPU time (seconds, this process) of ``repeats`` runs of the workload."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        calibration_workload()
        best = min(best, time.process_time() - start)
    return max(best, 1e-9)


@functools.lru_cache(maxsize=1)
def slowdown_against_reference() -> float:
    """How many times longer this machine's cores take than the reference box's (1.0 = the same
    speed, 2.0 = half as fast), from one calibration per process (cached)."""
    return calibration_cpu_seconds() / REFERENCE_CPU_SECONDS
