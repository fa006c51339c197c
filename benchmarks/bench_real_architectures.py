"""The published architectures end to end on the CPU: `generate` at 512x512 on random-weight copies
of a preset's real networks, per dtype, against the `--dry-run` memory estimate.

    .venv/bin/python -m benchmarks.bench_real_architectures [--preset sd15|sd2|sd15-fast|sd2-fast] [--dtypes fp32,bf16]
    .venv/bin/python -m benchmarks.bench_real_architectures --tiny        # tiny models, seconds
    .venv/bin/python -m benchmarks.bench_real_architectures --preset sd15-fast --full --dtypes bf16
        # issue 24's target: the preset's own settings, 12 cameras, 512x512, every export
    .venv/bin/python -m benchmarks.bench_real_architectures --preset sd15 --full --dtypes bf16   # the before

1. Builds the preset's networks (text-to-image = refiner, inpainting, depth) from the configs
   stored in ``scenedreamer.priors.architectures`` with random weights, saved in the diffusers /
   transformers layout (a temporary folder unless --models is given; reused when complete).
2. For each dtype, in a fresh child process (so that peak memories do not mix), builds the run
   config exactly as ``scenedreamer generate`` does (its parser and ``build_config``: the preset,
   512x512, 2 cameras, the local folders through --set, 1 denoising step, 1 adapter step, short
   fits, no video / PLY / nerfstudio export) and runs ``pipeline.run.run_generation`` in-process.
   Recorded: seconds per UNet call (one denoising step, classifier-free guidance batched as 2) per
   network, VAE encode / decode, text encoder, depth network and adapter training step times
   (global forward hooks), seconds per event stage, the adapter's parameters, RSS after loading,
   the peak RSS per stage (sampled every 50 ms) and ``ru_maxrss`` (the child's whole-life peak).
3. Beside each, the dry-run estimate of ``pipeline.plan`` (its text line, and the same bytes from
   its functions) and estimate / measured peak: issue 12 asks for it within 20 %.

``--full`` runs the preset's own settings instead (its steps, fits, adapter steps, 12 cameras,
video, PLY and nerfstudio exports): the end-to-end figure of a real run (issue 24 item 4: sd15-fast
in bf16 <= 15 min and <= 5 GiB peak RSS on 2 cores; the plain sd15 as the before). The fast
presets' extra parts are random too: an LCM-LoRA with the published training script's rank (64)
and target layers over the SD 1.5 UNet (fp16, as published) and TAESD's architecture
(AutoencoderTiny's defaults are madebyollin/taesd's config). ``--device cuda`` runs the child on
a GPU and adds ``max_memory_allocated`` (benchmarks/device/fast_scene_gpu.py does that).

Writes benchmarks/results/real_architectures.json, one entry per preset under "presets" (``--tiny``
prints only, unless --out is given). Memory: ``peak_rss_gib`` is the child's ``ru_maxrss`` (the
models are built in another child, so no parent memory is inherited), ``peak_rss_sampled_gib``
the largest RSS the 50 ms sampler saw; stages are "setup" (config, dry-run plan), "load" (the
networks: fp32 safetensors are memory-mapped and paged in when first used, bf16 is a converted
copy), then the run's own event stages.
A busy 2-core machine inflates every time; run on a quiet one for the record (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "real_architectures.json"
PROMPT = "a cozy living room with a fireplace"
MARKER = "BENCH_RESULT "
"""Prefix of the one stdout line a child writes its JSON result on."""
SAMPLE_S = 0.05
"""RSS sampling period of the child, seconds."""
ROLES = ("text_to_image", "inpainter", "depth")
"""The prior roles whose registry presets the run needs (the refiner is the text-to-image model)."""
PARTS = ("lora", "tiny_vae")
"""The fast presets' extra parts (priors.lora, priors.tiny_vae; "" = none)."""
FULL_CAMERAS = 12
"""Trajectory cameras of a --full run (issue 24 item 4)."""
LCM_LORA_RANK = 64
"""Rank of the published LCM-LoRA (diffusers' train_lcm_distill_lora_sd_wds.py --lora_rank 64)."""
LCM_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")
"""The UNet layers that training script adapts (module name endings)."""


