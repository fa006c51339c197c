"""The run configuration: every tunable of a generation run, with named presets.

A run's resolved config is saved as plain JSON (config_io) beside its outputs and loaded back by
``--resume``. Component configs belong to their layers; this file only gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ..config_io import check_config
from ..geometry.config import AlignConfig, ForwardWarpConfig, SeamConfig
from ..priors.config import (ClassicalInpaintConfig, DepthCompletionConfig, DepthNetworkConfig, DiffusionConfig,
                             OfflineRefinerConfig, OracleDepthConfig, RefinerConfig)
from ..priors.procedural.config import ProceduralWorldConfig
from ..representation.config import BakeConfig, DistillConfig, FitConfig, TriplaneConfig
from ..representation.registry import RepresentationConfig, kind_for_cli
from ..support.config import SupportConfig
from .prior_kinds import is_stand_in, photo_stand_in, renders_procedural_world


@dataclass(frozen=True)
class TrajectorySpec:
    """Which camera path to follow."""

    preset: str = "lookaround"
    """a trajectory preset name (see `scenedreamer trajectory --help`), used when `file` is empty"""
    file: str = ""
    """a nerfstudio transforms.json trajectory; overrides `preset` (its intrinsics are rescaled to the run's resolution)"""
    frames: int = 12
    """number of cameras generated along a preset path (views of the support database, besides the initial neighbours)"""
    fov_deg: float = 60.0
    """horizontal field of view of preset cameras, degrees"""
    params: dict = field(default_factory=dict)
    """preset parameters (degrees / scene units), e.g. {"yaw_deg": 60}"""


@dataclass(frozen=True)
class PriorsConfig:
    """Which networks (or offline stand-ins) play each role of the method."""

    text_to_image: str = "procedural"
    """first-view generator: "procedural" (offline stand-in) or a model preset / hub id / folder (e.g. sd2)"""
    inpainter: str = "oracle"
    """hole filler: "oracle" (procedural world renders the hole), "classical" (OpenCV/PatchMatch) or a model preset / hub id / folder"""
    depth: str = "oracle"
    """depth of new content: "oracle" (procedural world depth, optionally corrupted), "classical" (completed from the view's known depth, no network; not for a first view) or a model preset / hub id / folder (e.g. zoedepth)"""
    first_view_depth: str = "oracle-exact"
    """depth of the first view, which fixes the scene's metric scale: "" (same as `depth`), "oracle-exact" (the procedural world's exact metric depth, standing in for a metric network such as ZoeDepth), "oracle", or a model; later views are aligned to the scene, so they may use a relative network"""
    refiner: str = "offline"
    """3D-aware refiner: "offline" (composite stand-in) or a Stable Diffusion preset / hub id / folder whose UNet is frozen and adapted"""
    device: str = "auto"
    """torch device for networks and the representation: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ..."""
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    """weights/compute dtype of the diffusion, depth and CLIP networks: "auto" (fp16 on CUDA, bf16 on a CPU with fast bf16, else fp32; a run's config.json records what it resolved to), "fp32", "bf16", or "fp16" (refused on the CPU); the representation always trains in float32"""
    cpu_offload: bool = False
    """move diffusion sub-models to the GPU only while they run (for GPUs with little memory)"""
    attention_slicing: bool = False
    """compute attention in slices (less GPU memory, a little slower)"""
    sequential_offload: bool = False
    """stream each diffusion layer's weights to the GPU only while it runs (least GPU memory, several times slower than cpu_offload; excludes it)"""
    channels_last: bool = False
    """store the diffusion UNet's and VAE's convolution weights channels-last (NHWC); whether it is faster depends on the machine: measure with benchmarks/bench_real_architectures.py --channels-last"""
    lora: str = ""
    """a LoRA fused into every Stable Diffusion UNet of the run (e.g. "lcm-lora-sd15" for priors.diffusion.sampler = "lcm"): a preset, hub id or folder; "" = none"""
    tiny_vae: str = ""
    """a tiny autoencoder (AutoencoderTiny, e.g. "taesd") used in place of every Stable Diffusion pipeline's VAE for all encodes and decodes (the full VAE is then not loaded); "" = the pipeline's VAE"""
    offline: bool = True
    """never contact a model hub (weights must be in the local cache or a folder)"""
    world: ProceduralWorldConfig = field(default_factory=ProceduralWorldConfig)
    """the procedural world used by the offline stand-ins (also the accuracy ground truth)"""
    oracle_depth: OracleDepthConfig = field(default_factory=lambda: OracleDepthConfig(scale=0.7, shift=0.3, noise_std=0.01))
    """corruption of the oracle depth (an unknown scale, shift and noise, as a monocular network has) so that depth alignment is exercised"""
    classical: ClassicalInpaintConfig = field(default_factory=ClassicalInpaintConfig)
    """settings of the classical inpainter (inpainter = "classical")"""
    depth_completion: DepthCompletionConfig = field(default_factory=DepthCompletionConfig)
    """settings of the classical depth completion (depth = "classical")"""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """sampling settings of the Stable Diffusion first view and inpainting"""
    depth_network: DepthNetworkConfig = field(default_factory=DepthNetworkConfig)
    """settings of a real depth network"""
    cache_dir: str | None = None
    """Hugging Face cache folder for model presets and hub ids (None: the standard cache)"""
    variant: str | None = None
    """weight file variant of diffusers folders, e.g. "fp16" (None: plain files)"""

    def __post_init__(self) -> None:
        if self.cache_dir is None:      # nothing to check (and the loader's module imports torch)
            return
        from ..priors.loading import check_cache_dir

        check_cache_dir(self.cache_dir, "priors.cache_dir")


@dataclass(frozen=True)
class FirstViewConfig:
    """Start from the user's photo instead of the text-to-image prior (docs/usage/generate.md)."""

    image: str = ""
    """a photo (PNG, JPEG, ...) made the first view, scaled and centre-cropped to the run's resolution; "" = the text-to-image prior makes it"""
    depth: str = ""
    """the photo's z-depth in metres (.npy float, or a 16-bit PNG, see depth_png_scale), same size as the photo; "" = the first-view depth network estimates it"""
    depth_png_scale: float = 0.001
    """metres per unit of a 16-bit depth PNG (0.001: millimetres, as Kinect / NYU / ScanNet depth PNGs store it)"""
    max_upscale: float = 2.0
    """a photo that would have to be enlarged more than this many times to cover the resolution is refused (enlarging only blurs)"""


@dataclass(frozen=True)
class InitConfig:
    """Scene context initialisation (docs/method.md part a)."""

    neighbour_yaws_deg: tuple[float, ...] = (-20.0, 20.0)
    """yaw offsets (degrees, about the first camera's vertical axis) of the neighbour cameras filled by warp + inpaint"""
    neighbour_pitches_deg: tuple[float, ...] = ()
    """pitch offsets (degrees) of further neighbour cameras"""
    neighbour_shift: float = 0.0
    """sideways translation (scene units) of each yawed neighbour, in the direction of its yaw"""
    first_view_median_depth: float = 4.0
    """median z-depth (scene units) given to a first view whose depth network is not metric"""
    fit_steps: int = 150
    """representation fitting iterations after the initial support views are in"""


@dataclass(frozen=True)
class ProgressiveConfig:
    """Progressive generation along the trajectory (docs/method.md parts c, d)."""

    neighbours: int = 4
    """support views warped into each new camera for its local (warp + inpaint) frame"""
    fit_steps_per_view: int = 40
    """representation fitting iterations after each new view"""
    adapter_views: int = 4
    """support views (replay-sampled) rendered as the adapter's training pairs after each new view; the number of adapter steps is refiner.adapter_train_steps_per_view"""
    unseen_opacity: float = 0.5
    """a rendered pixel with opacity below this counts as unseen (new content)"""
    render_depth_tolerance: float = 0.0
    """the rendered depth is used for a warp-known pixel only if it is within this relative distance of the warped depth (else the render shows a floater there and the warped depth is used). 0 (default): known pixels always keep the warped depth of the support views. The render's depth is alpha-composited over a surface's Gaussians and comes out about 1 % short; a walk that stores it at every view and fits the next view to it shrinks step by step (measured on a 90-view side walk: stored depth 25 % short at view 55 with 0.05; docs/design.md)"""
    grow_covered_tolerance: float | None = None
    """with a number (0.1 is a good start), a new pixel adds a Gaussian only where the world lacks its content: where the scene's render before the view (opacity at least `unseen_opacity`) already shows a surface within this relative distance of the pixel's new depth, the fit adjusts the Gaussians there instead (a re-inpainted stretch of sky, say, which the sky Gaussians already cover). None (the default): every new, valid pixel adds one. With warp.sight_clearance on, re-inpainted pixels then duplicate what the world holds and a long walk's Gaussians and seconds per view grow (731k Gaussians at view 200 against 507k at view 213 with 0.1); with the rule off few new pixels are covered, and 0.1 cost 0.14 dB of scene.ply on a 60-view side walk (25.69 against 25.83 dB, 14 % fewer Gaussians), so it is off by default (BENCHMARKS.md, issue 23)"""
    occlusion_margin: float = 0.05
    """new points closer than (1 - margin) x an earlier view's depth would occlude it and are dropped"""
    max_hole_fraction_warn: float = 0.6
    """log a warning when more than this fraction of a new view is unseen: neither rendered (opacity below `unseen_opacity`) nor carried by the warp of a support view (too big a camera step)"""
    active_views: int = 16
    """a long world's steps work on an active set (docs/design.md "Long worlds"): the new camera's this many best-overlapping support views, and the Gaussians they see; the other Gaussians are frozen on disk. 0 = every step fits the whole world"""
    active_after_views: int = 64
    """the active set starts once the world holds more than this many support views (shorter runs fit the whole world at every step)"""


@dataclass(frozen=True)
class AblationConfig:
    """Switches for the method's ablations; all on is the full method."""

    refinement: bool = True
    """run the 3D-aware refiner (off: the local warp + inpaint frame is the new view)"""
    adapter: bool = True
    """inject rendered 3D features through the trained adapter (off: plain img2img refinement)"""
    replay: bool = True
    """replay old support views when updating the representation (off: fit the newest views only)"""
    consistency: bool = True
    """local consistency regularisation of the refiner by the warp + inpaint frame"""


@dataclass(frozen=True)
class ExportConfig:
    """What a finished run writes besides the support database."""

    video: bool = True
    """render video.mp4 along the trajectory"""
    video_frames_per_view: int = 7
    """video frames per trajectory camera (poses interpolated between cameras, not repeated);
    7 at 12 fps makes the default 12-camera path a 6.5 s video (issue 21: at least 6 s to watch)"""
    fps: int = 12
    """video frame rate"""
    ply: bool = True
    """write scene.ply in the standard 3DGS layout (baked from the NeRF when that is the representation)"""
    bake: BakeConfig = field(default_factory=lambda: BakeConfig(stride=2))
    """how a NeRF is baked into Gaussians for scene.ply (from renders at the support cameras)"""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """how the exported Gaussians (baked, or the run's own) are fitted to the support views, NeRF
    renders between them and a sky shell before scene.ply is written"""
    video_source: Literal["scene_ply", "representation"] = "scene_ply"
    """render video.mp4 from the exported Gaussians (what users get; fast) or the representation"""
    nerfstudio: bool = True
    """write transforms.json + images/ + depths/ of the support views"""


@dataclass(frozen=True)
class GenerateConfig:
    """Everything a `scenedreamer generate` run needs besides the output folder."""

    prompt: str = "a forest lake at sunset"
    """the scene description"""
    preset: str = "offline"
    """the named preset this config started from (informational)"""
    seed: int = 0
    """random seed: same seed and config, same scene"""
    width: int = 256
    """image width of every view, pixels"""
    height: int = 256
    """image height of every view, pixels"""
    trajectory: TrajectorySpec = field(default_factory=TrajectorySpec)
    """the camera path"""
    first_view: FirstViewConfig = field(default_factory=FirstViewConfig)
    """a photo (and optionally its depth) to start from instead of the text-to-image prior"""
    priors: PriorsConfig = field(default_factory=PriorsConfig)
    """networks or offline stand-ins"""
    representation: RepresentationConfig = field(default_factory=TriplaneConfig)
    """the unified 3D representation, chosen by its "type" (the config class of a kind in
    representation/registry.py): TriplaneConfig (the method's tri-plane NeRF) or GaussianConfig"""
    fit: FitConfig = field(default_factory=FitConfig)
    """fitting of the representation to the support database"""
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    """diffusion refiner + adapter (used when priors.refiner is a diffusion model)"""
    offline_refiner: OfflineRefinerConfig = field(default_factory=OfflineRefinerConfig)
    """the refiner stand-in (used when priors.refiner is "offline")"""
    warp: ForwardWarpConfig = field(default_factory=ForwardWarpConfig)
    """forward warp (depth-based rendering) of support views into new cameras"""
    align: AlignConfig = field(default_factory=AlignConfig)
    """scale/shift alignment of estimated depth to known depth"""
    seams: SeamConfig = field(default_factory=SeamConfig)
    """seam compensation where new geometry meets known geometry"""
    init: InitConfig = field(default_factory=InitConfig)
    """scene context initialisation"""
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    """progressive generation along the trajectory"""
    ablation: AblationConfig = field(default_factory=AblationConfig)
    """component switches"""
    support: SupportConfig = field(default_factory=SupportConfig)
    """the support database: view storage, neighbour ranking, replay, nerfstudio export"""
    export: ExportConfig = field(default_factory=ExportConfig)
    """run outputs"""

    def __post_init__(self) -> None:
        # checked here, where every config is built (presets, --set, a saved config.json, a batch
        # line), so a bad value fails before a run folder exists, not after step 0 committed
        from ..errors import UserInputError
        from ..geometry.trajectory_presets import check_prompt

        if not self.prompt.strip():
            raise UserInputError("prompt: empty; describe the scene, e.g. \"a forest lake at sunset\"")
        check_prompt("prompt", self.prompt)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UserInputError(f"seed: {self.seed!r} is not an integer in [0, 2^63)")
        if self.ablation.refinement and not self.ablation.adapter and is_stand_in(self.priors.refiner):
            raise UserInputError("--no-adapter: the offline refiner has no adapter, so this ablation would "
                                 "change nothing; ablate the adapter with a diffusion refiner (--preset sd15 or sd2)")
        for name in ("width", "height"):
            size = getattr(self, name)
            if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
                raise UserInputError(f"{name}: {size!r} pixels; expected an integer from 8 to 4096")
        # every numeric / named-choice setting against its bound (pipeline/config_bounds.py),
        # named by the dotted key the user typed (--set init.fit_steps=-5 -> "init.fit_steps: ...")
        check_config(self)
        check_first_view(self)

    @property
    def procedural_world_run(self) -> bool:
        """True when the procedural world made the first view: its exact images and depth are then
        the scene's ground truth (eval); a photo start has none."""
        return renders_procedural_world(self.priors.text_to_image) and not self.first_view.image


def check_first_view(config: GenerateConfig) -> None:
    """UserInputError unless a photo start (config.first_view) can run with config.priors: the
    first view's depth must come from the given map or a real network, and no role may be the
    procedural world's oracle (it would paint its own world into the photo's holes)."""
    from ..errors import UserInputError

    fv, pc = config.first_view, config.priors
    if fv.depth and not fv.image:
        raise UserInputError("--image-depth (first_view.depth) needs --image: it is the depth of that photo")
    if not fv.image:
        return
    first_depth = pc.first_view_depth or pc.depth
    if not fv.depth and is_stand_in(first_depth):        # no stand-in estimates a photo's depth
        raise UserInputError(f"--image {fv.image}: preset {config.preset!r} has no depth network for a photo "
                             "(its depth stand-in knows only the procedural world); give the photo's depth with "
                             "--image-depth PATH (metres), or use --preset sd15 or sd2 (ZoeDepth estimates it)")
    for role in ("inpainter", "depth"):          # (the refiner stand-in knows no world: it composites)
        if renders_procedural_world(getattr(pc, role)):
            raise UserInputError(f"--image {fv.image}: priors.{role} {getattr(pc, role)!r} renders the procedural "
                                 "world, not your photo; use \"classical\" or a model")


def with_first_view_image(config: GenerateConfig, image: str, depth: str = "") -> GenerateConfig:
    """``config`` starting from the photo ``image`` (and its depth map ``depth``, metres).

    Roles the procedural world played are handed to network-free methods that work on any picture:
    holes by the classical inpainter, new depth by completion from the known depth. Roles played
    by real networks stay as they are. Validation happens when the result is built (check_first_view).
    """
    pc = config.priors
    # ("" for the first view's depth: the given depth map, or, without one, refused as above)
    swaps = {role: photo_stand_in(role) for role in ("inpainter", "depth", "first_view_depth")
             if renders_procedural_world(getattr(pc, role))}
    return replace(config, first_view=replace(config.first_view, image=image, depth=depth),
                   priors=replace(pc, **swaps))


OFFLINE_REPRESENTATION = "gaussians"
"""The offline preset's own representation (its --representation name)."""
OFFLINE_GAUSSIAN_STEPS = {"init": 80, "per_view": 20, "distill": 60}
"""Fitting steps of the offline preset's default (Gaussians): scene initialisation, each new
view, and the scene.ply distillation (at least DistillConfig.steps_per_view, 5, per support view,
so a longer path distils longer: 70 for the make-run scene's 14 views since 2026-12-08). Chosen
on the `make run` scene (BENCHMARKS.md, issue 9):
2 min 27 s end to end with scene.ply at 30.7 dB mean / 29.6 dB worst against the support views
and 29.3 dB half-way between cameras, where the NeRF defaults (150 / 40 / 300 steps) took
6 min 13 s with Gaussians (32.1 / 30.2 / 29.9 dB) and over 10 min with the NeRF."""


def _offline(representation: str | None = None) -> GenerateConfig:
    """The offline preset. Its default representation is 3D Gaussians with the step counts
    above (the make-run budget); another ``--representation`` name (e.g. "nerf", the method's
    tri-plane NeRF) gives that kind's default config with the base (longer) step counts."""
    base = GenerateConfig(preset="offline")
    if representation not in (None, OFFLINE_REPRESENTATION):
        return replace(base, representation=kind_for_cli(representation).default_config())
    return replace(base, representation=kind_for_cli(OFFLINE_REPRESENTATION).default_config(),
                   init=replace(base.init, fit_steps=OFFLINE_GAUSSIAN_STEPS["init"]),
                   progressive=replace(base.progressive, fit_steps_per_view=OFFLINE_GAUSSIAN_STEPS["per_view"]),
                   export=replace(base.export, distill=replace(base.export.distill,
                                                               steps=OFFLINE_GAUSSIAN_STEPS["distill"])))


def _sd(name: str, model: str, inpaint: str, size: int) -> GenerateConfig:
    return GenerateConfig(
        preset=name, width=size, height=size,
        priors=PriorsConfig(text_to_image=model, inpainter=inpaint, depth="zoedepth", first_view_depth="", refiner=model),
    )


FAST_STEPS = {"lcm": 4, "dpm-solver++": 12}
"""Denoising steps of the fast presets' samplers: LCM-LoRA is distilled for 2-8 steps (4 is
its model card's setting); DPM-Solver++ 2M reaches the quality of 50 DDIM steps at 10-20."""
FAST_ADAPTER_STEPS = 4
"""Adapter training steps per view of the fast presets (the full method keeps the adapter: each
step is a UNet forward and backward, the costliest thing after sampling; 20 in the plain presets)."""
FAST_ADAPTER_CROP = 256
"""Pixels of the square crop a fast preset's adapter trains on (AdapterConfig.train_crop): at
512x512 the whole view made the 44 training steps of a 12-camera sd15-fast run 257 s of its
1098 s on a 2-core CPU (~7.5 s each, BENCHMARKS.md); the adapter is convolutional, so a crop
teaches it the same mapping at a quarter of the UNet's pixels."""


def _sd_fast(name: str, model: str, inpaint: str, sampler: str, lora: str,
             representation: str | None) -> GenerateConfig:
    """A fast preset: the plain preset's models with few-step sampling (``sampler``; guidance
    off for the distilled LCM sampler), the tiny autoencoder TAESD for every encode / decode,
    Depth Anything V2 Small for depth, and 3D Gaussians with the offline preset's step counts
    (docs/usage/models.md says why each)."""
    base = _sd(name, model, inpaint, 512)
    steps = FAST_STEPS[sampler]
    guidance = 1.0 if sampler == "lcm" else base.priors.diffusion.guidance_scale
    gaussians = _offline(representation)
    priors = replace(base.priors, depth="depth-anything-v2-small", lora=lora, tiny_vae="taesd",
                     diffusion=replace(base.priors.diffusion, sampler=sampler, num_inference_steps=steps,
                                       guidance_scale=guidance))
    # the refiner runs strength x its steps: 2 x the sampler's steps at the default strength 0.5
    refiner = replace(base.refiner, num_inference_steps=2 * steps, guidance_scale=guidance,
                      adapter_train_steps_per_view=FAST_ADAPTER_STEPS,
                      adapter=replace(base.refiner.adapter, train_crop=FAST_ADAPTER_CROP))
    return replace(base, priors=priors, refiner=refiner, representation=gaussians.representation,
                   init=gaussians.init, progressive=gaussians.progressive, export=gaussians.export)


PRESETS = {
    "offline": _offline,
    "sd15": lambda representation=None: _sd("sd15", "sd15", "sd15-inpaint", 512),
    "sd2": lambda representation=None: _sd("sd2", "sd2", "sd2-inpaint", 512),
    "sd15-fast": lambda representation=None: _sd_fast("sd15-fast", "sd15", "sd15-inpaint", "lcm",
                                                      "lcm-lora-sd15", representation),
    # no LCM-LoRA exists for SD 2.1: DPM-Solver++ at 12 steps with guidance, no extra weights
    "sd2-fast": lambda representation=None: _sd_fast("sd2-fast", "sd2", "sd2-inpaint", "dpm-solver++", "",
                                                     representation),
}
"""Named starting points, each a function of the representation asked for (None = the preset's
own: Gaussians for `offline`, the tri-plane NeRF for the diffusion presets). `offline` needs no
downloaded weights (procedural world stand-ins)."""


def preset_config(name: str, representation: str | None = None) -> GenerateConfig:
    """The GenerateConfig of a named preset (UserInputError for an unknown name). A preset may
    tune its settings to the representation (a ``--representation`` name of
    representation/registry.py, "nerf" or "gaussians"; None = the preset's own)."""
    from ..errors import UserInputError

    if name not in PRESETS:
        raise UserInputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name](representation)


def _register_bounds() -> None:
    """Load the table of accepted values (pipeline/config_bounds.py); done last, as it names the
    classes above."""
    from importlib import import_module

    import_module(".config_bounds", __package__)


_register_bounds()
