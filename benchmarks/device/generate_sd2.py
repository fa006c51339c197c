"""Device benchmark: the full method with the sd2 preset at 512x512 on a GPU (real weights).

Needs the weights in the Hugging Face cache (``scenedreamer models download sd2 sd2-inpaint
zoedepth``) or folders given with --sd2 / --sd2-inpaint / --zoedepth. Measures wall time per stage
(from events.jsonl) and peak GPU memory, and writes benchmarks/results/device_generate_sd2.json.

    python -m benchmarks.device.generate_sd2 [--frames 12] [--cpu-offload] [--out runs/sd2_bench]
    python -m benchmarks.device.generate_sd2 --tiny     # CPU smoke run with tiny random models

Expected (not yet measured; docs/design/priors.md): fp16 SD 2.1-base + SD 2 inpainting + ZoeDepth
resident at ~6-7 GB, the tri-plane NeRF and its fitting < 2 GB; 12 views at 512x512 in roughly
15-25 minutes on one A100/H100-class GPU (diffusion ~2 s per call, adapter training and NeRF fits
dominate).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from scenedreamer.atomic import atomic_write_json
from scenedreamer.cli import main as cli_main

RESULTS = Path(__file__).resolve().parents[1] / "results" / "device_generate_sd2.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--resolution", default="512x512")
    p.add_argument("--sd2", default="sd2")
    p.add_argument("--sd2-inpaint", default="sd2-inpaint")
    p.add_argument("--zoedepth", default="zoedepth")
    p.add_argument("--cpu-offload", action="store_true")
    p.add_argument("--out", default="runs/sd2_bench")
    p.add_argument("--tiny", action="store_true", help="CPU smoke run with tiny random models (tests/tiny_models.py)")
    args = p.parse_args()

    extra = []
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
        from tiny_models import tiny_depth_model, tiny_sd_pipeline

        root = Path(args.out + "_models")
        tiny_sd_pipeline(root / "sd"); tiny_sd_pipeline(root / "sd-inpaint", inpainting=True)
        tiny_depth_model("zoedepth", root / "zoe")
        args.sd2, args.sd2_inpaint, args.zoedepth = str(root / "sd"), str(root / "sd-inpaint"), str(root / "zoe")
        args.resolution, args.frames = "64x64", 3
        extra = ["--set", "priors.diffusion.num_inference_steps=2", "--set", "refiner.num_inference_steps=2",
                 "--set", "refiner.adapter_train_steps_per_view=1", "--set", "init.fit_steps=5",
                 "--set", "progressive.fit_steps_per_view=3"]
    argv = ["generate", "a cozy living room with a fireplace", "--preset", "sd2", "--resolution", args.resolution,
            "--frames", str(args.frames), "--out", args.out, "--overwrite", "--quiet",
            "--set", f"priors.text_to_image=\"{args.sd2}\"", "--set", f"priors.refiner=\"{args.sd2}\"",
            "--set", f"priors.inpainter=\"{args.sd2_inpaint}\"", "--set", f"priors.depth=\"{args.zoedepth}\"",
            *(["--set", "priors.cpu_offload=true"] if args.cpu_offload else []), *extra]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    code = cli_main(argv)
    seconds = time.perf_counter() - t0
    events = [json.loads(line) for line in (Path(args.out) / "events.jsonl").read_text().splitlines()]
    stage_seconds: dict[str, float] = {}
    for a, b in zip(events, events[1:]):
        stage_seconds[a["stage"]] = stage_seconds.get(a["stage"], 0.0) + (b["time"] - a["time"])
    result = {"exit_code": code, "seconds": round(seconds, 1), "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()},
              "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
              "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor(),
              "argv": argv}
    print(json.dumps(result, indent=2))
    if not args.tiny:
        atomic_write_json(RESULTS, result)
    return code


if __name__ == "__main__":
    sys.exit(main())