# ----------------------------------------------------------------------------- building the models
def model_folders(preset: str, root: Path, tiny: bool) -> dict[str, Path]:
    """Registry name -> folder for every network the ``preset`` run config loads."""
    from scenedreamer.pipeline.config import preset_config

    priors = preset_config(preset).priors
    names = dict.fromkeys([getattr(priors, role) for role in ROLES] + [getattr(priors, p) for p in PARTS if getattr(priors, p)])
    return {name: root / (f"tiny-{name}" if tiny else name) for name in names}


def write_random_lora(folder: Path, base: str, tiny: bool) -> None:
    """A random LoRA over the ``base`` preset's UNet (LCM-LoRA's rank and target layers; tiny: the
    tiny UNet, rank 4), saved as pytorch_lora_weights.safetensors in peft names, fp16."""
    from safetensors.torch import save_file

    if tiny:
        from tiny_models import tiny_sd_pipeline

        unet, rank = tiny_sd_pipeline().unet, 4
    else:
        from scenedreamer.priors import architectures

        unet, rank = architectures.build_unet(base, "meta"), LCM_LORA_RANK
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for name, module in unet.named_modules():
        if not name.endswith(LCM_LORA_TARGETS) or not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if isinstance(module, torch.nn.Linear):
            a_shape, b_shape = (rank, module.in_features), (module.out_features, rank)
        else:
            a_shape, b_shape = (rank, module.in_channels, *module.kernel_size), (module.out_channels, rank, 1, 1)
        tensors[f"unet.{name}.lora_A.weight"] = (torch.randn(a_shape, generator=gen) * 0.01).half()
        tensors[f"unet.{name}.lora_B.weight"] = (torch.randn(b_shape, generator=gen) * 0.01).half()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "pytorch_lora_weights.safetensors")


