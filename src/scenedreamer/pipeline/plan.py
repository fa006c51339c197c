"""`--dry-run`: what a run would do and roughly what it needs, without loading anything."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..representation.registry import kind_of_config
from .config import GenerateConfig
from .disk_budget import (DiskEstimate, StageMemory, available_memory_bytes, estimate_run, free_disk_bytes,
                          initial_view_count, size_text, support_view_count)
from .prior_kinds import check_roles, describe_prior, is_stand_in, real_models, role_names

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
"""Bytes per weight of each network dtype (priors/loading.py DTYPES, whose torch dtypes the plan
does not import)."""

ROLE_TITLES = {"text_to_image": "first view", "inpainter": "inpainting", "depth": "depth",
               "first_view_depth": "first depth", "refiner": "refiner"}
"""How the plan's list of models titles each role (prior_kinds.ROLES)."""


def _first_view_line(role: str, config: GenerateConfig) -> str | None:
    """The plan line of a photo start's first view (the fit it will get, read from the photo's
    header) or its given depth map; None for every other role. A photo that cannot be read or is
    too small is the same one-line UserInputError as in a run."""
    fv = config.first_view
    if role == "first view" and fv.image:
        from ..priors.photo import fit_plan_for, read_photo_size

        plan = fit_plan_for(*read_photo_size(fv.image), config.width, config.height, fv.max_upscale, fv.image)
        return f"  {role:<14} your photo {fv.image} ({plan.describe()})"
    if role == "first depth" and fv.depth:
        return f"  {role:<14} your depth map {fv.depth} (metres)"
    return None


def _local_source(name: str, config: GenerateConfig):
    """The ModelSource of ``name`` as this machine has it (offline look-up: a folder, a cached
    snapshot or nothing local); None for a folder that does not exist."""
    from ..errors import MissingWeightsError
    from ..priors.loading import ModelLoadConfig, resolve_source

    try:
        return resolve_source(name, ModelLoadConfig(cache_dir=config.priors.cache_dir, offline=True))
    except MissingWeightsError:
        return None


def network_parameters(name: str, config: GenerateConfig) -> int | None:
    """Parameters of one network: exact from a local folder's or cached snapshot's safetensors
    headers, else the preset's fp32 download size / 4; None when unknown (a hub id not cached)."""
    from ..priors.loading import weight_parameter_count

    source = _local_source(name, config)
    if source is None:
        return None
    if source.folder is not None:
        # a tiny VAE replaces every pipeline's own VAE, whose weights are then never read
        count = weight_parameter_count(source.folder, config.priors.variant,
                                       skip=("vae",) if config.priors.tiny_vae else ())
        if count is not None:
            return count
    return int(source.preset.approx_size_gb * 1e9 / 4) if source.preset is not None else None


RUNTIME_BYTES = int(0.5 * 2**30)
"""Resident memory of the process once torch, diffusers and transformers are imported and the
weights mapped: 0.55 GiB RSS after loading fp32 sd15 + ZoeDepth (memory-mapped, paged in on use;
bench_real_architectures, 2026-12-04)."""
ACTIVATION_BYTES_AT_512 = int(1.5 * 2**30)
"""Activations of the networks at 512x512 (the VAE decode dominates), scaled with the pixel
count: the fp32 peaks measured 12.1 GB (sd15) and 13.8 GB (sd2) against 9.9 / 11.7 GB of weights
and the runtime above, i.e. 1.6-1.7 GB; 1.5 GB plus the fitting state counted elsewhere."""
TINY_VAE_ACTIVATION_BYTES_AT_512 = int(0.4 * 2**30)
"""The same with the tiny autoencoder (TAESD) doing every encode and decode (the fast presets):
the VAE's decode no longer dominates, a UNet call does. Measured one call at a time in bf16 at
512x512 (2026-12-07): a UNet call 0.30 GiB above its weights, a TAESD encode 0.16, a decode 0.22;
0.4 GiB with a margin. (It was 0.75, measured as a whole run's peak above its networks when the
Gaussian fit's rasteriser still recorded every Gaussian for every patch: that was the fit's.)"""
SD_TEXT_ENCODER_SHARE = 0.16
"""The text encoder's share of a Stable Diffusion download (0.49 of 4.27 GB for SD 1.5's CLIP
ViT-L, 1.36 of 5.2 GB for SD 2's OpenCLIP-H: 0.11-0.26): the largest component still loaded
through a memory-mapped file (the UNet and VAE load tensor by tensor, loading.LEAN_COMPONENTS),
used when a preset is not on this machine to read."""


