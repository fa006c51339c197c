"""The published architectures on a GPU: time and peak GPU memory per stage (device script).

Random-weight copies of a preset's real networks (``scenedreamer.priors.architectures``; no
download, nothing but this repository needed), loaded through ``scenedreamer.priors.loading`` by
local path, then each stage of the method's network work at 512x512:

    python benchmarks/device/real_architectures_gpu.py                     # sd15, fp16, 20 steps
    python benchmarks/device/real_architectures_gpu.py --preset sd2 --steps 20
    python benchmarks/device/real_architectures_gpu.py --tiny              # CPU smoke test of this script

For each memory setting ("plain": everything resident on the GPU; "cpu_offload": diffusers'
model CPU offload, each sub-model on the GPU only while it runs), stage by stage: load the
text-to-image pipeline, generate the first view, load the inpainting pipeline, inpaint the right
third, load the depth network, estimate depth, build the refiner (adapter over the text-to-image
UNet, 16 feature channels as the tri-plane NeRF renders), refine one view, one adapter training
step. Per stage: wall seconds (CUDA synchronised), ``torch.cuda.max_memory_allocated`` since the
stage began, memory still allocated after it; per denoising step: the median UNet call.
``--tiny`` builds tiny models on the CPU (fp32, plain only; GPU figures are null).
Results: printed, and written to benchmarks/results/real_architectures_gpu.json (not with --tiny
unless --out is given). Expected (docs/design/priors.md): fp16 SD inpainting within 6 GB with offload.
"""

from __future__ import annotations

import argparse
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
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov  # noqa: E402
from scenedreamer.priors.depth_networks import TransformersDepthEstimator  # noqa: E402
from scenedreamer.priors.diffusion import (DiffusionConfig, StableDiffusionInpainter,  # noqa: E402
                                           StableDiffusionTextToImage)
from scenedreamer.priors.loading import ModelLoadConfig  # noqa: E402
from scenedreamer.priors.refiner import DiffusionRefiner, RefinerConfig, RefinerInput  # noqa: E402

PROMPT = "a cozy living room with a fireplace, photorealistic"
FEATURES = 16
"""Rendered feature channels the adapter reads (the tri-plane NeRF's feature_dim)."""
SETTINGS = {"plain": dict(cpu_offload=False), "cpu_offload": dict(cpu_offload=True)}
NETWORKS = {"sd15": ("sd15", "sd15-inpaint", "zoedepth"), "sd2": ("sd2", "sd2-inpaint", "zoedepth")}
"""Registry names of (text-to-image = refiner, inpainting, depth) per generate preset."""


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _sync(device: str) -> None:
    if _cuda(device):
        torch.cuda.synchronize()