def write_random_tiny_vae(folder: Path, tiny: bool) -> None:
    """TAESD's architecture (AutoencoderTiny's defaults) with random weights; tiny: 8 channels."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    if tiny:
        from tiny_models import tiny_autoencoder

        vae = tiny_autoencoder()
    else:
        vae = AutoencoderTiny()
    vae.save_pretrained(folder, safe_serialization=True)


def build_models(folders: dict[str, Path], tiny: bool) -> dict[str, float]:
    """Write each missing folder (random weights); returns seconds spent per network (0 = reused)."""
    from scenedreamer.priors import architectures
    from scenedreamer.priors.loading import missing_weight_components
    from scenedreamer.priors.model_registry import PRESETS

    seconds = {}
    for name, folder in folders.items():
        if folder.is_dir() and not missing_weight_components(folder):
            seconds[name] = 0.0
            continue
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        sys.path.insert(0, str(ROOT / "tests"))
        task = PRESETS[name].task
        if task == "lora":
            write_random_lora(folder, PRESETS[name].family, tiny)
        elif task == "tiny-vae":
            write_random_tiny_vae(folder, tiny)
        elif tiny:
            from tiny_models import tiny_depth_model, tiny_sd_pipeline

            if task == "depth":
                tiny_depth_model("zoedepth" if name == "zoedepth" else "depth_anything", folder,
                                 depth_estimation_type="metric" if name == "zoedepth" else "relative")
            else:
                tiny_sd_pipeline(folder, inpainting=task == "inpaint")
        else:
            architectures.write_random_model(name, folder)
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"built {name} in {seconds[name]} s -> {folder}", flush=True)
    return seconds


# ----------------------------------------------------------------------------- the child: one run
def generate_argv(preset: str, folders: dict[str, Path], dtype: str, out: Path, tiny: bool, steps: int,
                  full: bool = False, device: str = "cpu") -> list[str]:
    """`scenedreamer generate` arguments of one measured run (the local folders via --set).
    full: the preset's own settings, FULL_CAMERAS cameras and every export (only the folders set)."""
    from scenedreamer.pipeline.config import preset_config

    priors = preset_config(preset).priors
    folder_of = {name: str(path) for name, path in folders.items()}
    sets = {f"priors.{role}": folder_of[getattr(priors, role)] for role in ROLES}
    sets["priors.refiner"] = folder_of[priors.refiner]
    sets.update({f"priors.{p}": folder_of[getattr(priors, p)] for p in PARTS if getattr(priors, p)})
    size = "64x64" if tiny else "512x512"
    if full:
        argv = ["generate", PROMPT, "--preset", preset, "--resolution", size,
                "--frames", str(3 if tiny else FULL_CAMERAS), "--device", device, "--dtype", dtype,
                "--out", str(out), "--overwrite", "--quiet"]
        for key, value in sets.items():
            argv += ["--set", f"{key}={json.dumps(value)}"]
        return argv
    sets.update({
        "priors.diffusion.num_inference_steps": steps,
        # the refiner runs strength x num_inference_steps of the schedule (strength 0.5)
        "refiner.num_inference_steps": 2 * steps,
        "refiner.adapter_train_steps_per_view": 1,
        "progressive.adapter_views": 1,         # one training pair read: one step trains on one
        # tiny: the fewest fit steps that still run every stage (a smoke test; the fit of the
        # default tri-plane NeRF at 64x64 was ~0.6 s a step, most of the tiny child's time)
        "init.fit_steps": 2 if tiny else 10, "progressive.fit_steps_per_view": 1 if tiny else 5,
        "export.video": False, "export.ply": False, "export.nerfstudio": False,
    })
    argv = ["generate", PROMPT, "--preset", preset, "--resolution", size,
            "--frames", "2", "--device", device, "--dtype", dtype, "--out", str(out), "--overwrite", "--quiet"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _network_role(module) -> str | None:
    """A short name for the networks whose forward calls are timed, None for any other module."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.autoencoders.vae import Decoder, DecoderTiny, Encoder, EncoderTiny

    from scenedreamer.priors.adapter import RenderAdapter

    if isinstance(module, UNet2DConditionModel):
        return "unet_inpaint_9ch" if module.config.in_channels == 9 else "unet_text2image"
    if isinstance(module, EncoderTiny):
        return "taesd_encode"
    if isinstance(module, DecoderTiny):
        return "taesd_decode"
    if isinstance(module, Encoder):
        return "vae_encode"
    if isinstance(module, Decoder):
        return "vae_decode"
    if isinstance(module, RenderAdapter):
        return "adapter"
    name = type(module).__name__
    if name == "CLIPTextModel":
        return "text_encoder"
    if name.endswith("ForDepthEstimation"):
        return "depth_network"
    return None


def run_child(args: argparse.Namespace) -> int:
    """Run one dtype in this (fresh) process; print its figures as one JSON line after MARKER."""
    from scenedreamer.cli import build_parser
    from scenedreamer.cli.generate import build_config
    from scenedreamer.events import ProgressEvent
    from scenedreamer.pipeline.plan import (describe_plan, loaded_networks, network_memory, network_parameters,
                                            planned_peak_rss_bytes)
    from scenedreamer.pipeline.priors_factory import with_resolved_dtype
    from scenedreamer.pipeline.run import run_generation

    folders = {k: Path(v) for k, v in json.loads(args.folders).items()}
    out = Path(args.run_dir)
    argv = generate_argv(args.preset, folders, args.dtype, out, args.tiny, args.steps, args.full, args.device)
    if args.channels_last:
        argv += ["--set", "priors.channels_last=true"]
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    config = build_config(build_parser().parse_args(argv))
    resolved = with_resolved_dtype(config)
    plan_text = describe_plan(config, str(out))
    plan_line = next(line.strip() for line in plan_text.splitlines() if "network weights" in line)
    ram_line = next(line.strip() for line in plan_text.splitlines() if "in RAM up to" in line)
    counts = {name: network_parameters(name, resolved) for name in loaded_networks(resolved)}
    estimate = network_memory(resolved, counts).weights      # components two pipelines share counted once
    # the dry run's whole RAM figure, as printed ("in RAM up to"): the process, networks while
    # loading / running, the representation's largest stage
    ram_estimate = planned_peak_rss_bytes(config)

    # per-network forward times (global hooks: the pipeline is built inside run_generation)
    calls: dict[str, list[dict]] = {}
    starts: dict[int, float] = {}
    adapter_params: list[int] = []
    train_started: list[float] = []

    def pre_hook(module, _inputs):
        role = _network_role(module)
        if role is not None:
            starts[id(module)] = time.perf_counter()
            if role == "adapter":
                if not adapter_params:
                    adapter_params.append(sum(p.numel() for p in module.parameters()))
                if torch.is_grad_enabled():
                    train_started.append(time.perf_counter())

    def post_hook(module, _inputs, _output):
        role = _network_role(module)
        if role is not None and id(module) in starts:
            calls.setdefault(role, []).append({"s": time.perf_counter() - starts.pop(id(module)),
                                               "grad": torch.is_grad_enabled()})

    # RSS per stage: the sampler attributes each sample to the stage of the latest event
    stage = ["setup"]                       # until build_priors reports its first "load" event
    peaks: dict[str, int] = {}
    after_load: dict[str, int] = {}
    events: list[dict] = []
    train_steps: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _rss_bytes()
            peaks[stage[0]] = max(peaks.get(stage[0], 0), rss)
            done.wait(SAMPLE_S)

    def on_event(event: ProgressEvent) -> None:
        if event.stage != "load" and not after_load:    # the first event once every network is loaded
            after_load.update(rss=_rss_bytes(),
                              maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        events.append({"stage": event.stage, "t": time.perf_counter(), "message": event.message})
        stage[0] = event.stage
        if event.stage == "adapter" and train_started:
            train_steps.append(time.perf_counter() - train_started[-1])

    handles = [torch.nn.modules.module.register_module_forward_pre_hook(pre_hook),
               torch.nn.modules.module.register_module_forward_hook(post_hook)]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        run_generation(config, out, overwrite=True, on_event=on_event)
    finally:
        total = time.perf_counter() - t0
        done.set()
        sampler.join()
        for h in handles:
            h.remove()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024        # Linux: KiB

    stage_s: dict[str, float] = {"setup": events[0]["t"] - t0 if events else total}
    for a, b in zip(events, events[1:] + [{"t": t0 + total}]):
        stage_s[a["stage"]] = stage_s.get(a["stage"], 0.0) + (b["t"] - a["t"])
    timing = {}
    for role, items in sorted(calls.items()):
        for grad in (False, True):
            secs = sorted(c["s"] for c in items if c["grad"] is grad)
            if secs:
                timing[role + ("_train_forward" if grad else "")] = {
                    "calls": len(secs), "median_s": round(secs[len(secs) // 2], 3), "total_s": round(sum(secs), 2)}
    gib = 2 ** 30
    result = {
        "dtype_asked": args.dtype, "dtype_ran": resolved.priors.dtype, "argv": argv[1:],
        "seconds_total": round(total, 1),
        "seconds_per_denoising_step": {k: v["median_s"] for k, v in timing.items() if k.startswith("unet_")
                                       and not k.endswith("_train_forward")},
        "adapter_train_step_s": [round(s, 2) for s in train_steps],
        "adapter_parameters": adapter_params[0] if adapter_params else 0,
        "network_calls": timing,
        "stage_seconds": {k: round(v, 1) for k, v in stage_s.items()},
        "peak_rss_gib": round(maxrss / gib, 2),
        "peak_rss_sampled_gib": round(max(peaks.values(), default=0) / gib, 2),
        "rss_after_load_gib": round(after_load.get("rss", 0) / gib, 2),
        "peak_rss_during_load_gib": round(after_load.get("maxrss", 0) / gib, 2),
        "peak_rss_by_stage_gib": {k: round(v / gib, 2) for k, v in peaks.items()},
        "dry_run_line": plan_line,
        "dry_run_parameters": counts,
        "dry_run_weight_gib": round(estimate / gib, 2),
        "weights_over_peak": round(estimate / maxrss, 3),
        "dry_run_ram_line": ram_line,
        "dry_run_ram_gib": round(ram_estimate / gib, 2),
        "estimate_over_peak": round(ram_estimate / maxrss, 3),
        "full": args.full, "device": args.device, "channels_last": args.channels_last,
        "max_memory_allocated_gib": (round(torch.cuda.max_memory_allocated() / gib, 2)
                                     if args.device.startswith("cuda") else None),
    }
    print(MARKER + json.dumps(result), flush=True)
    return 0


# ----------------------------------------------------------------------------- the parent
def build_in_child(args: argparse.Namespace, folders: dict[str, Path]) -> dict[str, float]:
    """Write the models in a child process: a child's ru_maxrss starts from its parent's RSS at
    the fork (Linux keeps the high-water mark across exec), so the parent must stay small."""
    cmd = [sys.executable, "-m", "benchmarks.bench_real_architectures", "--child-build",
           "--folders", json.dumps({k: str(v) for k, v in folders.items()})] + (["--tiny"] if args.tiny else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
        print(line, flush=True)
    raise SystemExit(f"building the models failed:\n{proc.stderr[-2000:]}")


def run_dtype(args: argparse.Namespace, folders: dict[str, Path], dtype: str, run_dir: Path) -> dict:
    """One dtype in a child process; its JSON result (or the failure's last lines)."""
    cmd = [sys.executable, "-m", "benchmarks.bench_real_architectures", "--child", "--preset", args.preset,
           "--dtype", dtype, "--steps", str(args.steps), "--run-dir", str(run_dir), "--device", args.device,
           "--folders", json.dumps({k: str(v) for k, v in folders.items()})] + (["--tiny"] if args.tiny else []) \
        + (["--full"] if args.full else []) + (["--channels-last"] if args.channels_last else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    return {"dtype_asked": dtype, "failed": True, "exit_code": proc.returncode, "error_tail": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sd15", choices=["sd15", "sd2", "sd15-fast", "sd2-fast"])
    parser.add_argument("--full", action="store_true",
                        help=f"the preset's own settings, {FULL_CAMERAS} cameras, every export (issue 24's end-to-end row)")
    parser.add_argument("--device", default="cpu", help="where the networks run (cuda: adds max_memory_allocated)")
    parser.add_argument("--channels-last", action="store_true",
                        help="UNet and VAE weights channels-last (priors.channels_last): compare against a run without")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (fp16 is refused on CPU)")
    parser.add_argument("--steps", type=int, default=1, help="denoising steps of the first view and inpainting")
    parser.add_argument("--models", default=None, help="folder for the random-weight models (kept; reused when complete)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models at 64x64 (a smoke test: seconds)")
    parser.add_argument("--out", default=None, help=f"results JSON (default {RESULTS.relative_to(ROOT)}; "
                                                    "--tiny writes none unless given)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folders", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    if args.child_build:
        seconds = build_models({k: Path(v) for k, v in json.loads(args.folders).items()}, args.tiny)
        print(MARKER + json.dumps(seconds), flush=True)
        return 0

    tmp = tempfile.mkdtemp(prefix="bench_real_arch_")
    try:
        models_root = Path(args.models) if args.models else Path(tmp) / "models"
        folders = model_folders(args.preset, models_root, args.tiny)
        build_s = build_in_child(args, folders)
        runs = []
        for dtype in [d.strip() for d in args.dtypes.split(",") if d.strip()]:
            result = run_dtype(args, folders, dtype, Path(tmp) / f"run_{dtype}")
            runs.append(result)
            print(json.dumps(result, indent=2), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    from scenedreamer.atomic import atomic_write_json
    from scenedreamer.priors.loading import cpu_has_fast_bf16

    results = {
        "preset": args.preset, "tiny": args.tiny, "steps": None if args.full else args.steps, "full": args.full,
        "machine": dict(processor=platform.processor() or platform.machine(), cores=os.cpu_count(),
                        torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        fast_bf16=cpu_has_fast_bf16(), load_average_at_end=round(os.getloadavg()[0], 2)),
        "build_seconds": build_s, "runs": runs,
        "target": "dry-run RAM estimate (\"in RAM up to\") within 20 % of the measured peak RSS (issue 12, item 3)"
                  + ("; sd15-fast --full bf16 on 2 cores: <= 15 min, <= 5 GiB peak RSS (issue 24 item 4)"
                     if args.full else ""),
    }
    out = Path(args.out) if args.out else (None if args.tiny else RESULTS)
    if out is not None:
        # one entry per preset: a run of --preset sd2 keeps the sd15 figures beside it
        recorded = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
        presets = recorded.get("presets", {}) if isinstance(recorded, dict) else {}
        presets[f"{args.preset}{'-full' if args.full else ''}{'-' + args.device if args.device != 'cpu' else ''}"
                f"{'-channels-last' if args.channels_last else ''}"
                f"{'-tiny' if args.tiny else ''}"] = results
        atomic_write_json(out, {"presets": presets})
        print(f"wrote {out}")
    return 1 if any(r.get("failed") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