@dataclass(frozen=True)
class NetworkMemory:
    """Main-memory bytes the networks of a run need (all 0 when none is loaded).

    weights: every network in the running dtype; load_spike: the file-dtype copy of the largest
    component held beside its converted copy while it loads (0 when the files already are in the
    running dtype); activations: at the run's resolution; runtime: the libraries' own memory."""

    weights: int
    load_spike: int
    activations: int
    runtime: int

    @property
    def peak(self) -> int:
        """Loading and running do not overlap: the larger of the two, plus the runtime."""
        if not self.weights:
            return 0
        return max(self.weights + self.load_spike, self.weights + self.activations) + self.runtime


def _largest_component(name: str, config: GenerateConfig) -> tuple[int, int] | None:
    """(elements, file bytes) of a network's largest component: exact from local safetensors
    headers, else from the preset's fp32 download size; None when unknown."""
    from ..priors.loading import LEAN_COMPONENTS, largest_component_sizes

    source = _local_source(name, config)
    if source is None:
        return None
    if source.folder is not None:
        # the UNet and VAE load tensor by tensor (loading.load_component_lean): no file copy
        sizes = largest_component_sizes(source.folder, config.priors.variant,
                                        skip=LEAN_COMPONENTS if config.priors.variant is None else ())
        if sizes is not None:
            return sizes
    if source.preset is None:
        return None
    share = SD_TEXT_ENCODER_SHARE if source.preset.task in ("text2image", "inpaint") else 1.0
    nbytes = int(source.preset.approx_size_gb * 1e9 * share)
    return nbytes // 4, nbytes


def network_memory(config: GenerateConfig, counts: dict[str, int | None] | None = None) -> NetworkMemory:
    """What the networks of ``config`` (its resolved dtype) need in main memory when they run on
    the CPU; ``counts``: parameters per loaded network (network_parameters), computed if None.
    Checked against measured peaks by benchmarks/bench_real_architectures.py (BENCHMARKS.md)."""
    config = planned_config(config)                      # "auto" -> the dtype that will run
    if counts is None:
        counts = {name: network_parameters(name, config) for name in loaded_networks(config)}
    itemsize = DTYPE_BYTES[config.priors.dtype]
    weights = (sum(c for c in counts.values() if c) - shared_parameters(config)) * itemsize
    if not weights:
        return NetworkMemory(0, 0, 0, 0)
    spike = 0
    for name in counts:
        sizes = _largest_component(name, config)
        if sizes is not None and sizes[1] != sizes[0] * itemsize:     # converted while loading
            spike = max(spike, sizes[1])
    at_512 = TINY_VAE_ACTIVATION_BYTES_AT_512 if config.priors.tiny_vae else ACTIVATION_BYTES_AT_512
    activations = int(at_512 * config.width * config.height / 512**2)
    return NetworkMemory(weights, spike, activations, RUNTIME_BYTES)


def shared_parameters(config: GenerateConfig) -> int:
    """Parameters the run's Stable Diffusion pipelines hold once though two different model
    folders name them (the loader's rule, priors/shared_components.py: the same text encoder or
    VAE; never with CPU offload). Only folders on this machine are compared."""
    from ..priors.loading import ModelLoadConfig, safetensors_sizes, shares_text_encoder, weight_variant
    from ..priors.shared_components import SHAREABLE, same_component, weight_files

    pc = config.priors
    if pc.cpu_offload or pc.sequential_offload:
        return 0
    pipelines: list[tuple[Path, str | None]] = []
    for name, inpainting in real_models(config):
        source = _local_source(name, config) if inpainting is not None else None
        if source is not None and source.folder is not None:
            pipeline = (source.folder, pc.variant or weight_variant(source.folder))
            if pipeline not in pipelines:       # network_parameters counts a folder once
                pipelines.append(pipeline)
    parts = [part for part in SHAREABLE if not (part == "vae" and pc.tiny_vae)]
    if len(pipelines) > 1 and not shares_text_encoder(pc.lora or None,
                                                       ModelLoadConfig(cache_dir=pc.cache_dir, offline=True)):
        parts.remove("text_encoder")
    shared = 0
    for i, (folder, variant) in enumerate(pipelines):
        for part in parts:
            if any(same_component(folder, other, part, variant, other_variant) for other, other_variant in pipelines[:i]):
                shared += sum(safetensors_sizes(f)[0] for f in weight_files(folder / part, variant))
    return shared


