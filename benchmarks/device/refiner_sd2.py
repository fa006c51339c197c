"""The diffusion refiner with real Stable Diffusion 2 weights: time, GPU memory, and behaviour checks.

Run on a GPU machine with the weights in a local folder or the local Hugging Face cache:

    python benchmarks/device/refiner_sd2.py                       # preset sd2, fp16, 512 px
    python benchmarks/device/refiner_sd2.py --model /models/sd2-1-base --size 512 --steps 30
    python benchmarks/device/refiner_sd2.py --tiny                # smoke test of this script (CPU ok)

What it measures (one synthetic view: a smooth colourful image whose right part is an empty
render, the local frame being the full image):
- refine: seconds per view (after one warm-up), with and without the adapter; peak GPU memory;
- adapter training: seconds per step and peak GPU memory (batch of 1, frozen fp16 UNet);
  the mean loss per chunk of steps on one fixed (render, target) pair (is the adapter learning?);
- adapter file: size and save/load seconds; the round trip reproduces the refine output;
- behaviour with real weights: well-observed pixels kept exactly; mean |output - local frame| on
  the warp-known pixels for consistency_weight 0 / 0.5 / 1 (should fall as the weight grows).
Results are printed and written to ``benchmarks/results/refiner_sd2.json`` (machine info included).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from scenedreamer.atomic import atomic_write_json  # noqa: E402
from scenedreamer.priors.adapter import AdapterConfig  # noqa: E402
from scenedreamer.priors.loading import ModelLoadConfig, load_sd_pipeline  # noqa: E402
from scenedreamer.priors.refiner import DiffusionRefiner, RefinerConfig, RefinerInput  # noqa: E402

PROMPT = "a cozy living room with a fireplace, photorealistic"


def synthetic_view(size: int, features: int, device: str) -> tuple[RefinerInput, torch.Tensor]:
    """A smooth image (the 'truth'), its render with the right 40% empty, and the local frame."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    phases = torch.rand(3, generator=g) * 6.28
    image = torch.stack([0.5 + 0.4 * torch.sin(6 * xs + 4 * ys + p) for p in phases], dim=-1)
    opacity = (xs < 0.6).float()
    opacity[(xs > 0.5) & (xs < 0.6)] = 0.7                       # a semi-transparent band
    depth = torch.where(opacity > 0, 2.0 + ys, torch.zeros(()))
    known = xs < 0.7
    view = RefinerInput(rendered_rgb=image * opacity[..., None], rendered_depth=depth, opacity=opacity,
                        features=torch.randn(size, size, features, generator=g), local_rgb=image,
                        local_known=known)
    view = RefinerInput(**{f.name: (None if getattr(view, f.name) is None else getattr(view, f.name).to(device))
                           for f in dataclasses.fields(view)})
    return view, image.to(device)


def reset(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.startswith("cuda") else None


def timed_refine(refiner: DiffusionRefiner, view: RefinerInput, device: str, seed: int = 0) -> tuple[torch.Tensor, float]:
    sync(device)
    t0 = time.perf_counter()
    out = refiner.refine(view, PROMPT, torch.Generator().manual_seed(seed))
    sync(device)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sd2", help="SD preset, hub id (cached) or folder")
    parser.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30, help="num_inference_steps")
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--features", type=int, default=8, help="rendered feature channels F")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=10, help="training steps per reported loss mean")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random SD (smoke test of this script)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "refiner_sd2.json"))
    args = parser.parse_args(argv)

    device = args.device
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            from tiny_models import tiny_sd_pipeline

            ref = str(Path(tmp) / "tiny-sd")
            tiny_sd_pipeline(ref)
            args.size, args.steps, args.train_steps, args.chunk, args.dtype = 64, 4, 4, 2, "fp32"
            adapter_cfg = AdapterConfig(base_channels=8)
        else:
            ref = args.model
            adapter_cfg = AdapterConfig()
        load_cfg = ModelLoadConfig(device=device, dtype=args.dtype, offline=True)
        t0 = time.perf_counter()
        pipe = load_sd_pipeline(ref, load_cfg)
        load_s = time.perf_counter() - t0
        base = RefinerConfig(strength=args.strength, num_inference_steps=args.steps,
                             feature_channels=args.features, adapter=adapter_cfg)
        view, truth = synthetic_view(args.size, args.features, device)
        results: dict = {
            "machine": dict(processor=platform.processor(), machine=platform.machine(), cores=os.cpu_count(),
                            torch=torch.__version__,
                            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
            "args": vars(args), "load_s": round(load_s, 3),
        }

        # refine with and without the adapter
        for name, cfg in {"adapter": base, "no_adapter": dataclasses.replace(base, use_adapter=False)}.items():
            refiner = DiffusionRefiner(pipe, cfg, device=device, dtype=load_cfg.torch_dtype)
            timed_refine(refiner, view, device)                       # warm-up
            reset(device)
            out, seconds = timed_refine(refiner, view, device)
            keep = view.opacity >= cfg.keep_threshold
            results[f"refine_{name}"] = dict(seconds=round(seconds, 3), peak_gpu_gib=peak_gib(device),
                                             kept_exactly=bool(torch.equal(out[keep], view.rendered_rgb[keep])))
            print(f"refine {name:12s} {results[f'refine_{name}']}")

        # adapter training: speed, memory, loss per chunk
        refiner = DiffusionRefiner(pipe, base, device=device, dtype=load_cfg.torch_dtype)
        pairs = [(view, truth)]
        refiner.train_adapter(pairs, 1, torch.Generator().manual_seed(1))      # warm-up + optimiser
        reset(device)
        chunks = []
        g = torch.Generator().manual_seed(2)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(max(1, args.train_steps // args.chunk)):
            chunks.append(round(refiner.train_adapter(pairs, args.chunk, g, prompt=PROMPT)["loss_mean"], 5))
        sync(device)
        n_steps = len(chunks) * args.chunk
        results["adapter_train"] = dict(seconds_per_step=round((time.perf_counter() - t0) / n_steps, 4),
                                        peak_gpu_gib=peak_gib(device), loss_mean_per_chunk=chunks,
                                        adapter_parameters=sum(p.numel() for p in refiner.adapter.parameters()))
        print(f"adapter train {results['adapter_train']}")

        # save / load round trip
        path = Path(tmp) / "adapter.safetensors"
        t0 = time.perf_counter()
        refiner.save_adapter(path)
        save_s = time.perf_counter() - t0
        other = DiffusionRefiner(pipe, base, device=device, dtype=load_cfg.torch_dtype)
        t0 = time.perf_counter()
        other.load_adapter(path)
        load_adapter_s = time.perf_counter() - t0
        same = torch.equal(timed_refine(refiner, view, device, 5)[0], timed_refine(other, view, device, 5)[0])
        results["adapter_file"] = dict(bytes=path.stat().st_size, save_s=round(save_s, 3),
                                       load_s=round(load_adapter_s, 3), round_trip_identical=same)
        print(f"adapter file {results['adapter_file']}")

        # local consistency: distance to the local frame on warp-known pixels, per weight
        known = view.local_known
        distance = {}
        for weight in (0.0, 0.5, 1.0):
            cfg = dataclasses.replace(base, consistency_weight=weight, keep_threshold=2.0)
            out = DiffusionRefiner(pipe, cfg, device=device, dtype=load_cfg.torch_dtype).refine(
                view, PROMPT, torch.Generator().manual_seed(3))
            distance[str(weight)] = round(float((out[known] - view.local_rgb[known]).abs().mean()), 4)
        results["consistency_mean_abs_to_local"] = distance
        print(f"consistency {distance}")

    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
