"""Real pretrained weights (opt in: SCENEDREAMER_REAL_WEIGHTS=1; they must be in the local cache,
see `scenedreamer models download NAME`). Offline: nothing is downloaded here.

Environment: SCENEDREAMER_DEVICE (default: cuda if available, else cpu);
SCENEDREAMER_SD / SCENEDREAMER_SD_INPAINT / SCENEDREAMER_DEPTH override the presets or give folders.
"""

from __future__ import annotations

import os

import pytest
import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.priors.base import DepthKind
from scenedreamer.priors.depth_networks import TransformersDepthEstimator
from scenedreamer.priors.diffusion import DiffusionConfig, StableDiffusionInpainter, StableDiffusionTextToImage
from scenedreamer.priors.loading import ModelLoadConfig

pytestmark = [
    pytest.mark.real_weights,
    pytest.mark.skipif(os.environ.get("SCENEDREAMER_REAL_WEIGHTS") != "1",
                       reason="real-weight test: set SCENEDREAMER_REAL_WEIGHTS=1 (weights must be downloaded)"),
]

DEVICE = os.environ.get("SCENEDREAMER_DEVICE", "cuda" if torch.cuda.is_available() else "cpu")
LOAD = ModelLoadConfig(device=DEVICE, dtype="fp16" if DEVICE.startswith("cuda") else "fp32", offline=True)
SAMPLING = DiffusionConfig(num_inference_steps=int(os.environ.get("SCENEDREAMER_STEPS", "20")))


def scene_image(h: int = 384, w: int = 512) -> torch.Tensor:
    """A synthetic 'corridor': a floor ramp and a far bright wall, enough for depth ordering."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.3 + 0.5 * yy, 0.3 + 0.2 * xx, 0.4 * torch.ones_like(xx)], dim=-1)
    img[: h // 2] = torch.tensor([0.8, 0.8, 0.85])
    return img


@pytest.mark.parametrize("ref, kind", [(os.environ.get("SCENEDREAMER_DEPTH", "zoedepth"), DepthKind.METRIC),
                                       ("depth-anything-v2-small", DepthKind.DISPARITY),
                                       ("depth-anything-v2-metric-indoor", DepthKind.METRIC)])
def test_depth(ref, kind):
    est = TransformersDepthEstimator.load(ref, LOAD)
    pred = est.estimate(scene_image().to(DEVICE))
    assert pred.kind is kind and pred.values.shape == (384, 512) and torch.isfinite(pred.values).all()
    if kind is DepthKind.METRIC:
        assert 0.05 < pred.values.median() < 100.0                               # metres


def test_text_to_image_and_inpaint():
    cam = Cameras(intrinsics_from_fov(60.0, 512, 512), torch.eye(4), 512, 512)
    t2i = StableDiffusionTextToImage.load(os.environ.get("SCENEDREAMER_SD", "sd2"), LOAD, SAMPLING)
    image = t2i.generate("a cozy living room, photo", cam, torch.Generator().manual_seed(0))
    assert image.shape == (512, 512, 3) and image.std() > 0.05
    inpainter = StableDiffusionInpainter.load(os.environ.get("SCENEDREAMER_SD_INPAINT", "sd2-inpaint"), LOAD, SAMPLING)
    hole = torch.zeros(512, 512, dtype=torch.bool, device=image.device)
    hole[:, 384:] = True
    out = inpainter.inpaint(image, hole, "a cozy living room, photo", torch.Generator().manual_seed(0))
    assert torch.equal(out[~hole], image[~hole]) and out[hole].std() > 0.02