def loaded_networks(config: GenerateConfig) -> list[str]:
    """The networks a run loads, as build_priors loads them (prior_kinds.real_models): the
    first view and the refiner share their SD pipeline, a first-view depth network named like the
    depth network is that network, a photo start loads no text-to-image model (nor a first-view
    depth network when its depth map is given)."""
    return [name for name, _ in real_models(config)]


def describe_plan(config: GenerateConfig, out: str) -> str:
    """A human-readable plan: views, resolution, models, expected memory and output folder."""
    config = planned_config(config)
    cameras = trajectory_camera_count(config)
    n_init = initial_view_count(config)
    n_views = support_view_count(config, cameras)
    check_roles(config)                                     # as a run would refuse it
    rep_kind = kind_of_config(config.representation).describe(config.representation)
    lines = [
        f"scenedreamer generate plan ({config.preset} preset)",
        f"  prompt         {config.prompt!r}",
        f"  output         {out}",
        f"  resolution     {config.width}x{config.height}",
        f"  trajectory     {config.trajectory.file or config.trajectory.preset}: {cameras} cameras",
        f"  support views  {n_views} ({n_init} at initialisation, {cameras - 1} progressive)",
        f"  representation {rep_kind}",
        f"  fitting        {config.init.fit_steps} + {config.progressive.fit_steps_per_view}/view iterations",
        "  ablations      " + ", ".join(f"{k}={'on' if v else 'off'}" for k, v in vars(config.ablation).items()),
        "  models:",
    ]
    for role, name in role_names(config).items():
        title = ROLE_TITLES[role]
        lines.append(_first_view_line(title, config) or f"  {title:<14} {describe_prior(role, name)}")
    lines += _weights_and_time_lines(config, cameras)
    counts = {name: network_parameters(name, config) for name in loaded_networks(config)}
    networks = network_memory(config, counts)
    weight_bytes = networks.weights
    unknown = [n for n, c in counts.items() if c is None]
    on_cpu = _networks_on_cpu(config)
    network_bytes, estimate, peak = _planned_memory(config, cameras, networks)
    where, free = free_disk_bytes(out)
    available = available_memory_bytes()
    lines += [
        "  expected memory:",
        f"    representation ~{size_text(estimate.parameters)} (+ gradients and optimiser state x3)",
        f"    network weights ~{weight_bytes / 1e9:.1f} GB ({len(counts)} network(s), each counted once, "
        f"in {config.priors.dtype}{', CPU offload' if config.priors.cpu_offload else ''})"
        + (f"; size unknown for {', '.join(unknown)}" if unknown else ""),
        f"    in RAM up to {size_text(peak)} peak (the process "
        f"~{size_text(PROCESS_BASE_BYTES)} + training state, cached support views"
        + (", activations" if any(st.workspace for st in estimate.stages) else "")
        + (f", network weights + {size_text(max(networks.load_spike, networks.activations))} while "
           f"{'loading' if networks.load_spike > networks.activations else 'running'} them"
           f" + {size_text(networks.runtime)} runtime" if on_cpu and networks.weights else "") + ")"
        + (f"; {size_text(available)} available" if available is not None else ""),
    ]
    if len(estimate.stages) > 1:
        lines.append("    by stage, on top of the process (the peak is the largest): " + ", ".join(
            _stage_text(st, network_bytes, estimate.gaussians) for st in estimate.stages))
    lines += [
        "  expected disk (upper bounds):",
        f"    support database {size_text(estimate.support)} ({estimate.views} views of {size_text(estimate.view_bytes)})",
        f"    checkpoints {size_text(estimate.checkpoints)}",
        f"    scene.ply {size_text(estimate.ply)} (at most {estimate.gaussians} Gaussians)" if estimate.ply else
        "    scene.ply not written",
        f"    video.mp4 {size_text(estimate.video)}" if estimate.video else "    video.mp4 not written",
        f"    nerfstudio dataset {size_text(estimate.nerfstudio)}" if estimate.nerfstudio else
        "    nerfstudio dataset not written",
        f"    total {size_text(estimate.total)}; {size_text(free)} free at {where}"
        + ("" if is_stand_in(role_names(config)["refiner"])
           else " (the diffusion refiner's adapter in the checkpoints is not counted)"),
    ]
    if estimate.total > free:
        lines.append(f"warning: the run needs up to {size_text(estimate.total)} of disk but {where} has "
                     f"{size_text(free)} free: generate refuses to start a new run; free space, lower "
                     "--resolution or --frames, or choose another --out")
    if available is not None and peak > available:
        lines.append(f"warning: the run may need up to {size_text(peak)} of RAM but "
                     f"{size_text(available)} is available: it may swap or be killed; lower --resolution "
                     "or --frames")
    return "\n".join(lines)