class Stages:
    """Times and peak GPU memory of consecutive stages on one device."""

    def __init__(self, device: str, collect: bool = True):
        self.device, self.rows, self.collect = device, {}, collect

    def run(self, name: str, fn):
        """Run ``fn()`` as stage ``name``; returns its result and records seconds and memory."""
        if self.collect:                # tiny: skipped (~0.4 s a call once diffusers is imported)
            gc.collect()
        if _cuda(self.device):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = fn()
        _sync(self.device)
        seconds = time.perf_counter() - t0
        row = {"s": round(seconds, 3)}
        if _cuda(self.device):
            row["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            row["allocated_after_gib"] = round(torch.cuda.memory_allocated() / 2**30, 3)
        else:
            row["peak_gib"] = row["allocated_after_gib"] = None
        self.rows[name] = row
        print(f"  {name:22s} {row}", flush=True)
        return out


class UNetTimer:
    """Wall time of every forward call of one UNet (CUDA synchronised): one call = one denoising
    step (classifier-free guidance batches the two predictions)."""

    def __init__(self, unet, device: str):
        self.device, self.calls, self._t0 = device, [], 0.0
        self.handles = [unet.register_forward_pre_hook(self._pre), unet.register_forward_hook(self._post)]

    def _pre(self, _module, _inputs):
        _sync(self.device)
        self._t0 = time.perf_counter()

    def _post(self, _module, _inputs, _output):
        _sync(self.device)
        self.calls.append(time.perf_counter() - self._t0)

    def median(self) -> float | None:
        return round(sorted(self.calls)[len(self.calls) // 2], 4) if self.calls else None

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def test_view(size: int, device: str) -> tuple[RefinerInput, torch.Tensor]:
    """A smooth image, its render with the right 40 % empty, and the image as the local frame."""
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([0.5 + 0.4 * torch.sin(6 * xs + 4 * ys + p) for p in (0.0, 2.0, 4.0)], dim=-1)
    opacity = (xs < 0.6).float()
    view = RefinerInput(rendered_rgb=(image * opacity[..., None]).to(device),
                        rendered_depth=torch.where(opacity > 0, 2.0 + ys, torch.zeros(())).to(device),
                        opacity=opacity.to(device), features=torch.randn(size, size, FEATURES, generator=g).to(device),
                        local_rgb=image.to(device), local_known=(xs < 0.7).to(device))
    return view, image.to(device)


def measure_setting(folders: dict[str, str], device: str, dtype: str, size: int, steps: int, setting: dict,
                    collect: bool = True) -> dict:
    """Every stage once with one memory setting; networks freed at the end.
    collect: a garbage collection before each stage (off in the --tiny smoke test)."""
    stages = Stages(device, collect)
    load = ModelLoadConfig(device=device, dtype=dtype, offline=True, **setting)
    diffusion = DiffusionConfig(num_inference_steps=steps)
    camera = Cameras(intrinsics_from_fov(60.0, size, size), torch.eye(4), size, size)
    gen = torch.Generator().manual_seed(0)
    per_step = {}

    t2i = stages.run("load_text_to_image", lambda: StableDiffusionTextToImage.load(folders["text_to_image"], load, diffusion))
    timer = UNetTimer(t2i.pipeline.unet, device)
    image = stages.run("text_to_image", lambda: t2i.generate(PROMPT, camera, gen))
    per_step["text_to_image"] = timer.median()
    timer.close()

    inpainter = stages.run("load_inpainter", lambda: StableDiffusionInpainter.load(folders["inpainter"], load, diffusion))
    hole = torch.zeros(size, size, dtype=torch.bool, device=image.device)
    hole[:, 2 * size // 3:] = True
    timer = UNetTimer(inpainter.pipeline.unet, device)
    stages.run("inpaint", lambda: inpainter.inpaint(image, hole, PROMPT, gen))
    per_step["inpaint"] = timer.median()
    timer.close()
    inpainter = None                    # free it before the next network loads

    # the depth network has no offload: it is resident on the device in every setting
    depth = stages.run("load_depth", lambda: TransformersDepthEstimator.load(
        folders["depth"], ModelLoadConfig(device=device, dtype=dtype, offline=True)))
    stages.run("depth", lambda: depth.estimate(image.to(device)))
    depth = None

    refiner_config = RefinerConfig(num_inference_steps=2 * steps, strength=0.5, feature_channels=FEATURES)
    # as pipeline/priors_factory builds it: under offload the refiner follows the pipeline's device
    refiner = stages.run("refiner_init", lambda: DiffusionRefiner(
        t2i.pipeline, refiner_config, device=None if setting["cpu_offload"] else device, dtype=load.torch_dtype))
    adapter_params = sum(p.numel() for p in refiner.adapter.parameters())
    view, target = test_view(size, device)
    timer = UNetTimer(t2i.pipeline.unet, device)
    stages.run("refine", lambda: refiner.refine(view, PROMPT, torch.Generator().manual_seed(0)))
    per_step["refine"] = timer.median()
    timer.close()
    metrics = stages.run("adapter_step", lambda: refiner.train_adapter([(view, target)], 1,
                                                                     torch.Generator().manual_seed(0), prompt=PROMPT))
    refiner = t2i = None
    gc.collect()
    if _cuda(device):
        torch.cuda.empty_cache()
    return {"stages": stages.rows, "seconds_per_denoising_step": per_step, "adapter_parameters": adapter_params,
            "adapter_loss": metrics.get("loss")}


def build(preset: str, root: Path, tiny: bool) -> dict[str, str]:
    """Role -> folder of the random-weight networks (reused when a folder is complete)."""
    from scenedreamer.priors import architectures
    from scenedreamer.priors.loading import missing_weight_components

    roles = dict(zip(("text_to_image", "inpainter", "depth"), NETWORKS[preset]))
    folders = {}
    for role, name in roles.items():
        folder = root / (f"tiny-{name}" if tiny else name)
        if not (folder.is_dir() and not missing_weight_components(folder)):
            t0 = time.perf_counter()
            if tiny:
                from tiny_models import tiny_depth_model, tiny_sd_pipeline

                tiny_depth_model("zoedepth", folder) if role == "depth" else \
                    tiny_sd_pipeline(folder, inpainting=role == "inpainter")
            else:
                architectures.write_random_model(name, folder)
            print(f"built {name} in {time.perf_counter() - t0:.1f} s -> {folder}", flush=True)
        folders[role] = str(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sd15", choices=sorted(NETWORKS))
    parser.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps (the refiner runs half of 2x this)")
    parser.add_argument("--settings", default="plain,cpu_offload", help=f"comma-separated: {', '.join(SETTINGS)}")
    parser.add_argument("--models", default=None, help="folder for the random-weight models (kept; reused)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random models on the CPU (smoke test of this script)")
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/real_architectures_gpu.json)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.device, args.dtype, args.size, args.steps = "cpu", "fp32", 64, 2
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not _cuda(args.device):
        settings = [s for s in settings if not SETTINGS[s]["cpu_offload"]]      # offload needs a GPU

    with tempfile.TemporaryDirectory() as tmp:
        folders = build(args.preset, Path(args.models) if args.models else Path(tmp), args.tiny)
        results = {
            "machine": dict(processor=platform.processor(), machine=platform.machine(), cores=os.cpu_count(),
                            torch=torch.__version__,
                            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
            "args": dict(preset=args.preset, dtype=args.dtype, size=args.size, steps=args.steps,
                         device=args.device, tiny=args.tiny),
            "weights": "random, built from the published configs (scenedreamer.priors.architectures)",
            "settings": {},
        }
        for name in settings:
            print(f"{name}:", flush=True)
            results["settings"][name] = measure_setting(folders, args.device, args.dtype, args.size, args.steps,
                                                        SETTINGS[name], collect=not args.tiny)
    out = args.out or (None if args.tiny else str(ROOT / "benchmarks" / "results" / "real_architectures_gpu.json"))
    if out:
        atomic_write_json(out, results)
        print(f"wrote {out}")
    else:
        import json

        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
