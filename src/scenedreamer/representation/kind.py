"""What the program needs to know about one kind of scene representation (one entry of the
table in representation/registry.py).

A kind is plain data plus hooks. Every hook takes the representation's OWN config (or the
representation itself), never the whole run config, so a kind knows nothing above this layer:

- create(config, views, device, camera_centres) -> a fresh representation for the initial
  support views (ViewRecords, OpenCV cameras) on ``device``; ``camera_centres`` (N, 3) world
  positions of every trajectory camera (a kind may size its bounds from them) or None;
- grow(representation, view, fit_state, fit_config) -> FitState | None: make room for a new
  view's new content before fitting (e.g. Gaussians add one per new pixel);
- size(config, shape) -> RepresentationSize: upper bounds of its parameters and of the Gaussians
  it exports, for the disk and memory estimate (``pipeline/disk_budget.py``);
- seed_gaussians(representation, support, bake, on_event) -> (GaussianScene, source): the
  Gaussians scene.ply starts from (a copy, or baked from renders at the support cameras) and
  the representation whose renders between support cameras the distillation adds (None: none);
- describe(config) -> str: one line for ``generate --dry-run``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import torch

    from ..events import EventSink
    from ..geometry.cameras import Cameras
    from ..support.records import ViewRecord
    from .bake import BakeConfig
    from .base import SceneRepresentation
    from .densify import DensifyConfig
    from .fitting import FitConfig, FitState
    from .gaussians import GaussianScene


@dataclass(frozen=True)
class RunShape:
    """What a size estimate needs to know about the run besides the representation's config."""

    width: int
    """view width, pixels"""
    height: int
    """view height, pixels"""
    views: int
    """support views the run ends with"""
    fit_steps: int
    """fitting steps of the whole run (initial fit + every view's)"""
    bake: BakeConfig
    """how a representation that is not Gaussians is baked for scene.ply"""
    distill_steps: int
    """fitting steps of the scene.ply distillation"""
    sky_gaussians: int
    """Gaussians of the sky shell the distillation adds (0: none)"""


@dataclass(frozen=True)
class RepresentationSize:
    """Upper bounds of a representation's size in a run (see RepresentationKind.size)."""

    parameter_bytes: int
    """float32 bytes of its parameters at the largest the run can grow them"""
    exported_gaussians: int
    """Gaussians scene.ply can hold"""
    ply_sh_degree: int
    """SH degree of those Gaussians"""
    ply_feature_dim: int
    """feature length of those Gaussians"""


class SupportCameras(Protocol):
    """What seed_gaussians reads of the support database: its cameras (one CPU batch)."""

    def cameras(self) -> Cameras: ...


@dataclass(frozen=True)
class RepresentationKind:
    """One kind of scene representation: its names, classes and hooks (module docstring)."""

    name: str
    """the kind's name as checkpoints, scene.json and eval reports spell it ("triplane_nerf")"""
    cli_name: str
    """the name ``generate --representation`` takes ("nerf")"""
    cls: type | str
    """the SceneRepresentation subclass (``cls.kind == name``, ``cls.from_config(config, device)``), or
    its "package.module:Name" path, imported by ``load_class`` on first use (so the table, read by
    ``generate --dry-run``, imports no torch)"""
    config_class: type
    """its config dataclass (config.json names it by class name under "type")"""
    default_config: Callable[[], Any]
    """the config ``--representation CLI_NAME`` switches to"""
    describe: Callable[[Any], str]
    create: Callable[[Any, "list[ViewRecord]", "torch.device", "torch.Tensor | None"], "SceneRepresentation"]
    grow: Callable[["SceneRepresentation", "ViewRecord", "FitState | None", "FitConfig"], "FitState | None"]
    size: Callable[[Any, RunShape], RepresentationSize]
    seed_gaussians: Callable[["SceneRepresentation", SupportCameras, "BakeConfig", "EventSink | None"],
                             "tuple[GaussianScene, SceneRepresentation | None]"]
    export_method: str
    """how scene.ply is made from it, in words (scene.json "method")"""

    def __post_init__(self) -> None:
        if not isinstance(self.cls, str):
            self._check_class(self.cls)

    def load_class(self) -> type:
        """The representation class (imported now when ``cls`` is its path)."""
        if not isinstance(self.cls, str):
            return self.cls
        from importlib import import_module

        module, _, name = self.cls.partition(":")
        cls = getattr(import_module(module), name)
        self._check_class(cls)
        return cls

    def _check_class(self, cls: type) -> None:
        if getattr(cls, "kind", None) != self.name:
            raise ValueError(f"representation kind {self.name!r}: {cls.__name__}.kind is "
                             f"{getattr(cls, 'kind', None)!r}")


# ---- helpers shared by the kinds' hooks -------------------------------------------------------

def no_growth(representation, view, fit_state, fit_config):
    """grow hook of a representation whose field already covers all space: nothing to do."""
    return fit_state


def bake_seed(representation: SceneRepresentation, support: SupportCameras, bake: BakeConfig,
              on_event: EventSink | None = None) -> tuple[GaussianScene, SceneRepresentation]:
    """seed_gaussians hook of any representation that is not Gaussians: baked from its renders at
    every support camera (representation/bake.py); its renders fill the gaps when distilled."""
    import torch

    from .bake import bake_to_gaussians

    device = next(representation.parameters()).device
    with torch.no_grad():
        scene = bake_to_gaussians(representation, support.cameras().to(device), bake, on_event=on_event)
    return scene, representation


def pixels_at_stride(width: int, height: int, stride: int) -> int:
    """Pixels a view yields at ``stride`` (every stride-th pixel per axis)."""
    return math.ceil(width / stride) * math.ceil(height / stride)


def densified_count(initial: int, densify: DensifyConfig, steps: int) -> int:
    """Most Gaussians ``initial`` ones can become in ``steps`` fitting steps: each densification
    event (a step > 0 that is a multiple of ``densify.every`` in [start_step, stop_step), as
    representation/densify.py schedules them; steps counted 1..steps, the larger reading) at
    most doubles the count, and growth stops at max_gaussians."""
    if not densify.enabled or densify.every <= 0:
        return initial
    first = max(densify.start_step, 1)
    last = min(steps, densify.stop_step - 1)
    events = max(0, last // densify.every - (first - 1) // densify.every)
    if events == 0:
        return initial
    return max(initial, min(densify.max_gaussians, initial * 2 ** min(events, 64)))


def baked_size(feature_dim: int, parameter_bytes: int, shape: RunShape) -> RepresentationSize:
    """size of a representation baked into Gaussians for scene.ply (bake_seed): one Gaussian per
    bake.stride-th pixel of every support view plus the sky, grown by the distillation."""
    baked = shape.views * pixels_at_stride(shape.width, shape.height, shape.bake.stride) + shape.sky_gaussians
    gaussians = densified_count(baked, shape.bake.gaussians.densify, shape.distill_steps)
    return RepresentationSize(parameter_bytes, gaussians, shape.bake.gaussians.sh_degree, feature_dim)
