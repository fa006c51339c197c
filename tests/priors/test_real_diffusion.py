"""Stable Diffusion text-to-image and inpainting wrappers on tiny random pipelines loaded from disk."""

from __future__ import annotations

import warnings

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.priors.base import Inpainter, TextToImage
from scenedreamer.priors.diffusion import (DiffusionConfig, StableDiffusionInpainter, StableDiffusionTextToImage,
                                           network_size, paste_back, to_network_mask, truncate_prompt)
from scenedreamer.priors.loading import ModelLoadConfig
from tiny_models import TINY_STEPS, tiny_sd_pipeline

CONFIG = DiffusionConfig(num_inference_steps=TINY_STEPS, seam_feather_px=3)
H, W = 44, 60  # deliberately not multiples of 8


def camera(height: int = H, width: int = W) -> Cameras:
    return Cameras(intrinsics_from_fov(60.0, width, height), torch.eye(4), width, height)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def text_to_image(tmp_path_factory) -> StableDiffusionTextToImage:
    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    tiny_sd_pipeline(folder)
    return StableDiffusionTextToImage.load(folder, ModelLoadConfig(), CONFIG)


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory) -> StableDiffusionInpainter:
    folder = tmp_path_factory.mktemp("models") / "tiny-sd-inpaint"
    tiny_sd_pipeline(folder, inpainting=True)
    return StableDiffusionInpainter.load(folder, ModelLoadConfig(), CONFIG)


def hole_mask(height: int = H, width: int = W) -> torch.Tensor:
    inpaint = torch.zeros(height, width, dtype=torch.bool)
    inpaint[10:30, 15:45] = True
    return inpaint


def test_protocols(text_to_image, inpainter):
    assert isinstance(text_to_image, TextToImage) and isinstance(inpainter, Inpainter)
    assert inpainter.pipeline.unet.config.in_channels == 9


def test_text_to_image_size_range_and_determinism(text_to_image):
    a = text_to_image.generate("a red house", camera(), gen(0))
    assert a.shape == (H, W, 3) and a.dtype == torch.float32
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 0
    assert torch.equal(a, text_to_image.generate("a red house", camera(), gen(0)))
    assert not torch.equal(a, text_to_image.generate("a red house", camera(), gen(1)))


def test_inpaint_keeps_known_pixels_exactly(inpainter):
    image = torch.rand(H, W, 3, generator=gen(5))
    inpaint = hole_mask()
    out = inpainter.inpaint(image, inpaint, "a garden", gen(0))
    assert out.shape == (H, W, 3) and out.dtype == torch.float32
    assert torch.equal(out[~inpaint], image[~inpaint])                       # bit-exact
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not torch.allclose(out[inpaint], image[inpaint])                   # the hole was generated
    assert torch.equal(out, inpainter.inpaint(image, inpaint, "a garden", gen(0)))
    assert not torch.equal(out, inpainter.inpaint(image, inpaint, "a garden", gen(1)))


def test_inpaint_with_plain_text_to_image_unet(text_to_image):
    """A 4-channel UNet inpaints by latent blending (weaker, but it must work and keep known pixels)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline(**text_to_image.pipeline.components)
    pipe.set_progress_bar_config(disable=True)
    image = torch.rand(H, W, 3, generator=gen(2))
    out = StableDiffusionInpainter(pipe, CONFIG).inpaint(image, hole_mask(), "x", gen(0))
    assert torch.equal(out[~hole_mask()], image[~hole_mask()])


def test_inpaint_bad_inputs(inpainter):
    image = torch.rand(H, W, 3)
    with pytest.raises(UserInputError, match="empty"):
        inpainter.inpaint(image, torch.zeros(H, W, dtype=torch.bool), "x", gen(0))
    with pytest.raises(UserInputError, match="inpaint image"):
        inpainter.inpaint(torch.rand(H, W, 4), hole_mask(), "x", gen(0))
    with pytest.raises(UserInputError, match="inpaint image"):
        inpainter.inpaint(torch.rand(3, H, W), hole_mask(), "x", gen(0))
    with pytest.raises(UserInputError, match="inpaint mask"):
        inpainter.inpaint(image, hole_mask().float(), "x", gen(0))
    with pytest.raises(UserInputError, match="inpaint mask"):
        inpainter.inpaint(image, hole_mask(H - 1, W), "x", gen(0))


def test_long_prompt_is_truncated_with_a_warning(text_to_image):
    tokenizer = text_to_image.pipeline.tokenizer
    long_prompt = "a very long prompt " * 20                                     # ~380 byte tokens > 77
    with pytest.warns(UserWarning, match=r"stable-diffusion: prompt is \d+ tokens.*cut \d+ tokens"):
        cut = truncate_prompt(long_prompt, tokenizer, "stable-diffusion")
    assert len(tokenizer(cut)["input_ids"]) <= tokenizer.model_max_length
    assert long_prompt.startswith(cut.strip()[:20])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert truncate_prompt("short", tokenizer, "m") == "short"
        with pytest.warns(UserWarning):
            text_to_image.generate(long_prompt, camera(), gen(0))


def test_network_size_rounds_to_multiples():
    cfg = DiffusionConfig()
    assert network_size(44, 58, cfg) == (48, 56)
    assert network_size(3, 5, cfg) == (8, 8)
    assert network_size(384, 512, DiffusionConfig(working_long_side=512)) == (384, 512)
    assert network_size(300, 400, DiffusionConfig(working_long_side=512)) == (384, 512)


def test_network_mask_never_loses_a_hole_pixel():
    inpaint = torch.zeros(44, 60, dtype=torch.bool)
    inpaint[7, 9] = True
    small = to_network_mask(inpaint, (16, 24))
    assert small.shape == (1, 1, 16, 24) and small.sum() >= 1 and set(small.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(to_network_mask(inpaint, (44, 60))[0, 0].bool(), inpaint)


def test_paste_back_feathered_seam():
    h, w, feather = 32, 40, 4
    original = torch.full((h, w, 3), 0.5)
    generated = torch.full((h, w, 3), 0.7)
    inpaint = torch.zeros(h, w, dtype=torch.bool)
    inpaint[8:24, 10:30] = True
    out = paste_back(original, generated, inpaint, feather)
    assert torch.equal(out[~inpaint], original[~inpaint])
    row = out[16, :, 0]
    # at the hole edge the generated colour is pulled to the known one; deep inside it is untouched
    assert abs(row[10] - 0.5) < 0.02 and abs(row[20] - 0.7) < 1e-6
    inside = row[10:20]
    assert torch.all(inside[1:] >= inside[:-1] - 1e-6)                       # monotone fade
    # feather 0 = plain paste
    plain = paste_back(original, generated, inpaint, 0)
    assert torch.equal(plain, torch.where(inpaint[..., None], generated, original))


@pytest.mark.parametrize("radius", [0, 1, 4])
def test_box_mean_matches_square_pool(radius):
    from scenedreamer.priors.filters import box_mean_zero_padded as box_mean, box_mean_zero_padded_reference as box_mean_reference

    x = torch.rand(1, 3, 23, 31, generator=gen(3))
    assert torch.allclose(box_mean(x, radius), box_mean_reference(x, radius), atol=1e-6)
