"""The priors' tunables (offline stand-ins, classical fillers, depth networks, diffusion, the
refiner and its adapter), without torch.

They live here, apart from the networks that use them, so building a run's config (and
``generate --dry-run``) does not import torch; each prior's module imports its config back under
the old name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UserInputError


class DepthKind(enum.Enum):
    """What a depth network's output means."""

    METRIC = "metric"          # z-depth in metres / scene units
    RELATIVE = "relative"      # z-depth up to an unknown scale and shift
    DISPARITY = "disparity"    # inverse depth up to an unknown scale and shift


@dataclass(frozen=True)
class AdapterConfig:
    """Hyper-parameters of the render adapter and of its test-time training."""

    base_channels: int = 64
    """Hidden width at the first scale; later scales grow like the UNet's widths (x2, x4, ...)."""
    res_blocks_per_scale: int = 1
    """Residual conv blocks at each scale."""
    residual_scale: float = 1.0
    """Multiplier on every residual when injected (T2I-Adapter's conditioning scale)."""
    zero_init: bool = True
    """Zero-initialise the output projections: an untrained adapter changes nothing."""
    lr: float = 1e-4
    """AdamW learning rate of the adapter during test-time training."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip per training step (0 disables)."""
    init_seed: int = 0
    """Seed of the adapter's initial weights (its own generator: the same seed gives the same
    adapter whatever ran before in the process)."""
    train_batch_size: int = 1
    """Database views per training step (views in one step must share a size)."""
    train_crop: int = 0
    """Side in pixels of the random square crop each training step takes of its views, 0 = the
    whole view. Crops start at multiples of the adapter's required multiple (64 px for SD, its
    deepest residual's stride) and their side must be one, so the adapter sees the crop exactly
    as it sees that part of the whole view. A 256 px crop of a 512 px view runs the UNet's
    forward and backward at a quarter of the pixels (the fast presets use it)."""
    train_timestep_fraction: float = 1.0
    """Training timesteps are drawn uniformly from [0, fraction * num_train_timesteps)."""
    depth_near_quantile: float = 0.02
    """Quantile of valid rendered depth used as the 'near' depth when normalising disparity."""