def _planned_memory(config: GenerateConfig, cameras: int, networks: NetworkMemory):
    """(network bytes held in RAM, the run's DiskEstimate, the peak RSS in bytes) of a config
    already passed through ``planned_config`` whose networks need ``networks``."""
    network_bytes = networks.peak if _networks_on_cpu(config) else 0
    estimate = estimate_run(config, cameras, weight_bytes_on_cpu=network_bytes)
    return network_bytes, estimate, peak_rss_bytes(estimate, network_bytes)


def planned_peak_rss_bytes(config: GenerateConfig) -> int:
    """The peak resident memory (bytes) that `generate --dry-run` prints as "in RAM up to" for
    ``config`` (what the benchmarks compare with a measured peak)."""
    config = planned_config(config)
    counts = {name: network_parameters(name, config) for name in loaded_networks(config)}
    return _planned_memory(config, trajectory_camera_count(config), network_memory(config, counts))[2]


def _stage_text(stage: StageMemory, network_bytes: int, gaussians: int) -> str:
    """One stage for the plan: "fitting ~253 MB (activations 223 MB, 14 views)"."""
    what = {"fit": "fitting", "render": "rendering", "distill": f"distilling {gaussians} Gaussians"}.get(
        stage.name, stage.name)
    parts = ([f"activations {size_text(stage.workspace)}"] if stage.workspace else []) + (
        [f"{stage.views} views"] if stage.views else [])
    return f"{what} ~{size_text(stage_bytes(stage, network_bytes))}" + (f" ({', '.join(parts)})" if parts else "")


def _networks_on_cpu(config: GenerateConfig) -> bool:
    """Whether the networks (and the representation) run on the CPU, so their weights are in RAM."""
    return planned_device(config.priors.device).startswith("cpu")


# ---- what the plan reads without torch (generate --dry-run starts in <= 2 s, issue 21) ----------

def cuda_expected() -> bool:
    """Whether device "auto" will pick CUDA. Exact (torch.cuda.is_available) when torch is already
    imported; otherwise predicted without importing torch: the installed torch is a CUDA build
    (its version.py names a CUDA version), the NVIDIA driver shows a GPU, and CUDA_VISIBLE_DEVICES
    does not hide them all. A run decides with torch itself (priors_factory.resolve_device)."""
    import importlib.util
    import os

    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        version = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return False
    if "cuda: Optional[str] = None" in version or "cuda = None" in version:
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def planned_device(name: str) -> str:
    """The device a run of ``priors.device == name`` will use, as a string ("auto" resolved by
    ``cuda_expected``; any other name as given: a run checks it with torch)."""
    if name == "auto":
        return "cuda" if cuda_expected() else "cpu"
    return name


def planned_config(config: GenerateConfig) -> GenerateConfig:
    """``config`` with ``priors.dtype`` as a run will resolve it. A run that loads networks uses the
    run's own resolution (priors_factory.with_resolved_dtype: the loader, which imports torch, and
    its checks, e.g. fp16 refused on the CPU); a run of stand-ins only loads no network, so no
    network dtype applies: fp32, the dtype of the representation, is shown (nothing imported)."""
    if loaded_networks(config) or "torch" in sys.modules:
        from .priors_factory import with_resolved_dtype

        return with_resolved_dtype(config)
    return replace(config, priors=replace(config.priors, dtype="fp32"))


def trajectory_camera_count(config: GenerateConfig) -> int:
    """Cameras of the run's trajectory, refused as a run refuses it (scene_cameras.load_trajectory):
    a preset's options and image size checked and its ``frames`` counted without building poses
    (no torch); a transforms.json file read in full (the reader builds its cameras with torch)."""
    from ..errors import UserInputError
    from ..geometry.trajectory_presets import build_preset_params, check_path_image

    spec = config.trajectory
    if spec.file:
        from .scene_cameras import load_trajectory

        return len(load_trajectory(config).cameras)
    build_preset_params(spec.preset, **spec.params)
    check_path_image(spec.frames, config.width, config.height, spec.fov_deg)
    if spec.frames < 2:
        raise UserInputError(f"preset {spec.preset!r}: a trajectory needs at least 2 cameras, got {spec.frames}")
    return spec.frames


