"""Offline stand-ins for the generative priors, backed by one shared procedural world.

``ProceduralTextToImage`` renders the world as the first view, ``OracleInpainter`` fills holes
with what the world has there (known pixels returned unchanged) and ``OracleDepthEstimator``
returns the world's exact z-depth, optionally corrupted by a scale, shift and noise so that the
pipeline's depth alignment is exercised as with a real monocular network. They need the camera
(they are oracles): a missing camera is a UserInputError. Build all three at once with
``build_offline_priors(prompt, seed)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserInputError
from ..geometry.cameras import Cameras
from .base import DepthKind, DepthPrediction, check_image, check_mask
from .procedural import ProceduralWorld, ProceduralWorldConfig
from .config import OracleDepthConfig


def _check_camera(camera: Cameras | None, who: str, height: int | None = None,
                  width: int | None = None) -> Cameras:
    if camera is None:
        raise UserInputError(f"{who}: the camera is required (the procedural oracle renders its world "
                             "at that camera)")
    if not isinstance(camera, Cameras) or len(camera) != 1:
        raise UserInputError(f"{who}: camera must be a Cameras batch of 1, got "
                             f"{len(camera) if isinstance(camera, Cameras) else type(camera).__name__}")
    if height is not None and (camera.height, camera.width) != (height, width):
        raise UserInputError(f"{who}: camera is {camera.width}x{camera.height} but the image is "
                             f"{width}x{height}")
    return camera


class ProceduralTextToImage:
    """TextToImage stand-in: the first view is the procedural world rendered at the camera.

    The world was chosen from its prompt when it was built; ``generate`` renders it (the prompt
    and generator arguments are accepted for the protocol and do not change the world).
    """

    label = "procedural world text-to-image (offline stand-in)"

    def __init__(self, world: ProceduralWorld) -> None:
        self.world = world
        # the run's "using ..." line and events.jsonl say how the prompt was read
        self.label = f"{ProceduralTextToImage.label}, read as: {world.choice.describe()}"

    def generate(self, prompt: str, camera: Cameras, generator: torch.Generator | None = None) -> Tensor:
        """Image (H, W, 3) float32 in [0, 1] at camera.height x camera.width, on camera.device."""
        camera = _check_camera(camera, ProceduralTextToImage.label)
        return self.world.render_cached(camera).rgb[0].clone()   # callers may edit it in place


class OracleInpainter:
    """Inpainter stand-in: hole pixels get the world's render, known pixels are returned unchanged.

    An empty ``inpaint`` mask is not an error: the image is returned as is, without rendering.
    """

    label = "procedural world oracle inpainter (offline stand-in)"

    def __init__(self, world: ProceduralWorld) -> None:
        self.world = world

    def inpaint(self, image: Tensor, inpaint: Tensor, prompt: str = "", generator: torch.Generator | None = None,
                camera: Cameras | None = None) -> Tensor:
        """image (H, W, 3) in [0, 1], inpaint (H, W) bool (True = fill) -> (H, W, 3)."""
        check_image(image, self.label)
        check_mask(inpaint, image, self.label)
        camera = _check_camera(camera, self.label, image.shape[0], image.shape[1])
        if not bool(inpaint.any()):
            return image
        rendered = self.world.render_cached(camera).rgb[0].to(device=image.device, dtype=image.dtype)
        return torch.where(inpaint[..., None], rendered, image)


class OracleDepthEstimator:
    """DepthEstimator stand-in: the world's z-depth at the camera, exact (METRIC) or corrupted
    by ``OracleDepthConfig`` (RELATIVE: depth up to an unknown scale and shift). Sky pixels carry
    the world's ``sky_depth`` and are marked exactly in the prediction's ``backdrop``."""

    label = "procedural world oracle depth (offline stand-in)"

    def __init__(self, world: ProceduralWorld, config: OracleDepthConfig | None = None) -> None:
        self.world = world
        self.config = config or OracleDepthConfig()
        # say which of the two it is: exact metric depth, or corrupted like a monocular network's
        self.label = OracleDepthEstimator.label.replace(
            "oracle depth", "oracle depth, exact" if self.config.exact else "oracle depth, corrupted")
        if not self.config.scale > 0:
            raise UserInputError(f"{self.label}: scale must be > 0, got {self.config.scale}")

    def estimate(self, image: Tensor, camera: Cameras | None = None) -> DepthPrediction:
        """image (H, W, 3) in [0, 1] -> DepthPrediction with values (H, W) float32 on image.device."""
        check_image(image, self.label)
        camera = _check_camera(camera, self.label, image.shape[0], image.shape[1])
        world = self.world.render_cached(camera)
        depth = world.depth[0].to(device=image.device, dtype=torch.float32, copy=True)
        # the backdrop is exact: the sky is what the world's rays miss (not a depth threshold)
        sky = world.sky[0].to(device=image.device, copy=True)
        cfg = self.config
        if cfg.exact:
            return DepthPrediction(depth, DepthKind.METRIC, backdrop=sky)
        values = depth
        if cfg.noise_std > 0:
            gen = torch.Generator().manual_seed(camera_noise_seed(cfg.noise_seed, camera))
            noise = torch.randn(depth.shape, generator=gen).to(depth.device)
            values = values * (1.0 + cfg.noise_std * noise)
        return DepthPrediction(cfg.scale * values + cfg.shift, DepthKind.RELATIVE, backdrop=sky)


def camera_noise_seed(seed: int, camera: Cameras) -> int:
    """The seed of ``camera``'s depth noise: ``seed`` mixed (sha256) with the camera's
    intrinsics and pose as float32 bytes. Each view then gets its own noise, the same on every
    call for the same camera (a run stays a function of its inputs and resumes byte-identically).
    One noise image for every camera pinned each error to a pixel: a side walk's new strip and
    the known pixels it is aligned to sit in the same columns view after view, so the same
    sample of the noise set every step's fit, and its bias compounded along the walk (new
    content 0.03 % nearer per step from exact known depth, the sign and size following the seed;
    on the 300-view benchmark's walk the stored depth had shrunk 21 % by view 188)."""
    values = torch.cat([camera.K.reshape(-1), camera.c2w.reshape(-1)]).detach().to("cpu", torch.float32)
    digest = hashlib.sha256(int(seed).to_bytes(8, "little", signed=True) + values.numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class OfflinePriors:
    """The three stand-ins sharing one world."""

    world: ProceduralWorld
    text_to_image: ProceduralTextToImage
    inpainter: OracleInpainter
    depth: OracleDepthEstimator


def build_offline_priors(prompt: str, seed: int, world_config: ProceduralWorldConfig | None = None,
                         depth_config: OracleDepthConfig | None = None) -> OfflinePriors:
    """One ProceduralWorld from (prompt, seed) and the three stand-ins that share it."""
    world = ProceduralWorld.from_prompt(prompt, seed, world_config)
    return OfflinePriors(world, ProceduralTextToImage(world), OracleInpainter(world),
                         OracleDepthEstimator(world, depth_config))
