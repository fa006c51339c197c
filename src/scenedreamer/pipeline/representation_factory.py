"""Creating and growing the unified 3D representation from support views.

The pipeline holds a SceneRepresentation and does not care which; how a kind is first built
and how it grows when a view adds new content are its hooks in the representation kinds table
(representation/registry.py), each given the representation's own config.
"""

from __future__ import annotations

import torch

from ..representation.base import SceneRepresentation
from ..representation.fitting import FitConfig, FitState
from ..representation.registry import kind_of, kind_of_config
from ..support.records import ViewRecord
from .config import GenerateConfig


def create_representation(config: GenerateConfig, views: list[ViewRecord], device: torch.device,
                          camera_centres: torch.Tensor | None = None) -> SceneRepresentation:
    """A fresh representation of the kind ``config.representation`` names, for the initial
    support views, on ``device``; ``camera_centres`` (N, 3): the whole trajectory's camera
    positions (world), which a kind may size its bounds from (the tri-plane NeRF does)."""
    rep_config = config.representation
    return kind_of_config(rep_config).create(rep_config, views, device, camera_centres)


def grow_representation(representation: SceneRepresentation, view: ViewRecord, pixels: torch.Tensor,
                        fit_state: FitState | None, fit_config: FitConfig) -> FitState | None:
    """Make room for a new view's new content before fitting (the kind's grow hook); returns the
    (updated) FitState. ``pixels`` (H, W) bool: where the view shows what the world lacks
    (pipeline/generate.py ``pixels_to_grow``). Gaussians add one per such pixel; a NeRF's field
    covers all space."""
    return kind_of(representation).grow(representation, view, pixels, fit_state, fit_config)