# work units of the progress bar: one unit ~ one fitting step of the representation at the run's
# resolution (the step that dominates an offline run); the other costs are rough multiples of it
OFFLINE_PRIOR_UNITS = 0.5
"""One call of an offline stand-in (procedural world, warp + composite) ~ half a fitting step."""
DIFFUSION_STEP_UNITS = 2.0
"""One denoising step of a diffusion prior ~ two fitting steps (a UNet pass at the run's size)."""
VIDEO_FRAME_UNITS = 0.3
"""One rendered video frame (no backward pass) ~ a third of a fitting step."""
EXPORT_FIXED_UNITS = 4.0
"""Checkpoint, nerfstudio dataset and PLY writing together."""


@dataclass(frozen=True)
class WorkUnits:
    """Weights of a run's stages for an honest progress bar (units ~ fitting steps):
    init: scene context initialisation (first view, neighbours, first fit); view: one
    progressive view (refine, inpaint, depth, fit, adapter); export: distillation, video, files."""

    init: float
    view: float
    export: float

    def total(self, cameras: int) -> float:
        """All the work of a run along ``cameras`` trajectory cameras."""
        return self.init + max(0, cameras - 1) * self.view + self.export


def _prior_units(name: str, steps: int) -> float:
    return OFFLINE_PRIOR_UNITS if is_stand_in(name) else steps * DIFFUSION_STEP_UNITS


def work_units(config: GenerateConfig, cameras: int) -> WorkUnits:
    """The stage weights of ``config`` along ``cameras`` trajectory cameras (see WorkUnits)."""
    from ..geometry.trajectory_presets import path_frame_count

    pri, exp = config.priors, config.export
    neighbours = len(config.init.neighbour_yaws_deg) + len(config.init.neighbour_pitches_deg)
    denoise = config.refiner.num_inference_steps
    init = (_prior_units(pri.text_to_image, denoise) + neighbours * _prior_units(pri.inpainter, denoise)
            + (1 + neighbours) * OFFLINE_PRIOR_UNITS + config.init.fit_steps)
    refine = _prior_units(pri.refiner, denoise) if config.ablation.refinement else 0.0
    adapter = config.refiner.adapter_train_steps_per_view if not is_stand_in(pri.refiner) else 0
    view = (refine + _prior_units(pri.inpainter, denoise) + OFFLINE_PRIOR_UNITS
            + config.progressive.fit_steps_per_view + adapter)
    export = EXPORT_FIXED_UNITS + (exp.distill.steps_for(support_view_count(config, cameras)) if exp.ply else 0)
    if exp.video:
        export += VIDEO_FRAME_UNITS * path_frame_count(cameras, exp.video_frames_per_view)
    return WorkUnits(float(init), float(view), float(export))


def missing_models(config: GenerateConfig) -> list[str]:
    """The networks of ``config`` whose weights are not local (not a complete folder, nor in the
    cache), as their names: checked all at once before a run creates anything, without loading."""
    from ..errors import MissingWeightsError
    from ..priors.loading import local_status

    missing = []
    for name in loaded_networks(config):
        try:
            if not local_status(name, config.priors.cache_dir).present:
                missing.append(name)
        except MissingWeightsError:         # a folder that does not exist
            missing.append(name)
    return missing


def missing_models_message(config: GenerateConfig, missing: list[str]) -> str:
    """One line naming every missing model and the one command that fetches them."""
    from ..priors.loading import hub_offline_from_environment

    from .config import PRESETS

    fetch = (f"scenedreamer models download --preset {config.preset}"
             if config.preset in PRESETS and config.preset != "offline"
             else "scenedreamer models download " + " ".join(missing))
    where = "the local cache" + (" (offline: HF_HUB_OFFLINE is set)" if hub_offline_from_environment() else "")
    return (f"preset {config.preset} needs {len(missing)} model{'s' if len(missing) > 1 else ''} not in {where}: "
            f"{', '.join(missing)}; get {'them' if len(missing) > 1 else 'it'} with `{fetch}`")