@dataclass(frozen=True)
class OfflineRefinerConfig:
    """Tunables of the offline stand-in refiner."""

    opacity_low: float = 0.3
    """Opacity at or below which the render is not trusted at all."""
    opacity_high: float = 0.9
    """Opacity at or above which the render is fully trusted (smooth ramp in between)."""
    floater_depth_tolerance: float = 0.15
    """Relative depth disagreement (render vs warp) above which a rendered pixel is a floater."""
    keep_threshold: float = 0.995
    """Opacity at or above which rendered pixels are kept exactly (set above 1 to disable)."""
    seam_radius_px: int = 4
    """Window radius of the edge-aware seam filter, in pixels."""
    seam_edge_eps: float = 1e-3
    """Guided-filter regulariser: smaller follows image edges more closely, larger blurs more."""
    unknown_render_trust: float = 0.0
    """Factor on the trust in the render at pixels the warp does not know (``~local_known``): the
    render of space no support view saw is extrapolation (often floaters); 0 = take the local
    frame's inpainting there (the render is then never kept there either)."""
    consistency_weight: float = 1.0
    """Local consistency regularisation: on pixels the warp knows (``local_known``) the output
    moves this fraction of the way to the local frame (1 = the warped support content, which is
    sharper than a render of a partly fitted scene; 0 = keep the composite). The stand-in has no
    image prior to correct a blurry render, so the warp of real support pixels plays that role.
    ``ablation.consistency`` off sets it to 0 for the run."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity_low < self.opacity_high:
            raise UserInputError("OfflineRefinerConfig: need 0 <= opacity_low < opacity_high "
                                 f"(got {self.opacity_low}, {self.opacity_high})")
        if not 0.0 <= self.unknown_render_trust <= 1.0:
            raise UserInputError(f"OfflineRefinerConfig.unknown_render_trust: {self.unknown_render_trust} is not in [0, 1]")
        if not 0.0 <= self.consistency_weight <= 1.0:
            raise UserInputError(f"OfflineRefinerConfig.consistency_weight: {self.consistency_weight} is not in [0, 1]")
        if self.seam_radius_px < 0 or self.seam_edge_eps <= 0:
            raise UserInputError("OfflineRefinerConfig: seam_radius_px must be >= 0 and seam_edge_eps > 0")


@dataclass(frozen=True)
class ClassicalInpaintConfig:
    """Choice and tuning of the classical fills."""

    large_hole_radius: float = 4.0
    """A connected hole whose largest inscribed disc has at least this radius (pixels) is "large"
    and filled by PatchMatch; thinner ones (cracks, speckles) by OpenCV diffusion."""
    opencv_method: str = "telea"
    """OpenCV fill for thin holes: "telea" (fast marching) or "ns" (Navier-Stokes)."""
    opencv_radius: float = 3.0
    """Neighbourhood radius (pixels) of the OpenCV fill."""
    patch_size: int = 3
    """PatchMatch patch radius: patches of (2 * patch_size + 1)^2 pixels."""
    patchmatch_max_side: int | None = 256
    """PatchMatch runs on a crop around the large holes, downscaled so that its longer side is at
    most this many pixels (the fill is upscaled back; known pixels stay exact). None = full
    resolution (slower, sharper)."""
    crop_margin: int = 32
    """Known pixels kept around the large holes' bounding box as PatchMatch's source (pixels)."""


@dataclass(frozen=True)
class DepthCompletionConfig:
    """Background-biased depth completion."""

    foreground_ratio: float = 0.25
    """A candidate is background when its disparity is at most this fraction above the farthest
    candidate's (0.25: up to 25 % closer); closer candidates (the occluder) are ignored. Smaller
    values reject nearer occluders but flatten steep background slopes across a hole (the fill
    then leans to the far side of the slope); larger values interpolate slopes but let nearby
    occluders bleed in."""
    max_passes: int = 4
    """Passes of the directional search; pixels still unfilled take the farthest known depth."""


@dataclass(frozen=True)
class DepthNetworkConfig:
    """Settings of the real depth-network wrapper."""

    flip_average: bool = False
    """Also run the horizontally flipped image and average (ZoeDepth's test-time augmentation)."""
    kind: DepthKind | None = None
    """Override of the output kind; None = from the model (ZoeDepth and metric Depth Anything ->
    METRIC, relative Depth Anything / DPT -> DISPARITY)."""


@dataclass(frozen=True)
class DiffusionConfig:
    """Sampling settings shared by the Stable Diffusion text-to-image and inpainting wrappers."""

    num_inference_steps: int = 50
    """Denoising steps of the scheduler."""
    sampler: Literal["default", "lcm", "dpm-solver++"] = "default"
    """The scheduler every Stable Diffusion pipeline of the run samples with (first view,
    inpainting and the refiner): "default" = the model's own (PNDM / DDIM, 30-50 steps),
    "lcm" = latent-consistency sampling (needs the LCM-LoRA, priors.lora; 4 steps, guidance 1),
    "dpm-solver++" = DPM-Solver++ 2M (10-15 steps with guidance; no extra weights)."""
    guidance_scale: float = 7.5
    """Classifier-free guidance weight (1.0 disables guidance and halves the UNet work)."""
    negative_prompt: str = ""
    """Text the sample is steered away from (empty = unconditional)."""
    size_multiple: int = 8
    """Image sides the network accepts are multiples of this (SD's VAE downsamples by 8)."""
    working_long_side: int | None = None
    """If set, images are resized so their longer side is about this many pixels for the network
    (e.g. 512 for SD 1.5 / 2.1-base) and results resized back; None = the input size, rounded."""
    seam_feather_px: int = 8
    """Inpainting: width in pixels (at output size) over which the colour offset between the
    generated content and the known pixels around the hole fades out inside the hole."""


@dataclass(frozen=True)
class OracleDepthConfig:
    """How the oracle depth is corrupted: values = scale * depth * (1 + noise_std * n) + shift."""

    scale: float = 1.0
    """Unknown-to-the-pipeline scale applied to the exact z-depth (must be > 0)."""
    shift: float = 0.0
    """Unknown-to-the-pipeline shift added after scaling (scene units * scale)."""
    noise_std: float = 0.0
    """Standard deviation of multiplicative Gaussian noise (0.02 = 2 % of the depth)."""
    noise_seed: int = 0
    """Seed of the noise: mixed with each camera's pose (offline.camera_noise_seed), so every
    view gets its own noise and the same camera the same noise on every call."""

    @property
    def exact(self) -> bool:
        """True when the output is the exact metric depth (DepthKind.METRIC)."""
        return self.scale == 1.0 and self.shift == 0.0 and self.noise_std == 0.0


@dataclass(frozen=True)
class RefinerConfig:
    """Tunables of the diffusion refiner (and the parts the offline stand-in shares)."""

    strength: float = 0.5
    """Fraction of the denoising trajectory re-run from the noised render (0 = keep, 1 = redraw)."""
    num_inference_steps: int = 30
    """Scheduler steps of a full trajectory; about strength x this many are run."""
    guidance_scale: float = 7.5
    """Classifier-free guidance scale (<= 1 disables the unconditional pass)."""
    negative_prompt: str = ""
    """Negative prompt for classifier-free guidance."""
    consistency_weight: float = 0.5
    """Local consistency regularisation in [0, 1]: after each step, known-region latents move this
    fraction of the way to the local frame's latents noised to the same level (1 = RePaint
    replacement, 0 disables)."""
    consistency_steps_fraction: float = 0.8
    """Fraction of the run steps (from the first) that get the guidance; the rest let the model
    harmonise the seam."""
    keep_threshold: float = 0.995
    """Opacity at or above which rendered pixels are well observed and pasted back exactly
    (set above 1 to let the refiner change every pixel)."""
    seam_feather_px: int = 4
    """Width in pixels of the linear blend from pasted render pixels into the refined image."""
    fill_holes_with_local: bool = True
    """Start denoising from the render composited over the local frame (else from the raw render,
    whose holes are black)."""
    floater_depth_tolerance: float = 0.15
    """Relative depth disagreement (render vs warp) above which a rendered pixel is a floater."""
    use_adapter: bool = True
    """Ablation switch: False runs the frozen diffusion model without any adapter."""
    feature_channels: int = 0
    """F, the number of rendered feature channels the adapter reads (fixed per scene)."""
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    """The adapter's architecture and training hyper-parameters."""
    adapter_train_steps_per_view: int = 20
    """Adapter training steps the pipeline runs after each new view enters the database."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise UserInputError(f"RefinerConfig.strength: {self.strength} is not in [0, 1]")
        if not 0.0 <= self.consistency_weight <= 1.0:
            raise UserInputError(f"RefinerConfig.consistency_weight: {self.consistency_weight} is not in [0, 1]")
        if not 0.0 <= self.consistency_steps_fraction <= 1.0:
            raise UserInputError("RefinerConfig.consistency_steps_fraction: "
                                 f"{self.consistency_steps_fraction} is not in [0, 1]")
        if self.num_inference_steps < 1:
            raise UserInputError(f"RefinerConfig.num_inference_steps: {self.num_inference_steps} < 1")
        if self.feature_channels < 0 or self.seam_feather_px < 0:
            raise UserInputError("RefinerConfig: feature_channels and seam_feather_px must be >= 0")

