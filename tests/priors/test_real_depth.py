"""ZoeDepth / Depth Anything wrappers on tiny random models loaded from disk through the loader."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.priors.base import DepthEstimator, DepthKind
from scenedreamer.priors.depth_networks import (DepthNetworkConfig, TransformersDepthEstimator, network_input_size,
                                                postprocess, preprocess, reference_preprocess)
from scenedreamer.priors.loading import ModelLoadConfig
from tiny_models import tiny_depth_model

H, W = 40, 52


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth-models")
    out = {}
    for name, kind, est_type in (("zoe", "zoedepth", "metric"), ("da-rel", "depth_anything", "relative"),
                                 ("da-metric", "depth_anything", "metric")):
        tiny_depth_model(kind, root / name, depth_estimation_type=est_type)
        out[name] = root / name
    return out


def smooth_image(h: int = H, w: int = W) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(4 * yy)], dim=-1)


@pytest.mark.parametrize("name, kind", [("zoe", DepthKind.METRIC), ("da-rel", DepthKind.DISPARITY),
                                        ("da-metric", DepthKind.METRIC)])
def test_estimate_size_and_kind(folders, name, kind):
    est = TransformersDepthEstimator.load(folders[name], ModelLoadConfig())
    assert isinstance(est, DepthEstimator) and est.kind is kind
    pred = est.estimate(smooth_image())
    assert pred.kind is kind
    assert pred.values.shape == (H, W) and pred.values.dtype == torch.float32
    assert torch.isfinite(pred.values).all() and (pred.values >= 0).all()
    assert torch.equal(pred.values, est.estimate(smooth_image()).values)        # deterministic


def test_kind_override_and_flip_average(folders):
    est = TransformersDepthEstimator.load(folders["da-metric"], ModelLoadConfig(),
                                          DepthNetworkConfig(flip_average=True, kind=DepthKind.RELATIVE))
    pred = est.estimate(smooth_image())
    assert pred.kind is DepthKind.RELATIVE and pred.values.shape == (H, W)


@pytest.mark.parametrize("name", ["zoe", "da-rel"])
@pytest.mark.parametrize("size", [(H, W), (75, 33)])
def test_preprocess_matches_transformers_processor(folders, name, size):
    """Our on-device preprocessing vs the transformers PIL processor (the slow reference twin).

    Differences left: uint8 quantisation of the reference (1/255 before normalising) and PIL's
    bicubic kernel (a = -0.5) vs torch's (a = -0.75) for Depth Anything.
    """
    est = TransformersDepthEstimator.load(folders[name], ModelLoadConfig())
    image = smooth_image(*size)
    ours = preprocess(image, est.spec, torch.float32)
    ref = reference_preprocess(image, est.network.processor)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() < 0.03
    noise = torch.rand(*size, 3, generator=torch.Generator().manual_seed(0))
    noise_diff = preprocess(noise, est.spec, torch.float32) - reference_preprocess(noise, est.network.processor)
    assert noise_diff.abs().mean() < 0.01


def test_input_sizes_are_patch_multiples(folders):
    zoe = TransformersDepthEstimator.load(folders["zoe"], ModelLoadConfig()).spec
    da = TransformersDepthEstimator.load(folders["da-rel"], ModelLoadConfig()).spec
    for h, w in ((40, 52), (75, 33), (480, 640), (17, 301)):
        zh, zw = network_input_size(h, w, zoe)
        dh, dw = network_input_size(h, w, da)
        assert zh % 32 == 0 and zw % 32 == 0 and zh > 0 and zw > 0
        assert dh % 14 == 0 and dw % 14 == 0 and dh > 0 and dw > 0


@pytest.mark.parametrize("name", ["zoe", "da-rel"])
def test_postprocess_undoes_preprocess_geometry(folders, name):
    """A 'network' that returns its input's first channel must give back the image's channel:
    this checks ZoeDepth's padding is cropped where it was added and nothing is flipped."""
    spec = TransformersDepthEstimator.load(folders[name], ModelLoadConfig()).spec
    image = smooth_image(48, 64)
    pixels = preprocess(image, spec, torch.float32)
    as_depth = pixels[:, 0] * spec.std[0] + spec.mean[0]                          # back to [0, 1]
    back = postprocess(as_depth, (48, 64), spec)
    assert back.shape == (48, 64)
    assert (back - image[..., 0]).abs().mean() < 0.03


def test_bad_image_is_a_user_error(folders):
    est = TransformersDepthEstimator.load(folders["zoe"], ModelLoadConfig())
    with pytest.raises(UserInputError, match="depth image"):
        est.estimate(torch.rand(H, W))
    with pytest.raises(UserInputError, match="depth image"):
        est.estimate(torch.rand(H, W, 4))