SECONDS_PER_UNIT = 1387.6 / 2033.9
"""Wall seconds of one work unit (~ one fitting step at 256x256) on the reference box, 2 quiet
CPU cores (the 2-core AMD EPYC of BENCHMARKS.md "Issues 20-25", whose calibration workload takes
machine_speed.REFERENCE_CPU_SECONDS): the three offline runs of benchmarks/bench_eta.py together,
the make-run scene (406.9 units by ``work_units``) 238.3 s, 24 views (690.1) 443.3 s and the
NeRF (936.9) 706.0 s; one rate puts each within 16 % of its measured time (issue 21)."""
REFERENCE_PIXELS = 256 * 256
REFERENCE_THREADS = 2


def expected_seconds(config: GenerateConfig, cameras: int, threads: int, slowdown: float | None = None) -> float:
    """Rough wall time (seconds) of a CPU run on this machine: its work units at the reference
    box's rate, scaled by the pixels of a view, by the threads (against the 2 of the reference)
    and by ``slowdown``, how many times longer this machine's cores take than the reference's
    (None: measured by machine_speed's short calibration, once per process)."""
    if slowdown is None:
        from ..machine_speed import slowdown_against_reference

        slowdown = slowdown_against_reference()
    units = work_units(config, cameras).total(cameras)
    scale = (config.width * config.height) / REFERENCE_PIXELS * REFERENCE_THREADS / max(1, threads)
    return units * SECONDS_PER_UNIT * scale * slowdown


def _weights_and_time_lines(config: GenerateConfig, cameras: int) -> list[str]:
    """Per network: cached or missing (and the one command that fetches what is missing); the
    device and dtype that will run; the time to expect."""
    from ..threads import current_threads

    lines = []
    real = loaded_networks(config)
    if real:
        missing = missing_models(config)
        lines.append("  weights        " + ", ".join(f"{n}: {'MISSING' if n in missing else 'cached'}" for n in real))
        if missing:
            lines.append("  note           " + missing_models_message(config, missing))
    device = planned_device(config.priors.device)
    lines.append(f"  runs on        {device}, {config.priors.dtype}")
    threads = current_threads()
    from ..machine_speed import slowdown_against_reference

    slowdown = slowdown_against_reference()
    seconds = expected_seconds(config, cameras, threads, slowdown)
    when = f"~{seconds / 60:.0f} min" if seconds >= 90 else f"~{seconds:.0f} s"
    lines.append(f"  expected time  {when} on {threads} CPU thread{'s' if threads > 1 else ''}"
                 + (" (a GPU is faster; the figure is the CPU's)" if device.startswith("cuda") else "")
                 + f" (rough: a short calibration puts this machine's cores at {1 / slowdown:.2f}x the speed"
                 " of the reference box, where `make run` took ~4 min)")
    return lines


PROCESS_BASE_BYTES = 445 * 2**20
"""Resident memory of a generation process before its own data: Python, torch and the libraries
a run loads (video, PLY, SQLite). With TRAINING_WORKSPACE_FACTOR, fitted to two measured peaks
(/usr/bin/time -v, offline preset, 1 thread): 128x128 / 4 cameras 462 MiB at an estimate of
7.3 MB; the make-run scene (256x256, 12 cameras) 0.5-0.7 GB at an estimate of 67.9 MB (issue 21)."""
TRAINING_WORKSPACE_FACTOR = 2.3
"""Peak memory per byte of the training-state estimate: the rasteriser's and optimiser's
intermediate buffers come on top of the state itself (fitted with PROCESS_BASE_BYTES)."""


def stage_bytes(stage: StageMemory, network_bytes: int = 0) -> int:
    """Expected memory of one stage of a run besides the process: its training state (of which
    ``network_bytes`` are networks held on the CPU, which get no workspace factor) plus its
    workspace, counted (a NeRF's activations) or TRAINING_WORKSPACE_FACTOR times the state (a
    Gaussian rasteriser's)."""
    own = max(0, stage.state - network_bytes)
    if stage.workspace is None:
        return int(TRAINING_WORKSPACE_FACTOR * own + network_bytes)
    return int(own + stage.workspace + network_bytes)


def peak_rss_bytes(estimate: DiskEstimate, network_bytes: int = 0) -> int:
    """Expected peak resident memory of a run: the process and its largest stage (they run one
    after another)."""
    return int(PROCESS_BASE_BYTES + max(stage_bytes(st, network_bytes) for st in estimate.stages))
