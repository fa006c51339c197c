"""Classical inpainting (OpenCV + PatchMatch) and background-biased depth completion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenedreamer.errors import InternalError, UserInputError
from scenedreamer.priors.base import Inpainter
from scenedreamer.priors.classical import (ClassicalInpaintConfig, ClassicalInpainter, DepthCompletionConfig,
                                           complete_depth, complete_depth_reference, split_holes)


H = W = 96


def gradient_image() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    return torch.stack([xx, yy, 0.5 * (xx + yy)], dim=-1)


def test_is_an_inpainter() -> None:
    assert isinstance(ClassicalInpainter(), Inpainter)


def test_split_holes_by_inscribed_radius() -> None:
    hole = np.zeros((H, W), bool)
    hole[10, 5:80] = True                        # a long thin crack: many pixels, radius 1
    hole[40:70, 30:60] = True                    # a square blob: radius ~15
    large, thin = split_holes(hole, large_radius=4.0)
    assert thin[10, 5:80].all() and not thin[40:70, 30:60].any()
    assert large[40:70, 30:60].all() and not large[10].any()


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_thin_cracks_fill_a_smooth_gradient_closely(method: str) -> None:
    img = gradient_image()
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[20, 10:90] = True
    hole[30:80, 50] = True
    out = ClassicalInpainter(ClassicalInpaintConfig(opencv_method=method)).inpaint(img, hole)
    assert torch.equal(out[~hole], img[~hole])
    assert (out - img).abs()[hole].max() < 0.03


@pytest.mark.parametrize("max_side", [32, None])  # downscaled fast path and its full-resolution twin
def test_large_hole_is_filled_plausibly_and_known_pixels_kept(max_side) -> None:
    img = gradient_image()
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[30:60, 35:70] = True
    cfg = ClassicalInpaintConfig(patchmatch_max_side=max_side, crop_margin=16)
    out = ClassicalInpainter(cfg).inpaint(img, hole, "", torch.Generator().manual_seed(0))
    assert torch.equal(out[~hole], img[~hole])
    err = (out - img).abs()[hole]
    # PatchMatch copies patches from the surroundings: values stay near the local gradient
    assert err.mean() < 0.12 and err.max() < 0.4
    lo, hi = img[hole].amin(0) - 0.15, img[hole].amax(0) + 0.15
    assert ((out[hole] >= lo) & (out[hole] <= hi)).all()


def test_deterministic_given_the_generator() -> None:
    img = torch.rand(H, W, 3, generator=torch.Generator().manual_seed(3))
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[20:50, 20:50] = True
    a = ClassicalInpainter().inpaint(img, hole, "", torch.Generator().manual_seed(1))
    b = ClassicalInpainter().inpaint(img, hole, "", torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_empty_mask_and_bad_inputs() -> None:
    img = gradient_image()
    none = torch.zeros(H, W, dtype=torch.bool)
    assert ClassicalInpainter().inpaint(img, none) is img
    with pytest.raises(UserInputError, match="whole image"):
        ClassicalInpainter().inpaint(img, ~none)
    with pytest.raises(UserInputError, match=r"\(H, W, 3\)"):
        ClassicalInpainter().inpaint(img[..., :2], none)
    with pytest.raises(UserInputError, match="inpaint mask"):
        ClassicalInpainter().inpaint(img, none[:, :5])
    with pytest.raises(UserInputError, match="opencv_method"):
        ClassicalInpainter(ClassicalInpaintConfig(opencv_method="fast"))


# --- depth completion -----------------------------------------------------------------------------

def disocclusion_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """Background at 10, a foreground box at 2, and the hole a camera moving left reveals beside it."""
    depth = torch.full((24, 40), 10.0)
    depth[6:18, 8:16] = 2.0
    known = torch.ones(24, 40, dtype=torch.bool)
    known[4:20, 16:24] = False                   # right of the box: background was hidden there
    return depth, known


def test_depth_completion_prefers_the_farther_side() -> None:
    depth, known = disocclusion_scene()
    out = complete_depth(depth, known)
    assert torch.equal(out[known], depth[known])
    assert torch.allclose(out[~known], torch.full_like(out[~known], 10.0), rtol=1e-5)


def test_depth_completion_interpolates_background_in_disparity() -> None:
    # a slanted background (disparity linear in x, 20 % change across the hole) is interpolated
    x = torch.arange(40, dtype=torch.float32)
    depth = (1.0 / (0.1 + 0.002 * x)).expand(24, 40).clone()
    known = torch.ones(24, 40, dtype=torch.bool)
    known[8:16, 10:20] = False
    out = complete_depth(depth, known)
    assert ((out[~known] - depth[~known]).abs() / depth[~known]).max() < 0.03


def test_depth_completion_matches_its_reference_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    depth = 1.0 + 9.0 * torch.rand(18, 22, generator=gen)
    known = torch.rand(18, 22, generator=gen) > 0.45
    known[:, :3] = False                         # rows whose left side has nothing
    cfg = DepthCompletionConfig(foreground_ratio=0.2)
    assert torch.allclose(complete_depth(depth, known, cfg), complete_depth_reference(depth, known, cfg),
                          rtol=1e-5)


def test_depth_completion_bad_inputs() -> None:
    depth, known = disocclusion_scene()
    with pytest.raises(UserInputError, match="no known"):
        complete_depth(depth, torch.zeros_like(known))
    with pytest.raises(InternalError, match="known must be"):
        complete_depth(depth, known.float())
    with pytest.raises(InternalError, match="depth must be"):
        complete_depth(depth[None], known)
    with pytest.raises(UserInputError, match="> 0"):
        complete_depth(torch.zeros_like(depth), known)
