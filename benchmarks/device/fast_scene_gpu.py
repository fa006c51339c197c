"""The fast preset's whole scene on a GPU (issue 24 item 4): time and ``max_memory_allocated``.

The same scene as ``benchmarks/bench_real_architectures.py --full`` (the preset's own settings,
12 trajectory cameras at 512x512, every export; random-weight copies of the published
architectures, built here: nothing but this repository is needed), with the networks on CUDA:

    python benchmarks/device/fast_scene_gpu.py                         # sd15-fast, fp16, then sd15 (the before)
    python benchmarks/device/fast_scene_gpu.py --presets sd15-fast --dtype bf16
    python benchmarks/device/fast_scene_gpu.py --tiny --device cpu     # smoke test of this script

Expectation written down (issue 24): sd15-fast <= 60 s end to end and <= 8 GB
``max_memory_allocated`` on one H100-class GPU. Prints one line per preset and writes
benchmarks/results/fast_scene_gpu.json (not with --tiny unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])

EXPECTED = {"seconds_total": 60.0, "max_memory_allocated_gib": 8e9 / 2**30}
"""Issue 24's expectation for sd15-fast on one H100-class GPU."""


def main(argv: list[str] | None = None) -> int:
    from benchmarks import bench_real_architectures as bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="sd15-fast,sd15", help="comma-separated generate presets")
    parser.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=None, help="folder for the random-weight models (kept; reused)")
    parser.add_argument("--tiny", action="store_true", help="tiny models at 64x64 (smoke test)")
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/fast_scene_gpu.json)")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory(prefix="fast_scene_gpu_") as tmp:
        models = Path(args.models) if args.models else Path(tmp) / "models"
        for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
            run_args = argparse.Namespace(preset=preset, tiny=args.tiny, full=True, device=args.device, steps=1,
                                          channels_last=False)
            folders = bench.model_folders(preset, models, args.tiny)
            bench.build_in_child(run_args, folders)
            result = bench.run_dtype(run_args, folders, args.dtype, Path(tmp) / f"run_{preset}")
            results[preset] = result
            if result.get("failed"):
                print(f"{preset}: FAILED {result.get('error_tail')}", flush=True)
                continue
            print(f"{preset} {args.dtype} on {args.device}: {result['seconds_total']} s, "
                  f"max_memory_allocated {result['max_memory_allocated_gib']} GiB, "
                  f"peak RSS {result['peak_rss_gib']} GiB, stages {json.dumps(result['stage_seconds'])}", flush=True)
    out = Path(args.out) if args.out else (None if args.tiny else ROOT / "benchmarks" / "results" / "fast_scene_gpu.json")
    if out is not None:
        from scenedreamer.atomic import atomic_write_json

        atomic_write_json(out, {"dtype": args.dtype, "device": args.device, "expected_sd15_fast": EXPECTED,
                                "runs": results})
        print(f"wrote {out}")
    return 1 if any(r.get("failed") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
