"""The tri-plane NeRF as a representation kind (the table entry is in registry.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .kind import RepresentationKind, RepresentationSize, RunShape, bake_seed, baked_size, no_growth
from .config import SamplingConfig, TriplaneConfig

if TYPE_CHECKING:       # create imports torch when called: the table itself stays torch-free
    from .triplane import TriplaneNeRF


def create(config: TriplaneConfig, views: list, device, camera_centres=None) -> TriplaneNeRF:
    """A fresh tri-plane NeRF whose contraction centre and radius are set from the views'
    cameras and depth and ``camera_centres`` (N, 3), the whole trajectory's camera positions
    (the bounded inner region holds the cameras and the content near them; the rest is
    contracted)."""
    from .triplane import TriplaneNeRF, bounds_from_views

    bounds = bounds_from_views(views, config.bounds_quantile, config.bounds_margin, camera_centres=camera_centres)
    return TriplaneNeRF.from_config(replace(config, center=bounds.center, radius=bounds.radius), device)


def parameter_bytes(config: TriplaneConfig) -> int:
    """float32 parameter bytes of a tri-plane NeRF: three planes of ``channels`` x resolution^2
    and the decoder MLP (hidden layers of hidden_width^2, the output heads)."""
    planes = 3 * config.resolution ** 2 * config.channels
    mlp = config.hidden_layers * config.hidden_width ** 2 + config.hidden_width * (config.channels + 4 + config.feature_dim)
    return 4 * (planes + mlp)


# ---- memory of the activations (float32 values per ray sample) -----------------------------------
# Counted from triplane.py and volume_rendering.py, then checked on the offline preset's defaults
# (256x256 views, 8 patches of 24 px = 4608 rays a step, 24 + 24 samples a ray, 16 channels, one
# hidden layer of 64, 16 features; 1 thread): the tensors a step saves for its backward pass with
# torch.autograd.graph.saved_tensors_hooks (distinct storages, parameters left out: 120.2 floats a
# sample; fit_saved_floats says 121; tests/pipeline/test_disk_budget.py repeats this count on tiny
# configs), and the peak of live bytes (glibc mallinfo2 read around every op a TorchDispatchMode
# sees, forward and backward) against the estimate: fit step 218 vs 223 MB; 16 patches 315 vs
# 331 MB; hidden width 128 369 vs 381 MB; 12 + 12 samples 124 vs 112 MB; 4 patches 128 vs 119 MB;
# a no-grad 256x256 render 171 vs 171 MB (32 channels 230 vs 225, hidden 128 272 vs 272 MB).

GRID_FLOATS = 6
"""grid_sample keeps its sampling grid for the backward pass: 3 planes x 2 coordinates."""
VOLUME_RENDERING_FLOATS = 15
"""Per-sample values volume rendering and the fitting losses keep for the backward pass besides
the field's own: the sigmoid colour (3), ten per-sample scalars (density, optical thickness,
alpha, transmittance, weights, bin lengths and midpoints, the distortion loss's sums), the
free-space loss's 1-byte mask, and per-ray values spread over the samples (saved_tensors_hooks
count: 14.2 on both the defaults and tiny configs; 15 bounds it)."""
POINT_FLOATS = 9
"""Per-sample floats of a no-grad render besides the field's tensors: the sample points and
their normalised and contracted coordinates (3 each)."""


def training_samples_per_ray(sampling: SamplingConfig) -> int:
    """Bins a training ray is rendered with: stratified_bins + 1 edges merged with guided_edges
    (volume_rendering.place_edges)."""
    return sampling.stratified_bins + max(0, sampling.guided_edges)


def eval_samples_per_ray(sampling: SamplingConfig) -> int:
    """Bins a ray is rendered with in eval mode (the bake, the distillation's extra views)."""
    return sampling.eval_stratified_bins + max(0, sampling.eval_guided_edges)


def mlp_input_width(config: TriplaneConfig) -> int:
    """Features the decoder MLP reads per sample: the summed (C) or concatenated (3C) planes."""
    return config.channels if config.combine == "sum" else 3 * config.channels


def fit_saved_floats(config: TriplaneConfig) -> int:
    """float32 values autograd saves per ray sample of a fitting step: the sampling grid, the
    MLP's input, every hidden layer's output (ReLU in place: one tensor, which the next Linear
    saves too), the MLP's output (4 + features: the features are a view of it that the weighted
    sum keeps), and volume rendering's and the losses' per-sample values."""
    return (GRID_FLOATS + mlp_input_width(config) + config.hidden_layers * config.hidden_width
            + 4 + config.feature_dim + VOLUME_RENDERING_FLOATS)


def fit_backward_floats(config: TriplaneConfig) -> int:
    """float32 values per ray sample the backward pass allocates at once on top of the saved
    ones, within one render chunk: the MLP output's gradient and two hidden-width gradients (the
    Linear's input gradient and ReLU's)."""
    return 4 + config.feature_dim + (2 * config.hidden_width if config.hidden_layers > 0 else 0)


def render_floats(config: TriplaneConfig) -> int:
    """float32 values per ray sample alive at once in a no-grad render's chunk: the larger of the
    plane lookup (grid, the 3 planes' C-vectors, their combination) and the MLP (its input, held
    by the caller throughout, plus one Linear's input and output: two hidden layers, or the last
    hidden layer and the output), plus the points and coordinates."""
    width, layers = config.hidden_width, config.hidden_layers
    lookup = GRID_FLOATS + 3 * config.channels + mlp_input_width(config)
    head = 4 + config.feature_dim
    mlp = mlp_input_width(config) + (width + max(width if layers > 1 else 0, head) if layers > 0 else head)
    return POINT_FLOATS + max(lookup, mlp)


def fit_workspace_bytes(config: TriplaneConfig, rays_per_step: int) -> int:
    """Activations of one fitting step of ``rays_per_step`` rays: what autograd saves for every
    sample of the step (each chunk's graph is kept until the backward pass) plus the backward
    pass's buffers for the largest chunk (render_chunk_rays)."""
    samples = training_samples_per_ray(config.sampling)
    chunk = min(rays_per_step, config.sampling.render_chunk_rays)
    return 4 * samples * (rays_per_step * fit_saved_floats(config) + chunk * fit_backward_floats(config))


def render_workspace_bytes(config: TriplaneConfig) -> int:
    """Activations of a no-grad render (bake, distillation views): one chunk of rays at a time."""
    return 4 * config.sampling.render_chunk_rays * eval_samples_per_ray(config.sampling) * render_floats(config)


def size(config: TriplaneConfig, shape: RunShape) -> RepresentationSize:
    """Fixed parameters; scene.ply holds the baked Gaussians (kind.baked_size). Memory stages:
    fitting (parameters, cached views and the per-sample activations of ``shape.rays_per_step``
    rays), no-grad renders, and the distillation of the baked Gaussians."""
    return baked_size(config.feature_dim, parameter_bytes(config), shape,
                      fit_workspace_bytes=fit_workspace_bytes(config, shape.rays_per_step),
                      render_workspace_bytes=render_workspace_bytes(config))


def describe(config: TriplaneConfig) -> str:
    return (f"tri-plane feature NeRF (3 x {config.channels} ch x {config.resolution}^2, "
            f"{config.feature_dim}-d features)")


KIND = RepresentationKind(
    name="triplane_nerf", cli_name="nerf", cls="scenedreamer.representation.triplane:TriplaneNeRF", config_class=TriplaneConfig,
    default_config=TriplaneConfig, describe=describe, create=create, grow=no_growth, size=size,
    seed_gaussians=bake_seed, export_method="baked from renders at the support cameras (representation/bake.py)")
