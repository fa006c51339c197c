"""Small Protocols for the pretrained networks of the method and their offline stand-ins.

Value conventions at these interfaces (docs/conventions.md): images are float32 (H, W, 3) in
[0, 1], channels-last; masks are bool (H, W) named by meaning (``inpaint`` = True where content
must be generated). Every wrapper converts to its network's range/layout/multiples inside,
once. A prior may use the camera (the procedural world does: it is an oracle); real networks
ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ..errors import UserInputError
from ..geometry.cameras import Cameras
from .config import DepthKind


@dataclass(frozen=True)
class DepthPrediction:
    """values: (H, W) float32, meaning given by ``kind``. backdrop: (H, W) bool, True where
    the prior knows there is no surface (sky: the offline world's ray misses, a network's far
    class), or None when the prior does not say (then SupportConfig.backdrop_depth decides)."""

    values: Tensor
    kind: DepthKind
    backdrop: Tensor | None = None


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


@runtime_checkable
class DepthCompleter(Protocol):
    """Depth of a new view completed from the depth it already knows (no network): the DepthEstimator
    role's network-free twin for views whose known pixels carry warped scene depth. It cannot give
    a first view its depth (nothing is known there)."""

    label: str

    def complete(self, depth: Tensor, known: Tensor) -> Tensor:
        """depth (H, W) z-depth > 0 where ``known`` (H, W) bool -> (H, W) z-depth, known pixels
        unchanged."""
        ...


# input checks shared by every prior wrapper (one line naming the prior and the input)
def check_image(image: Tensor, who: str, name: str = "image") -> None:
    """UserInputError unless ``image`` is a float (H, W, 3) tensor."""
    if not isinstance(image, Tensor):
        raise UserInputError(f"{who}: {name} must be a torch tensor (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise UserInputError(f"{who}: {name} must be (H, W, 3) channels-last RGB, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise UserInputError(f"{who}: {name} must be float in [0, 1], got dtype {image.dtype}")


def check_mask(mask: Tensor, image: Tensor, who: str, name: str = "inpaint") -> None:
    """UserInputError unless ``mask`` is a bool (H, W) tensor matching the image."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise UserInputError(f"{who}: {name} mask must be a bool tensor (H, W), got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if tuple(mask.shape) != tuple(image.shape[:2]):
        raise UserInputError(f"{who}: {name} mask is {tuple(mask.shape)} but the image is {tuple(image.shape[:2])}")
