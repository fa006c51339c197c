"""The tri-plane NeRF as a representation kind (the table entry is in registry.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .kind import RepresentationKind, RepresentationSize, RunShape, bake_seed, baked_size, no_growth
from .config import TriplaneConfig

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


def size(config: TriplaneConfig, shape: RunShape) -> RepresentationSize:
    """Fixed parameters; scene.ply holds the baked Gaussians (kind.baked_size)."""
    return baked_size(config.feature_dim, parameter_bytes(config), shape)


def describe(config: TriplaneConfig) -> str:
    return (f"tri-plane feature NeRF (3 x {config.channels} ch x {config.resolution}^2, "
            f"{config.feature_dim}-d features)")


KIND = RepresentationKind(
    name="triplane_nerf", cli_name="nerf", cls="scenedreamer.representation.triplane:TriplaneNeRF", config_class=TriplaneConfig,
    default_config=TriplaneConfig, describe=describe, create=create, grow=no_growth, size=size,
    seed_gaussians=bake_seed, export_method="baked from renders at the support cameras (representation/bake.py)")
