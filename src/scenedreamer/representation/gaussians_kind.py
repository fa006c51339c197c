"""3D Gaussians as a representation kind (the table entry is in registry.py)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

from .config import GaussianConfig
from .rasterize.config import RasterConfig
from .kind import (MemoryStage, RepresentationKind, RepresentationSize, RunShape, densified_count, floats_per_gaussian,
                   pixels_at_stride)

if TYPE_CHECKING:       # the hooks import torch when called: the table itself stays torch-free
    from .gaussians import GaussianScene


def default_config() -> GaussianConfig:
    """3D Gaussians as the pipeline uses them: one Gaussian per 2x2 pixels of each support view
    (one per pixel quadruples the count and made CPU fitting ~5x slower for no visible gain)."""
    return GaussianConfig(init_stride=2)


def create(config: GaussianConfig, views: list, device, camera_centres=None) -> GaussianScene:
    """One Gaussian per valid pixel of the views (every config.init_stride-th per axis)."""
    import torch

    from ..geometry.cameras import Cameras
    from .gaussians import GaussianScene

    cams = Cameras(torch.stack([v.K for v in views]), torch.stack([v.c2w for v in views]),
                   views[0].width, views[0].height)
    return GaussianScene.from_views(torch.stack([v.rgb for v in views]), torch.stack([v.depth for v in views]),
                                    torch.stack([v.valid for v in views]), cams.to(device), config, device=device)


def grow(representation: GaussianScene, view, pixels, fit_state, fit_config):
    """One new Gaussian per pixel of ``view`` in ``pixels`` ((H, W) bool: where the view shows
    what the world lacks), at the view's depth and colour; the optimizer state saved in the
    FitState grows with them (zero moments for the new ones)."""
    from .fitting import make_optimizer

    optimizer = None
    if fit_state is not None and fit_state.optimizer_state is not None:
        optimizer = make_optimizer(representation, fit_config)
        optimizer.load_state_dict(fit_state.optimizer_state)
    device = representation.means.device
    representation.add_from_view(view.rgb.to(device), view.depth.to(device), pixels.to(device),
                                 view.camera.to(device), optimizer=optimizer)
    if optimizer is None:
        return fit_state
    return replace(fit_state, optimizer_state=optimizer.state_dict())


def size(config: GaussianConfig, shape: RunShape) -> RepresentationSize:
    """One Gaussian per init_stride-th pixel of every view, densified over the run's fitting;
    scene.ply holds them (plus the sky) densified again by the distillation.

    Memory: one stage, the fitting: its state (parameters, gradients, Adam moments, cached views)
    plus FIT_WORKSPACE_BYTES. The distillation polishes a copy of these Gaussians (plus the sky),
    about as many, and stays under the fitting's peak in the measured runs."""
    fitted = densified_count(shape.views * pixels_at_stride(shape.width, shape.height, config.init_stride),
                             config.densify, shape.fit_steps)
    exported = densified_count(fitted + shape.sky_gaussians, config.densify, shape.distill_densify_steps)
    parameter_bytes = 4 * fitted * floats_per_gaussian(config.sh_degree, config.feature_dim)
    stages = (MemoryStage("fit", parameter_bytes, shape.cached_views, FIT_WORKSPACE_BYTES),)
    return RepresentationSize(parameter_bytes, exported, config.sh_degree, config.feature_dim, stages)


FIT_WORKSPACE_BYTES = 2 * 4 * RasterConfig().batch_elements
"""Memory a Gaussian fitting stage holds besides its state, whatever the scene's size: one tile
batch's alpha and weight buffers (2 x batch_elements float32, 16.8 MB). Since the rasteriser
records autograd only for the Gaussians a patch's camera sees (rasterize/torch_backend.py), the
state estimate (an upper bound on the Gaussian count) covers the rest. Measured peaks on a 2-core
box (benchmarks/bench_eta.py, 2026-12-07): the make-run scene 557 MB against 552 planned, 24 views
591 MB against 704 planned. (It was 265 MB, fitted to the peaks of 740-935 MB the rasteriser had
when it projected every Gaussian for every patch.)"""


def seed_gaussians(representation: GaussianScene, support, bake, on_event=None):
    """scene.ply starts from a copy of the fitted Gaussians (the run's own stay untouched)."""
    return copy.deepcopy(representation), None


def describe(config: GaussianConfig) -> str:
    return f"3D Gaussians (SH degree {config.sh_degree})"


KIND = RepresentationKind(
    name="gaussians", cli_name="gaussians", cls="scenedreamer.representation.gaussians:GaussianScene", config_class=GaussianConfig,
    default_config=default_config, describe=describe, create=create, grow=grow, size=size,
    seed_gaussians=seed_gaussians, export_method="copy of the fitted Gaussians",
    frozen_store="scenedreamer.representation.frozen_gaussians:FrozenGaussians")
