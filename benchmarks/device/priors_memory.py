"""Peak GPU memory and time of the real priors under each memory option (device script).

Run on a GPU machine with real weights in a local folder or the local Hugging Face cache:

    python benchmarks/device/priors_memory.py --inpaint /models/sd2-inpaint --depth /models/zoedepth
    python benchmarks/device/priors_memory.py --inpaint sd15-inpaint --dtype fp16 --size 512 --steps 20

For each memory setting (plain, attention slicing, model CPU offload, both) it loads the
inpainting pipeline afresh through ``scenedreamer.priors.loading`` (offline), inpaints one
image and records ``torch.cuda.max_memory_allocated`` and wall time; then the same for the depth
network. ``--tiny`` uses tiny random models built in-process instead (a smoke test of this
script; works on CPU, where GPU memory is reported as null). Results go to
``benchmarks/results/priors_memory.json`` (machine info included) and are printed.
The plan being checked (docs/design/priors.md): fp16 SD inpainting within 6 GB with offload.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from scenedreamer.atomic import atomic_write_json  # noqa: E402
from scenedreamer.priors.depth_networks import TransformersDepthEstimator  # noqa: E402
from scenedreamer.priors.diffusion import DiffusionConfig, StableDiffusionInpainter  # noqa: E402
from scenedreamer.priors.loading import ModelLoadConfig  # noqa: E402

MEMORY_SETTINGS = {
    "plain": dict(cpu_offload=False, attention_slicing=False),
    "attention_slicing": dict(cpu_offload=False, attention_slicing=True),
    "cpu_offload": dict(cpu_offload=True, attention_slicing=False),
    "cpu_offload+slicing": dict(cpu_offload=True, attention_slicing=True),
}


def _reset(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def measure_inpaint(ref: str, device: str, dtype: str, size: int, steps: int, setting: dict) -> dict:
    """Load the inpainter with one memory setting, inpaint one image; peak memory and times."""
    _reset(device)
    t0 = time.perf_counter()
    cfg = ModelLoadConfig(device=device, dtype=dtype, offline=True, **setting)
    inpainter = StableDiffusionInpainter.load(ref, cfg, DiffusionConfig(num_inference_steps=steps))
    load_s = time.perf_counter() - t0
    image = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(0)).to(device)
    hole = torch.zeros(size, size, dtype=torch.bool, device=device)
    hole[:, size * 3 // 4:] = True
    t0 = time.perf_counter()
    inpainter.inpaint(image, hole, "a living room", torch.Generator().manual_seed(0))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    run_s = time.perf_counter() - t0
    peak = _peak(device)
    del inpainter
    return dict(load_s=round(load_s, 3), inpaint_s=round(run_s, 3), peak_gpu_bytes=peak,
                peak_gpu_gib=None if peak is None else round(peak / 2**30, 3))


def measure_depth(ref: str, device: str, dtype: str, size: int) -> dict:
    """Load the depth network and estimate one image; peak memory and times."""
    _reset(device)
    t0 = time.perf_counter()
    est = TransformersDepthEstimator.load(ref, ModelLoadConfig(device=device, dtype=dtype, offline=True))
    load_s = time.perf_counter() - t0
    image = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(0)).to(device)
    est.estimate(image)  # warm-up (cuDNN autotuning)
    t0 = time.perf_counter()
    est.estimate(image)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    run_s = time.perf_counter() - t0
    peak = _peak(device)
    del est
    return dict(load_s=round(load_s, 3), estimate_s=round(run_s, 3), peak_gpu_bytes=peak,
                peak_gpu_gib=None if peak is None else round(peak / 2**30, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inpaint", default="sd2-inpaint", help="inpainting preset, hub id (cached) or folder")
    parser.add_argument("--depth", default="zoedepth", help="depth preset, hub id (cached) or folder")
    parser.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random models (smoke test of this script)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "priors_memory.json"))
    args = parser.parse_args(argv)

    settings = dict(MEMORY_SETTINGS)
    if not args.device.startswith("cuda"):
        settings = {k: v for k, v in settings.items() if not v["cpu_offload"]}  # offload needs a GPU
    with tempfile.TemporaryDirectory() as tmp:
        inpaint_ref, depth_ref = args.inpaint, args.depth
        if args.tiny:
            from tiny_models import tiny_depth_model, tiny_sd_pipeline

            inpaint_ref, depth_ref = str(Path(tmp) / "sd-inpaint"), str(Path(tmp) / "zoe")
            tiny_sd_pipeline(inpaint_ref, inpainting=True)
            tiny_depth_model("zoedepth", depth_ref)
            args.size, args.steps = 64, 2
        results = {
            "machine": dict(processor=platform.processor(), machine=platform.machine(),
                            cores=__import__("os").cpu_count(), torch=torch.__version__,
                            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
            "args": dict(inpaint=args.inpaint, depth=args.depth, dtype=args.dtype, size=args.size,
                         steps=args.steps, device=args.device, tiny=args.tiny),
            "inpaint": {},
        }
        for name, setting in settings.items():
            results["inpaint"][name] = measure_inpaint(inpaint_ref, args.device, args.dtype, args.size,
                                                       args.steps, setting)
            print(f"inpaint {name:22s} {results['inpaint'][name]}")
        results["depth"] = measure_depth(depth_ref, args.device, args.dtype, args.size)
        print(f"depth {results['depth']}")
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
