"""Small Protocols for the pretrained networks of the method and their offline stand-ins.

Value conventions at these interfaces (docs/conventions.md): images are float32 (H, W, 3) in
[0, 1], channels-last; masks are bool (H, W) named by meaning (``inpaint`` = True where content
must be generated). Every wrapper converts to its network's range/layout/multiples inside,
once. A prior may use the camera (the procedural world does: it is an oracle); real networks
ignore it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ..geometry.cameras import Cameras


class DepthKind(enum.Enum):
    """What a depth network's output means."""

    METRIC = "metric"          # z-depth in metres / scene units
    RELATIVE = "relative"      # z-depth up to an unknown scale and shift
    DISPARITY = "disparity"    # inverse depth up to an unknown scale and shift


@dataclass(frozen=True)
class DepthPrediction:
    """values: (H, W) float32, meaning given by ``kind``."""

    values: Tensor
    kind: DepthKind


@runtime_checkable
class TextToImage(Protocol):
    """Makes the first view from the prompt."""

    label: str  # human name, e.g. "stable-diffusion-2-1" or "procedural world (offline stand-in)"

    def generate(self, prompt: str, camera: Cameras, generator: torch.Generator) -> Tensor:
        """Image (H, W, 3) in [0, 1] at camera.height x camera.width (camera is a batch of 1)."""
        ...


@runtime_checkable
class Inpainter(Protocol):
    """Fills the ``inpaint`` pixels of an image; known pixels are returned unchanged."""

    label: str

    def inpaint(self, image: Tensor, inpaint: Tensor, prompt: str, generator: torch.Generator,
                camera: Cameras | None = None) -> Tensor:
        """image (H, W, 3) in [0, 1], inpaint (H, W) bool -> image (H, W, 3) in [0, 1]."""
        ...


@runtime_checkable
class DepthEstimator(Protocol):
    """Monocular depth of an image."""

    label: str

    def estimate(self, image: Tensor, camera: Cameras | None = None) -> DepthPrediction:
        """image (H, W, 3) in [0, 1] -> DepthPrediction with values (H, W)."""
        ...
