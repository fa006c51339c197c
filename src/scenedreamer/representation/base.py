"""The one interface every scene representation implements (tri-plane NeRF, 3D Gaussians).

The pipeline holds a ``SceneRepresentation`` and never asks which kind it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ..geometry.cameras import Cameras


@dataclass(frozen=True)
class RenderOutput:
    """Renders of a batch of B cameras at (H, W).

    rgb: (B, H, W, 3) colour in [0, 1].
    depth: (B, H, W) expected z-depth in scene units (camera frame), 0 where opacity is 0.
    opacity: (B, H, W) accumulated alpha in [0, 1].
    features: (B, H, W, F) rendered feature vectors (the "3D features" for the refinement
        adapter); F = representation.feature_dim (may be 0).
    """

    rgb: Tensor
    depth: Tensor
    opacity: Tensor
    features: Tensor

    def __getitem__(self, index: int | slice) -> "RenderOutput":
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return RenderOutput(self.rgb[index], self.depth[index], self.opacity[index], self.features[index])

    def detach(self) -> "RenderOutput":
        return RenderOutput(self.rgb.detach(), self.depth.detach(), self.opacity.detach(),
                            self.features.detach())


class SceneRepresentation(torch.nn.Module, ABC):
    """A differentiable 3D scene that renders colour, depth, opacity and features.

    Subclasses set ``kind`` (a short name saved in checkpoints) and ``feature_dim``.
    """

    kind: str = "abstract"
    feature_dim: int = 0
    # The fitting loop hands its generator here for the duration of a fit (random sample
    # placement along rays); representations that draw no random numbers ignore it.
    sample_generator: torch.Generator | None = None

    @abstractmethod
    def render(self, cameras: Cameras, background: Tensor | None = None,
               depth_hint: Tensor | None = None) -> RenderOutput:
        """Render every camera of the batch at (cameras.height, cameras.width).

        background: optional (3,) colour composited behind the scene (default: black).
        depth_hint: optional (B, H, W) known z-depth (0 = unknown), e.g. from the support
            database during fitting; ray-marching representations concentrate samples near it,
            others ignore it.
        Differentiable with respect to the representation's parameters.
        """

    def render_with_extras(self, cameras: Cameras, background: Tensor | None = None,
                           depth_hint: Tensor | None = None) -> tuple[RenderOutput, dict[str, Tensor]]:
        """``render`` plus named per-ray regularisation terms the fitting loop may weight
        (e.g. "distortion" (B, H, W), "free_space" (B, H, W)). Default: no extras."""
        return self.render(cameras, background, depth_hint), {}

    def total_variation(self) -> Tensor | None:
        """A scalar smoothness penalty on the parameters, or None when the representation has
        none (the fitting loop then skips ``tv_weight``). Default: None."""
        return None

    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups (each a dict with "params", "lr" and "name")."""
        return [{"params": list(self.parameters()), "lr": 1e-2, "name": "all"}]

    def post_step(self, step: int, optimizer: torch.optim.Optimizer, steps_left: int | None = None) -> None:
        """Called by the fitting loop after each optimizer step (Gaussians densify/prune here,
        updating the optimizer state in place); ``steps_left``: the steps the fit call still
        takes after this one (None: not known). Default: nothing."""
