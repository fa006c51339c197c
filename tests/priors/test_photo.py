"""A user's photo and depth map as the first view (priors/photo.py): fitting, conversions, refusals."""

import numpy as np
import pytest
import torch
from PIL import Image

from scenedreamer.errors import InternalError, UserInputError
from scenedreamer.priors.photo import FitPlan, GivenDepth, PhotoFirstView, load_depth_map, load_photo, photo_priors


def _gradient(h, w):
    """uint8 (h, w, 3): a picture whose every pixel is distinct enough to locate a crop."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1).astype(np.uint8)


def test_cover_plan_keeps_aspect_and_cuts_the_long_axis_equally():
    plan = FitPlan.cover(160, 120, 64, 64)
    assert plan.scale == pytest.approx(64 / 120)
    assert plan.left == pytest.approx((160 * 64 / 120 - 64) / 2) and plan.top == 0
    left, top, right, bottom = plan.source_box()
    assert (left, top, bottom) == (pytest.approx(20.0), 0, pytest.approx(120.0))
    assert right - left == pytest.approx(120.0)          # a square window of the source
    assert "cut left and right" in plan.describe() and "top" not in plan.describe()


def test_photo_at_its_own_size_is_returned_exactly(tmp_path):
    pixels = _gradient(32, 48)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    photo = load_photo(tmp_path / "p.png", 48, 32)
    assert photo.rgb.shape == (32, 48, 3) and photo.rgb.dtype == torch.float32
    assert torch.equal(photo.rgb, torch.from_numpy(pixels.astype(np.float32) / 255))
    assert photo.notes == () and "nothing cut" in photo.plan.describe()


def test_centre_crop_takes_the_middle(tmp_path):
    pixels = _gradient(40, 80)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    photo = load_photo(tmp_path / "wide.png", 40, 40)       # scale 1: a pure crop of columns 20..59
    assert torch.equal(photo.rgb, torch.from_numpy(pixels[:, 20:60].astype(np.float32) / 255))


def test_alpha_is_composited_over_white_and_said(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :8, 3] = 255          # left half opaque red-ish, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    photo = load_photo(tmp_path / "a.png", 16, 16)
    assert any("alpha" in n for n in photo.notes)
    assert torch.allclose(photo.rgb[:, 12], torch.ones(16, 3))                       # transparent -> white
    assert torch.allclose(photo.rgb[:, 2], torch.tensor([200 / 255, 0, 0]).expand(16, 3))


def test_16_bit_grey_is_converted_and_said(tmp_path):
    grey = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    photo = load_photo(tmp_path / "g16.png", 16, 16)
    assert any("16-bit" in n for n in photo.notes)
    assert photo.rgb.shape == (16, 16, 3)
    expected = np.rint(grey / 65535 * 255) / 255
    assert np.allclose(photo.rgb[..., 1].numpy(), expected, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    pixels = _gradient(20, 30)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6                              # "rotate 90 CW to view"
    img.save(tmp_path / "o.jpg", exif=exif, quality=100)
    photo = load_photo(tmp_path / "o.jpg", 20, 30)            # upright it is 20 wide, 30 tall
    assert photo.rgb.shape == (30, 20, 3)
    assert "EXIF orientation applied" in photo.notes


@pytest.mark.parametrize("content,message", [(b"not an image at all", "cannot read the image"),
                                             (None, "not found")])
def test_unreadable_or_missing_photo_is_one_line(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserInputError) as err:
        load_photo(path, 16, 16)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_photo_is_one_line(tmp_path):
    Image.fromarray(_gradient(64, 64)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="cannot read the image"):
        load_photo(tmp_path / "t.png", 16, 16)


def test_too_small_photo_is_refused_with_the_limit(tmp_path):
    Image.fromarray(_gradient(20, 20)).save(tmp_path / "s.png")
    with pytest.raises(UserInputError, match=r"too small for 64x64.*x3\.20.*at most x2"):
        load_photo(tmp_path / "s.png", 64, 64)
    assert load_photo(tmp_path / "s.png", 40, 40).rgb.shape == (40, 40, 3)   # x2 exactly is allowed


def test_depth_map_follows_the_photo_crop(tmp_path):
    pixels = _gradient(40, 80)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    cols = np.arange(80, dtype=np.float32)
    depth = np.broadcast_to(1.0 + cols / 10, (40, 80)).copy()
    np.save(tmp_path / "d.npy", depth)
    photo = load_photo(tmp_path / "wide.png", 20, 20)        # scale 0.5, 10 px (scaled) cut each side
    got = load_depth_map(tmp_path / "d.npy", photo.plan)
    assert got.shape == (20, 20)
    # output column j samples source column floor((j + 0.5 + 10) / 0.5) = 2j + 21
    assert np.allclose(got[0].numpy(), 1.0 + (2 * np.arange(20) + 21) / 10)


def test_16_bit_png_depth_is_millimetres(tmp_path):
    Image.fromarray(_gradient(16, 16)).save(tmp_path / "p.png")
    Image.fromarray(np.full((16, 16), 2500, np.uint16)).save(tmp_path / "d.png")
    photo = load_photo(tmp_path / "p.png", 16, 16)
    assert torch.allclose(load_depth_map(tmp_path / "d.png", photo.plan), torch.full((16, 16), 2.5))


@pytest.mark.parametrize("make,message", [
    (lambda p: np.save(p.with_suffix(".npy"), np.ones((10, 16), np.float32)), "is 16x10 but the image is 16x16"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((16, 16), np.float32)), "256 pixels that are not finite positive"),
    (lambda p: np.save(p.with_suffix(".npy"), np.full((16, 16), np.nan)), "not finite positive"),
    (lambda p: np.save(p.with_suffix(".npy"), np.ones((16, 16, 3))), "2-D array"),
    (lambda p: p.with_suffix(".npy").write_bytes(b"\x93NUMPY garbage"), "cannot read the depth map"),
    (lambda p: Image.fromarray(np.ones((16, 16), np.uint8)).save(p.with_suffix(".png")), "must be a 16-bit PNG"),
])
def test_bad_depth_maps_are_one_line(tmp_path, make, message):
    Image.fromarray(_gradient(16, 16)).save(tmp_path / "photo.png")
    photo = load_photo(tmp_path / "photo.png", 16, 16)
    make(tmp_path / "depth")
    path = next(tmp_path.glob("depth.*"))
    with pytest.raises(UserInputError) as err:
        load_depth_map(path, photo.plan)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_priors_return_the_photo_and_its_metric_depth(tmp_path):
    from scenedreamer.geometry.cameras import cameras_from_fov
    from scenedreamer.priors.base import DepthEstimator, DepthKind, TextToImage

    Image.fromarray(_gradient(24, 24)).save(tmp_path / "p.png")
    np.save(tmp_path / "d.npy", np.full((24, 24), 3.0, np.float32))
    first, depth = photo_priors(tmp_path / "p.png", tmp_path / "d.npy", 24, 24)
    assert isinstance(first, PhotoFirstView) and isinstance(first, TextToImage)
    assert isinstance(depth, GivenDepth) and isinstance(depth, DepthEstimator)
    camera = cameras_from_fov(torch.eye(4)[None], 24, 24, 60.0)
    image = first.generate("ignored", camera)
    prediction = depth.estimate(image, camera)
    assert prediction.kind is DepthKind.METRIC and torch.allclose(prediction.values, torch.full((24, 24), 3.0))
    with pytest.raises(InternalError, match="another image"):
        depth.estimate(torch.zeros_like(image), camera)       # the map belongs to the photo only
