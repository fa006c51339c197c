"""The representations' tunables (Gaussians and their densification, the tri-plane NeRF and its
ray sampling, fitting, baking and distillation), without torch.

They live here, apart from the modules that use them, so building a run's config (and
``generate --dry-run``) does not import torch; each module imports its config back under the
old name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import UserInputError
from .rasterize.config import RasterConfig


@dataclass(frozen=True)
class DensifyConfig:
    """When and how to densify and prune (steps are the fitting loop's global steps)."""

    enabled: bool = True
    """Turn adaptive density control on/off (statistics are still cheap to keep)."""
    start_step: int = 500
    """No densification before this step (let positions settle first)."""
    stop_step: int = 15_000
    """No densification from this step on."""
    every: int = 100
    """Densify/prune every this many steps between start_step and stop_step."""
    grad_threshold: float = 2e-4
    """Grow Gaussians whose mean screen-space gradient norm (in NDC-like units: pixels divided by
    half the image size, as gsplat) exceeds this."""
    grow_scale_relative: float = 0.01
    """Gaussians whose largest scale is at most this fraction of the scene extent are duplicated,
    bigger ones are split."""
    split_scale_divisor: float = 1.6
    """A split Gaussian's children get the parent's scales divided by this (3DGS value)."""
    prune_opacity: float = 0.005
    """Gaussians with opacity below this are removed."""
    prune_scale_relative: float = 0.1
    """After the first opacity reset, Gaussians larger than this fraction of the extent are removed."""
    reset_opacity_every: int = 3000
    """Every this many steps, opacities are clamped down to reset_opacity_value (0 = never)."""
    reset_opacity_value: float = 0.01
    """The opacity ceiling applied at a reset."""
    reset_recovery_steps: int = 1000
    """A reset is applied only when the fit call that reaches it has at least this many steps
    left: opacities take hundreds of steps to climb back from reset_opacity_value (3DGS leaves
    3000 after each reset). The progressive loop's per-view fits (tens of steps) therefore never
    reset: one that did left the scene nearly transparent at the next camera, whose view was
    then made from warps alone, and a run ending soon after one exported a transparent scene."""
    max_gaussians: int = 3_000_000
    """Growth stops at this many Gaussians (memory bound)."""
    seed: int = 0
    """Seed of the split sampling when the caller passes no generator."""


@dataclass(frozen=True)
class GaussianConfig:
    """3D Gaussian scene: appearance model, initialisation, learning rates, rendering, density."""

    sh_degree: int = 0
    """Spherical-harmonic degree of the colour (0..3). 0 = view-independent colour, our default:
    generated views disagree a little, and view dependence would absorb that as flicker."""
    feature_dim: int = 0
    """Length of the per-Gaussian feature vector rendered for the refinement adapter (0 = none)."""
    init_stride: int = 1
    """from_views/add_from_view put one Gaussian on every init_stride-th pixel (per axis)."""
    init_scale_factor: float = 0.5
    """Initial std-dev = this x (pixel footprint at the point's depth) x init_stride."""
    init_opacity: float = 0.9
    """Opacity of new Gaussians (views are reproduced best with nearly opaque splats)."""
    init_flatness: float = 0.1
    """New Gaussians are flat discs on the depth map's surface: thickness = this x their size
    (1 = isotropic). Flat splats keep depth sharp where a surface is seen at a grazing angle."""
    init_min_cos: float = 0.2
    """A disc's size is divided by cos(view angle), at least this, to still cover its pixel."""
    init_max_jump_pixels: float = 20.0
    """Neighbour points farther apart than this many pixel footprints mark a depth edge: no
    normal there, the disc faces the camera instead."""
    lr_means: float = 1.6e-4
    """Adam learning rate of the centres, times the scene extent (3DGS value)."""
    lr_log_scales: float = 5e-3
    """Adam learning rate of the log scales."""
    lr_quats: float = 1e-3
    """Adam learning rate of the quaternions."""
    lr_opacity_logits: float = 5e-2
    """Adam learning rate of the opacity logits."""
    lr_sh0: float = 2.5e-3
    """Adam learning rate of the DC colour."""
    lr_shN: float = 2.5e-3 / 20
    """Adam learning rate of the higher SH coefficients (3DGS: DC rate / 20)."""
    lr_features: float = 2.5e-3
    """Adam learning rate of the feature vectors."""
    depth_opacity_eps: float = 1e-4
    """Below this rendered opacity the reported depth is 0 (nothing visible), as the NeRF does."""
    raster: RasterConfig = field(default_factory=RasterConfig)
    """How Gaussians are rasterized (backend, tiles, thresholds)."""
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    """Adaptive density control schedule (post_step)."""

    def __post_init__(self) -> None:
        if not 0 <= self.sh_degree <= 3:
            raise UserInputError(f"GaussianConfig.sh_degree must be 0..3, got {self.sh_degree}")
        if self.feature_dim < 0:
            raise UserInputError(f"GaussianConfig.feature_dim must be >= 0, got {self.feature_dim}")
        if self.init_stride < 1:
            raise UserInputError(f"GaussianConfig.init_stride must be >= 1, got {self.init_stride}")


@dataclass(frozen=True)
class SamplingConfig:
    """How many samples go where along each ray. Distances are in units of the scene radius."""

    near: float = 0.02
    """Closest sampled z-depth, in scene radii."""
    far: float = 200.0
    """Farthest sampled z-depth, in scene radii (with contraction the far region is cheap)."""
    linear_range: float = 2.0
    """Stratified samples are uniform in depth up to this many scene radii, uniform in disparity beyond."""
    stratified_bins: int = 24
    """Stratified bins per ray over [near, far] (empty and unseen space)."""
    guided_edges: int = 24
    """Extra edges per ray near the surface: in the depth-hint band, or drawn by importance."""
    guide_relative_width: float = 0.04
    """Half-width of the depth-hint band as a fraction of the hinted depth."""
    guide_min_width: float = 0.01
    """Smallest half-width of the depth-hint band, in scene radii."""
    free_space_margin: float = 0.08
    """Relative margin in front of a hinted depth that the free-space loss leaves alone."""
    importance_without_hint: bool = True
    """Rays without a depth hint place their guided edges by a coarse no-grad pass's weights."""
    importance_blur: float = 0.01
    """Uniform share mixed into the importance pdf so empty-looking rays still sample everywhere."""
    eval_stratified_bins: int = 48
    """Stratified bins per ray when rendering in eval mode (novel views have no depth hint)."""
    eval_guided_edges: int = 48
    """Guided/importance edges per ray in eval mode."""
    render_chunk_rays: int = 4096
    """Rays per chunk in render(): bounds memory for large images."""


@dataclass(frozen=True)
class TriplaneConfig:
    """Everything needed to build (and rebuild from a checkpoint) a TriplaneNeRF."""

    resolution: int = 128
    """Side of each square feature plane, in texels."""
    channels: int = 16
    """Feature channels per plane."""
    combine: str = "sum"
    """How the three plane features are combined: "sum" (C inputs to the MLP) or "concat" (3C)."""
    hidden_width: int = 64
    """Width of the decoder MLP's hidden layers."""
    hidden_layers: int = 1
    """Number of hidden layers of the decoder MLP."""
    feature_dim: int = 16
    """Width of the decoded feature vector (rendered as RenderOutput.features)."""
    plane_init_std: float = 0.1
    """Standard deviation of the random initial plane features."""
    density_bias: float = -1.0
    """Added to the raw density before softplus: the initial scene is nearly empty."""
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """World centre of the scene's inner (uncontracted) region, scene units."""
    radius: float = 1.0
    """Radius of the inner region, scene units; beyond it space is contracted."""
    bounds_quantile: float = 0.3
    """When a run sets centre and radius from its first views (``bounds_from_views``): the radius
    is this quantile of the surface points' and cameras' distances to the centre, ..."""
    bounds_margin: float = 1.5
    """... times this margin. A low quantile keeps grazing ground, far backgrounds and sky in the
    contracted region so the planes' resolution goes to content near the cameras."""
    contraction: bool = True
    """Contract space beyond the radius (unbounded outdoor scenes); off: the cube [-radius, radius]^3."""
    contraction_norm: str = "inf"
    """Norm of the contraction: "inf" (fills the planes' square) or "l2" (mip-NeRF 360)."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Ray sampling plan (stratified + depth-guided + importance)."""
    lr_planes: float = 2e-2
    """Adam learning rate of the feature planes."""
    lr_mlp: float = 5e-3
    """Adam learning rate of the decoder MLP."""

    def __post_init__(self) -> None:
        if self.combine not in ("sum", "concat"):
            raise ValueError(f"TriplaneConfig.combine must be 'sum' or 'concat', got {self.combine!r}")
        if self.resolution < 2 or self.channels < 1 or self.radius <= 0:
            raise ValueError("TriplaneConfig: resolution >= 2, channels >= 1 and radius > 0 are required")
        if not (0.0 < self.bounds_quantile <= 1.0 and self.bounds_margin > 0):
            raise ValueError("TriplaneConfig: bounds_quantile must be in (0, 1] and bounds_margin > 0")
        object.__setattr__(self, "center", tuple(float(c) for c in self.center))


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of the fitting loop (no feature loss: the defaults need no extra inputs)."""

    patch_size: int = 24
    """Side of the square training patches, pixels (clipped to the smallest view)."""
    patches_per_step: int = 8
    """Patches (one per chosen view) rendered per optimisation step."""
    replay_fraction: float = 0.5
    """Share of patches drawn by database.sample_replay when view_ids are given (old views)."""
    l1_weight: float = 1.0
    """Weight of the L1 colour loss."""
    ssim_weight: float = 0.2
    """Weight of the (1 - SSIM) colour loss."""
    ssim_window: int = 7
    """SSIM Gaussian window size, pixels (must not exceed patch_size)."""
    depth_weight: float = 0.5
    """Weight of the relative L1 depth loss on pixels with known depth."""
    inpainted_weight: float = 0.5
    """Per-pixel loss weight of inpainted/generated pixels (original content has weight 1)."""
    opacity_weight: float = 0.01
    """Weight of the loss pushing valid pixels to full opacity (every real pixel is a surface)."""
    distortion_weight: float = 0.001
    """Weight of the mip-NeRF 360 distortion loss (compact weights, fewer floaters)."""
    free_space_weight: float = 1.0
    """Weight of the line-of-sight loss: rendering weight in front of a known surface depth."""
    tv_weight: float = 0.0
    """Weight of the total-variation loss on the representation's feature planes."""
    use_depth_hint: bool = True
    """Pass each patch's known depth to render() as its depth_hint (depth-guided sampling)."""
    lr_scale: float = 1.0
    """Multiplies every parameter group's base learning rate."""
    warmup_steps: int = 10
    """Linear learning-rate warmup at the start of each fit() call, steps."""
    lr_final_ratio: float = 0.1
    """Learning rate at the end of a call relative to its base (exponential decay in between)."""
    adam_eps: float = 1e-15
    """Adam epsilon (tiny: grid features get small, sparse gradients)."""
    background: tuple[float, float, float] | None = None
    """Colour composited behind the scene while fitting; None: black."""
    check_gradients: bool = True
    """Also refuse non-finite gradients (so a bad step never reaches the parameters)."""
    log_every: int = 10
    """Emit a progress event every this many steps (and at the last step)."""
    max_cached_views: int = 64
    """Support views kept in memory during a call (database reads are cached)."""


@dataclass(frozen=True)
class BakeConfig:
    """How a representation is sampled into Gaussians."""

    min_opacity: float = 0.5
    """Pixels whose rendered opacity is below this are dropped (sky, holes, floaters' fringes)."""
    stride: int = 1
    """Use every stride-th rendered pixel per axis."""
    voxel_size: float = 0.0
    """Edge of the dedupe voxels in scene units; 0 = automatic (see voxel_footprint_factor)."""
    voxel_footprint_factor: float = 1.0
    """Automatic voxel size = this x the median pixel footprint (depth / focal x stride)."""
    scale_factor: float = 0.5
    """Gaussian size = this x max(voxel size, the smallest pixel footprint merged into it); the
    Gaussians are flat discs on the rendered surface (config.gaussians.init_flatness etc.)."""
    render_batch: int = 1
    """Cameras rendered per call (memory vs. speed)."""
    gaussians: GaussianConfig = field(default_factory=GaussianConfig)
    """Config of the produced scene (its feature_dim is set to the representation's)."""


@dataclass(frozen=True)
class DistillConfig:
    """How exported Gaussians are fitted after the bake."""

    steps: int = 300
    """Fitting steps after the bake (0 = export the bake as is); at least ``steps_per_view``
    per support view (``steps_for``)."""
    steps_per_view: float = 5.0
    """The distillation runs at least this many steps per support view: a step fits
    ``fit.patches_per_step`` patches of random views, so a fixed count spreads thinner over a
    larger world (60 steps over 302 views gave each view under one patch). Measured on a
    60-view walk: 60 steps 26.4 dB, 300 steps 27.7 dB (BENCHMARKS.md, issue 23). The offline
    preset asks for 60 steps; its make-run scene's 14 support views get 70."""
    densify: bool = False
    """Let the distillation densify and prune on the Gaussians' schedule (densify.start_step
    500, every 100 steps). Off: it polishes the seed's Gaussians (the fitted ones plus the sky
    shell) and adds none. A distillation of more than 500 steps (worlds of over 100 views at 5
    steps a view) reached that schedule: the 300-view benchmark's 1510 steps grew 472k Gaussians
    to 1.64M, a scene.ply of blurred blobs in front of every camera (15.7 dB at its support
    views); a 60-view walk's scene.pt distilled 1000 steps scored 28.6 dB with it (181k
    Gaussians) and 29.2 dB without (114k; 27.7 at 300 steps) (BENCHMARKS.md, issue 23)."""
    extra_views_per_gap: int = 1
    """Source-representation renders added between consecutive support cameras (0 = none)."""
    sky: bool = True
    """Add a shell of far Gaussians for the sky pixels (valid and backdrop) of the support views."""
    sky_stride: int = 4
    """One sky Gaussian per sky_stride x sky_stride support pixels."""
    sky_radius_factor: float = 4.0
    """Sky shell radius >= this x the larger of the farthest support depth that is not backdrop
    and the support cameras' largest distance from their centre (scene units)."""
    sky_parallax_pixels: float | None = None
    """When set, sky shell radius >= what keeps a shell point within this many pixels of where
    any other support camera sees its direction (a sky infinitely far, as support views whose
    skies agree as directions show it; distill.shell_radius). Off by default: the local frames
    warp the sky at its stand-in depth, so a walk's support skies agree with a nearer shell
    (measured: a 120-view walk's scene.ply 26.4 dB with the shell at 4x the far depth, 26.1 dB
    at 25x, 25.8 dB at 1 px)."""
    sky_scale_factor: float = 1.0
    """Sky Gaussian std-dev = this x sky_stride x the pixel footprint at the shell."""
    fit: FitConfig = field(default_factory=lambda: FitConfig(
        patch_size=64, patches_per_step=4, replay_fraction=0.0, depth_weight=0.1, opacity_weight=0.0,
        inpainted_weight=1.0, warmup_steps=10, lr_final_ratio=0.1))
    """Fitting loop settings: large patches (SSIM context; few Gaussians per pixel after the
    bake), weak depth term (the geometry is the bake's; colour decides), generated pixels count
    fully (they are the scene the user got)."""

    def steps_for(self, views: int) -> int:
        """Distillation steps for a world of ``views`` support views: ``steps``, or
        ceil(steps_per_view x views) when that is more (``steps`` 0 stays 0: no distillation)."""
        if self.steps <= 0:
            return 0
        return max(self.steps, math.ceil(self.steps_per_view * views))
