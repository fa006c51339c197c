"""What the program needs to know about one kind of scene representation (one entry of the
table in representation/registry.py).

A kind is plain data plus hooks. Every hook takes the representation's OWN config (or the
representation itself), never the whole run config, so a kind knows nothing above this layer:

- create(config, views, device, camera_centres) -> a fresh representation for the initial
  support views (ViewRecords, OpenCV cameras) on ``device``; ``camera_centres`` (N, 3) world
  positions of every trajectory camera (a kind may size its bounds from them) or None;
- grow(representation, view, pixels, fit_state, fit_config) -> FitState | None: make room for
  a new view's new content before fitting; ``pixels`` (H, W) bool: where the view shows what the
  world lacks (e.g. Gaussians add one per such pixel);
- size(config, shape) -> RepresentationSize: upper bounds of its parameters and of the Gaussians
  it exports, and the memory of each stage of a run that holds it (MemoryStage), for the disk
  and memory estimate (``pipeline/disk_budget.py``);
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
    distill_densify_steps: int
    """fitting steps of the scene.ply distillation that densify (0 with export.distill.densify
    off, the default: the distillation then keeps the seed's Gaussians, adds none)"""
    sky_gaussians: int
    """Gaussians of the sky shell the distillation adds (0: none)"""
    rays_per_step: int = 0
    """pixels (camera rays) one fitting step renders: fit.patches_per_step square patches of
    fit.patch_size, clipped to the view (fitting.sample_patches)"""
    cached_views: int = 0
    """support views the fitting loop holds in memory (its LRU cache, fit.max_cached_views)"""
    distill_extra_views: int = 0
    """renders of the representation the distillation adds between the support cameras (when
    the kind bakes; distill.extra_views_per_gap per gap)"""


@dataclass(frozen=True)
class MemoryStage:
    """What one stage of a run holds in memory besides the process itself. Stages run one after
    another, so a run's peak is its largest stage, not their sum (``pipeline/disk_budget.py``)."""

    name: str
    """the stage: "fit", "render" (no-grad renders of the representation, for scene.ply or the
    video) or "distill" (scene.ply's distillation; the estimate drops it when no scene.ply is
    written)"""
    trained_bytes: int
    """float32 bytes of the parameters held with their gradients and Adam moments (4 copies)"""
    views: int
    """support views (and renders) held in memory"""
    workspace_bytes: int | None = None
    """activations of one step counted from the code (autograd's saved tensors and the backward
    buffers, or a no-grad render's chunk); None: the Gaussian rasteriser's, whose size follows
    the scene's tile overlaps and is taken as a measured multiple of the state
    (plan.TRAINING_WORKSPACE_FACTOR)"""


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
    stages: tuple[MemoryStage, ...] = ()
    """the memory of each stage of a run (empty: one fitting stage of ``parameter_bytes`` with the
    fitting loop's cached views and the rasteriser's workspace factor)"""


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
    grow: Callable[["SceneRepresentation", "ViewRecord", "torch.Tensor", "FitState | None", "FitConfig"],
                   "FitState | None"]
    size: Callable[[Any, RunShape], RepresentationSize]
    seed_gaussians: Callable[["SceneRepresentation", SupportCameras, "BakeConfig", "EventSink | None"],
                             "tuple[GaussianScene, SceneRepresentation | None]"]
    export_method: str
    """how scene.ply is made from it, in words (scene.json "method")"""
    frozen_store: str | None = None
    """"package.module:Name" of the store that keeps the part of a long world no active camera
    sees out of memory (``Name(folder)``, ``Name.from_extra(folder, data)``; see
    representation/frozen_gaussians.py), or None when the kind's size does not grow with the world
    (a NeRF's planes): it is then fitted whole at every step (pipeline/active_set.py)"""

    def new_frozen_store(self, folder, saved: dict | None = None):
        """The kind's frozen store over ``folder`` (with the index ``saved`` in a checkpoint), or
        None for a kind without one."""
        if self.frozen_store is None:
            return None
        from importlib import import_module

        module, _, name = self.frozen_store.partition(":")
        return getattr(import_module(module), name).from_extra(folder, saved)

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

def no_growth(representation, view, pixels, fit_state, fit_config):
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


def floats_per_gaussian(sh_degree: int, feature_dim: int) -> int:
    """Trainable floats of one Gaussian: mean 3, log-scales 3, quaternion 4, opacity 1, SH
    colour 3 (d+1)^2, features."""
    return 3 + 3 + 4 + 1 + 3 * (sh_degree + 1) ** 2 + feature_dim


def baked_size(feature_dim: int, parameter_bytes: int, shape: RunShape, fit_workspace_bytes: int | None = None,
               render_workspace_bytes: int = 0) -> RepresentationSize:
    """size of a representation baked into Gaussians for scene.ply (bake_seed): one Gaussian per
    bake.stride-th pixel of every support view plus the sky, grown by the distillation.

    Its run has three memory stages: fitting it (``fit_workspace_bytes``: its activations per
    step, None: the rasteriser factor's), rendering it without gradients for the bake and the
    distillation's extra views (``render_workspace_bytes``: one chunk's activations), and the
    distillation, a Gaussian fit of the baked Gaussians to the support views and those renders
    while the representation and its optimiser state stay in memory. Its Gaussians are bounded
    by the bake's pixels (the voxel merge keeps far fewer: 59567 of 286720 in the offline NeRF
    run), and its rasteriser workspace taken as the Gaussian fit's measured factor; against an
    RSS trace of that run (12 cameras, 256x256) the stages estimate 720 / 651 / 886 MB where the
    fits peaked at 680-780 MB (one view's at 881 MB), the bake at 723 MB, the distillation at
    837 MB."""
    baked = shape.views * pixels_at_stride(shape.width, shape.height, shape.bake.stride) + shape.sky_gaussians
    gaussians = densified_count(baked, shape.bake.gaussians.densify, shape.distill_densify_steps)
    sh = shape.bake.gaussians.sh_degree
    distilled = 4 * gaussians * floats_per_gaussian(sh, feature_dim)
    stages = (MemoryStage("fit", parameter_bytes, shape.cached_views, fit_workspace_bytes),
              MemoryStage("render", parameter_bytes, 0, render_workspace_bytes),
              MemoryStage("distill", parameter_bytes + distilled, shape.views + shape.distill_extra_views))
    return RepresentationSize(parameter_bytes, gaussians, sh, feature_dim, stages)
