"""Run every CPU benchmark in turn (each writes benchmarks/results/<area>.json).

Run on a quiet machine: ``make bench`` or ``.venv/bin/python -m benchmarks.run_all``; then copy
the figures into BENCHMARKS.md. Device scripts (benchmarks/device/) need a GPU and real weights
and are run by hand there.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    ["benchmarks.bench_geometry"],
    ["benchmarks.bench_support"],
    ["benchmarks.bench_priors"],
    ["benchmarks.bench_nerf"],
    ["benchmarks.bench_rasterizer"],
    ["benchmarks.bench_refiner"],
    ["benchmarks.bench_real_priors"],
    ["benchmarks.bench_pipeline"],
    ["benchmarks.bench_outputs"],
    ["benchmarks.bench_eval"],
    # the published SD 1.5 / SD 2 architectures with random weights, generate at 512x512 per
    # dtype: ~14 GB of RAM and ~5 minutes a preset
    ["benchmarks.bench_real_architectures", "--preset", "sd15"],
    ["benchmarks.bench_real_architectures", "--preset", "sd2"],
]


def main() -> int:
    failed = []
    for args in BENCHMARKS:
        print(f"== {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, "-m", *args]).returncode != 0:
            failed.append(args[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
