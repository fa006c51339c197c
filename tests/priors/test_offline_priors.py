"""The offline stand-ins: protocols, shared world, oracle inpainting and (corrupted) oracle depth."""

from __future__ import annotations

import math

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.priors.base import DepthEstimator, DepthKind, Inpainter, TextToImage
from scenedreamer.priors.offline import (OracleDepthConfig, OracleDepthEstimator, build_offline_priors,
                                        camera_noise_seed)
from scenedreamer.priors.procedural import ProceduralWorldConfig


FAST = ProceduralWorldConfig(heightmap_resolution=256, texture_resolution=64)
S = 48


def camera(yaw_deg: float = 0.0) -> Cameras:
    a = math.radians(yaw_deg)
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return Cameras(intrinsics_from_fov(70.0, S, S), c2w, S, S)


@pytest.fixture(scope="module")
def priors():
    return build_offline_priors("a lake at sunset", seed=5, world_config=FAST)


def test_protocols_labels_and_shared_world(priors) -> None:
    assert isinstance(priors.text_to_image, TextToImage)
    assert isinstance(priors.inpainter, Inpainter)
    assert isinstance(priors.depth, DepthEstimator)
    for p in (priors.text_to_image, priors.inpainter, priors.depth):
        assert "offline stand-in" in p.label
        assert p.world is priors.world


def test_text_to_image_is_the_world_render(priors) -> None:
    cam = camera()
    img = priors.text_to_image.generate("a lake at sunset", cam, torch.Generator().manual_seed(0))
    assert img.shape == (S, S, 3) and img.dtype == torch.float32
    assert torch.equal(img, priors.world.render(cam).rgb[0])


def test_oracle_inpainter_keeps_known_pixels_and_fills_with_the_world(priors) -> None:
    cam = camera(yaw_deg=30.0)
    truth = priors.world.render(cam).rgb[0]
    image = torch.rand(S, S, 3, generator=torch.Generator().manual_seed(1))
    hole = torch.zeros(S, S, dtype=torch.bool)
    hole[10:30, 5:40] = True
    out = priors.inpainter.inpaint(image, hole, "a lake", torch.Generator(), camera=cam)
    assert torch.equal(out[~hole], image[~hole])
    assert torch.equal(out[hole], truth[hole])


def test_oracle_inpainter_empty_mask_returns_image(priors) -> None:
    image = torch.rand(S, S, 3)
    out = priors.inpainter.inpaint(image, torch.zeros(S, S, dtype=torch.bool), "", torch.Generator(), camera())
    assert out is image


def test_oracle_depth_exact_is_metric(priors) -> None:
    cam = camera()
    pred = priors.depth.estimate(torch.zeros(S, S, 3), camera=cam)
    assert pred.kind is DepthKind.METRIC
    assert torch.equal(pred.values, priors.world.render(cam).depth[0])


def test_corrupted_depth_has_the_configured_scale_and_shift(priors) -> None:
    cam = camera()
    truth = priors.world.render(cam).depth[0]
    exact = OracleDepthEstimator(priors.world, OracleDepthConfig(scale=0.37, shift=2.5))
    pred = exact.estimate(torch.zeros(S, S, 3), camera=cam)
    assert pred.kind is DepthKind.RELATIVE
    assert torch.allclose(pred.values, 0.37 * truth + 2.5, rtol=1e-6, atol=1e-5)
    noisy = OracleDepthEstimator(priors.world, OracleDepthConfig(scale=0.37, shift=2.5, noise_std=0.02))
    values = noisy.estimate(torch.zeros(S, S, 3), camera=cam).values
    # least squares recovers the scale and shift; the residual is the configured noise level
    A = torch.stack([truth.reshape(-1), torch.ones(S * S)], dim=1).double()
    sol = torch.linalg.lstsq(A, values.reshape(-1, 1).double()).solution[:, 0]
    assert float(sol[0]) == pytest.approx(0.37, rel=0.03)
    rel_residual = ((values - 0.37 * truth - 2.5) / (0.37 * truth)).std()
    assert float(rel_residual) == pytest.approx(0.02, rel=0.15)
    again = noisy.estimate(torch.zeros(S, S, 3), camera=cam).values
    assert torch.equal(values, again)            # same camera, same noise


def test_corrupted_depth_noise_is_drawn_per_camera(priors) -> None:
    """Each camera gets its own noise (seeded from its pose): one noise image for every camera
    pinned the errors to pixel positions, and a walk's alignments then compounded one sample's
    bias view after view."""
    cam = camera()
    c2w = cam.c2w.clone()
    c2w[:, 0, 3] += 0.05                          # a small step sideways: nearly the same depth
    moved = Cameras(cam.K, c2w, cam.width, cam.height)
    noisy = OracleDepthEstimator(priors.world, OracleDepthConfig(noise_std=0.02))
    relative_errors = []
    for c in (cam, moved):
        truth = priors.world.render(c).depth[0]
        relative_errors.append(noisy.estimate(torch.zeros(S, S, 3), camera=c).values / truth - 1.0)
    a, b = (e.reshape(-1) for e in relative_errors)
    # independent noise images: their correlation is ~N(0, 1/sqrt(S*S)); one shared image gave 1
    correlation = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert abs(correlation) < 5.0 / S
    assert camera_noise_seed(0, cam) == camera_noise_seed(0, cam) != camera_noise_seed(0, moved)
    assert camera_noise_seed(0, cam) != camera_noise_seed(1, cam)


def test_oracles_require_the_camera_and_good_inputs(priors) -> None:
    image = torch.rand(S, S, 3)
    hole = torch.zeros(S, S, dtype=torch.bool)
    hole[0, 0] = True
    with pytest.raises(UserInputError, match="camera is required"):
        priors.inpainter.inpaint(image, hole, "", torch.Generator())
    with pytest.raises(UserInputError, match="camera is required"):
        priors.depth.estimate(image)
    with pytest.raises(UserInputError, match="camera is required"):
        priors.text_to_image.generate("x", None, torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=r"\(H, W, 3\)"):
        priors.inpainter.inpaint(torch.rand(S, S, 4), hole, "", torch.Generator(), camera())
    with pytest.raises(UserInputError, match="inpaint mask"):
        priors.inpainter.inpaint(image, hole.float(), "", torch.Generator(), camera())
    with pytest.raises(UserInputError, match="inpaint mask"):
        priors.inpainter.inpaint(image, hole[:10], "", torch.Generator(), camera())
    with pytest.raises(UserInputError, match="camera is"):
        priors.depth.estimate(torch.rand(S + 2, S, 3), camera=camera())
    with pytest.raises(UserInputError, match="scale"):
        OracleDepthEstimator(priors.world, OracleDepthConfig(scale=0.0))


def test_outputs_are_not_the_cached_render(priors) -> None:
    cam = camera(yaw_deg=-20.0)
    img = priors.text_to_image.generate("", cam, torch.Generator())
    img.zero_()                                  # a caller editing its image in place
    depth = priors.depth.estimate(torch.zeros(S, S, 3), camera=cam).values
    depth.zero_()
    assert priors.text_to_image.generate("", cam, torch.Generator()).max() > 0
    assert priors.depth.estimate(torch.zeros(S, S, 3), camera=cam).values.min() > 0
