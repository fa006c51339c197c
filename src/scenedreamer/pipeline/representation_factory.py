"""Creating and growing the unified 3D representation from support views.

The pipeline holds a SceneRepresentation and does not care which; the two kinds differ only in
how they are first built and how they grow when a view adds new content, which lives here.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..representation.base import SceneRepresentation
from ..representation.fitting import FitConfig, FitState, make_optimizer
from ..representation.gaussians import GaussianConfig, GaussianScene
from ..representation.triplane import TriplaneConfig, TriplaneNeRF, bounds_from_views
from ..support.records import ViewRecord
from .config import GenerateConfig


def create_representation(config: GenerateConfig, views: list[ViewRecord], device: torch.device,
                          camera_centres: torch.Tensor | None = None) -> SceneRepresentation:
    """A fresh representation for the initial support views.

    Tri-plane NeRF: its contraction centre and radius are set from the views' cameras and depth
    and ``camera_centres`` (N, 3), the whole trajectory's camera positions (the bounded inner
    region holds the cameras and the content near them; the rest is contracted).
    Gaussians: one Gaussian per valid pixel of the views (strided by the config).
    """
    rep_config = config.representation
    if isinstance(rep_config, TriplaneConfig):
        bounds = bounds_from_views(views, rep_config.bounds_quantile, rep_config.bounds_margin,
                                   camera_centres=camera_centres)
        return TriplaneNeRF.from_config(replace(rep_config, center=bounds.center, radius=bounds.radius), device)
    if isinstance(rep_config, GaussianConfig):
        from ..geometry.cameras import Cameras

        cams = Cameras(torch.stack([v.K for v in views]), torch.stack([v.c2w for v in views]),
                       views[0].width, views[0].height)
        return GaussianScene.from_views(torch.stack([v.rgb for v in views]), torch.stack([v.depth for v in views]),
                                        torch.stack([v.valid for v in views]), cams.to(device), rep_config,
                                        device=device)
    raise TypeError(f"unknown representation config {type(rep_config).__name__}")


def grow_representation(representation: SceneRepresentation, view: ViewRecord, fit_state: FitState | None,
                        fit_config: FitConfig) -> FitState | None:
    """Make room for a new view's new content before fitting; returns the (updated) FitState.

    Gaussians get one new Gaussian per new, valid pixel; the optimizer state saved in the
    FitState grows with them (zero moments for the new ones). A NeRF's field already covers
    all space: nothing to do.
    """
    if not isinstance(representation, GaussianScene):
        return fit_state
    optimizer = None
    if fit_state is not None and fit_state.optimizer_state is not None:
        optimizer = make_optimizer(representation, fit_config)
        optimizer.load_state_dict(fit_state.optimizer_state)
    device = representation.means.device
    representation.add_from_view(view.rgb.to(device), view.depth.to(device), (view.inpainted & view.valid).to(device),
                                 view.camera.to(device), optimizer=optimizer)
    if optimizer is None:
        return fit_state
    return replace(fit_state, optimizer_state=optimizer.state_dict())
