"""A user's photo as the first view, and a user's depth map as its depth.

``PhotoFirstView`` plays the TextToImage role: ``generate`` returns the photo, fitted to the
run's resolution by one uniform scale and a centre crop (``FitPlan`` says exactly what was cut).
``GivenDepth`` plays the first-view DepthEstimator role with the user's metric z-depth, resampled
by the same plan. Everything is read and checked when they are built, before a run folder exists;
every bad file is one UserInputError line naming it.

File conventions:
- images: anything Pillow reads (PNG, JPEG, WebP, TIFF, ...). EXIF orientation is applied. An
  alpha channel is composited over white, a 16-bit image is reduced to 8 bits per channel, a grey
  or palette image is expanded to RGB; each conversion is reported in ``notes``.
- depth: ``.npy`` float z-depth in metres (H, W), or a 16-bit PNG whose values times
  ``png_scale`` are metres (0.001: millimetres, the convention of Kinect / NYU / ScanNet depth
  PNGs). The map must have the photo's own size (before fitting) and be finite and > 0 everywhere.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InternalError, UserInputError
from ..geometry.cameras import Cameras
from .base import DepthKind, DepthPrediction, check_image

MIN_PHOTO_SIDE = 8
"""Smallest photo side (pixels) accepted at all; the run's own minimum view size (config.py)."""


@dataclass(frozen=True)
class FitPlan:
    """How a (src_width x src_height) picture becomes (width x height): scale by ``scale``, then
    keep the centred window starting at (``left``, ``top``) of the scaled picture.

    All figures are in pixels of the scaled picture except the ``src_*`` sizes.
    """

    src_width: int
    src_height: int
    width: int
    height: int
    scale: float
    left: float
    top: float

    @staticmethod
    def cover(src_width: int, src_height: int, width: int, height: int) -> "FitPlan":
        """The smallest uniform scale that covers (width, height), centred: no distortion and no
        borders, the excess of one axis cut equally on both sides."""
        scale = max(width / src_width, height / src_height)
        return FitPlan(src_width, src_height, width, height, scale,
                       (src_width * scale - width) / 2, (src_height * scale - height) / 2)

    def source_box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the kept window in source pixels (Pillow's resize box)."""
        left, top = self.left / self.scale, self.top / self.scale
        return (left, top, left + self.width / self.scale, top + self.height / self.scale)

    def describe(self) -> str:
        """One phrase for logs and --dry-run, e.g. "1024x768 scaled x0.333 to 341x256, 43 px cut
        left and right"."""
        scaled = f"{self.src_width}x{self.src_height} scaled x{self.scale:.3g} to " \
                 f"{self.src_width * self.scale:.0f}x{self.src_height * self.scale:.0f}"
        cuts = []
        if self.left >= 0.5:
            cuts.append(f"{self.left:.0f} px cut left and right")
        if self.top >= 0.5:
            cuts.append(f"{self.top:.0f} px cut top and bottom")
        return scaled + (", " + ", ".join(cuts) if cuts else ", nothing cut")


def _check_file(path: Path, what: str) -> None:
    """UserInputError naming ``path`` unless it is an existing file."""
    if not path.is_file():
        raise UserInputError(f"{path}: {what} not found" if not path.exists() else f"{path}: {what} is not a file")


def _open_image(path: Path, what: str):
    """The Pillow image at ``path`` with its pixels loaded (UserInputError naming the file)."""
    from PIL import Image, UnidentifiedImageError

    _check_file(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)   # a bomb is refused, not decoded
            img = Image.open(path)
            img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UserInputError(f"{path}: cannot read the {what} ({' '.join(str(err).split())})") from None
    except (OSError, ValueError, SyntaxError) as err:   # truncated / corrupt data (Pillow raises all three)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else ' '.join(str(err).split())
        raise UserInputError(f"{path}: cannot read the {what} ({reason})") from None
    return img


def _png_bit_depth(path: Path) -> int | None:
    """Bits per sample from a PNG's IHDR chunk (None when not a PNG): Pillow opens 16-bit RGB PNGs
    as 8-bit RGB without saying so."""
    with open(path, "rb") as f:
        head = f.read(25)
    if len(head) == 25 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


@dataclass(frozen=True)
class Photo:
    """A photo fitted to the run's resolution.

    rgb: (height, width, 3) float32 in [0, 1]; plan: how the source was fitted; notes: the
    conversions made (alpha, bit depth, orientation, colour mode), one phrase each."""

    path: Path
    rgb: Tensor
    plan: FitPlan
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One line: the file, the fit and the conversions."""
        return f"{self.path}: {self.plan.describe()}" + "".join(f"; {n}" for n in self.notes)


def read_photo_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the photo at ``path`` after EXIF orientation, reading only its header
    (for --dry-run). UserInputError when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path, "image")
    try:
        with Image.open(path) as img:
            w, h = img.size
            rotated = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)   # EXIF orientations that swap axes
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UserInputError(f"{path}: cannot read the image ({' '.join(str(err).split())})") from None
    return (h, w) if rotated else (w, h)


def fit_plan_for(src_width: int, src_height: int, width: int, height: int, max_upscale: float,
                 where: str) -> FitPlan:
    """The cover plan, refused (UserInputError naming ``where``) when the source is smaller than
    MIN_PHOTO_SIDE or would need more than ``max_upscale`` times enlargement."""
    if min(src_width, src_height) < MIN_PHOTO_SIDE:
        raise UserInputError(f"{where}: image is {src_width}x{src_height}; at least {MIN_PHOTO_SIDE} px a side is needed")
    plan = FitPlan.cover(src_width, src_height, width, height)
    if plan.scale > max_upscale:
        raise UserInputError(f"{where}: image is {src_width}x{src_height}, too small for {width}x{height} views "
                             f"(it would be enlarged x{plan.scale:.2f}; at most x{max_upscale:g}, "
                             "see first_view.max_upscale); use a larger photo or a smaller --resolution")
    return plan


def load_photo(path: str | Path, width: int, height: int, max_upscale: float = 2.0) -> Photo:
    """Read the photo at ``path`` and fit it to (width x height) (see the module docstring).

    Returns a Photo whose rgb is (height, width, 3) float32 in [0, 1] on the CPU. Downscaling
    filters with Lanczos over the whole footprint (Pillow's ``reducing_gap`` off), so there is no
    aliasing; enlargement beyond ``max_upscale`` is refused (it would only blur).
    """
    from PIL import Image, ImageOps

    path = Path(path)
    img = _open_image(path, "image")
    notes: list[str] = []
    if img.getexif().get(0x0112, 1) != 1:
        img = ImageOps.exif_transpose(img)
        notes.append("EXIF orientation applied")
    bits = _png_bit_depth(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):           # 16-bit (or 32-bit int) grey
        values = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
        img = Image.fromarray(np.clip(np.rint(values / peak * 255.0), 0, 255).astype(np.uint8), "L")
        notes.append("16-bit grey converted to 8-bit RGB" if peak > 255 else "grey converted to RGB")
    elif img.mode == "F":
        raise UserInputError(f"{path}: a floating-point image is not a photo (is it a depth map? give it to --image-depth)")
    elif bits == 16:
        notes.append("16-bit PNG reduced to 8 bits per channel")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            notes.append("alpha channel composited over white")
        else:
            notes.append("opaque alpha channel dropped")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif img.mode == "L":
        if not notes or "grey" not in notes[-1]:
            notes.append("grey converted to RGB")
        img = img.convert("RGB")
    elif img.mode != "RGB":                                   # CMYK, YCbCr, LAB, ...
        notes.append(f"{img.mode} converted to RGB")
        img = img.convert("RGB")
    plan = fit_plan_for(img.width, img.height, width, height, max_upscale, str(path))
    fitted = img.resize((width, height), Image.Resampling.LANCZOS, box=plan.source_box())
    rgb = torch.from_numpy(np.asarray(fitted, dtype=np.float32) / 255.0).contiguous()
    return Photo(path, rgb, plan, tuple(notes))


def load_depth_map(path: str | Path, plan: FitPlan, png_scale: float = 0.001) -> Tensor:
    """The user's z-depth of the photo, in metres, resampled by ``plan`` to (plan.height, plan.width).

    path: ``.npy`` (float metres, shape (H, W) or (H, W, 1)) or a 16-bit PNG (values x png_scale =
    metres). (H, W) must be the photo's own size (plan.src_height, plan.src_width). Resampling is
    nearest-neighbour at the output pixel centres: depth must not be blended across an object's
    edge (that would make floating points between foreground and background).
    Returns float32 (height, width) on the CPU. UserInputError for a bad file, size or value.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        _check_file(path, "depth map")
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise UserInputError(f"{path}: cannot read the depth map ({' '.join(str(err).split())})") from None
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2 or not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
            raise UserInputError(f"{path}: depth map must be a 2-D array of numbers (metres), got "
                                 f"{depth.dtype} of shape {depth.shape}")
        depth = depth.astype(np.float64)
    else:
        img = _open_image(path, "depth map")
        if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise UserInputError(f"{path}: depth map must be a 16-bit PNG (values x {png_scale:g} = metres) or a "
                                 f".npy of metres; got a {img.mode} image")
        depth = np.asarray(img, dtype=np.float64) * png_scale
    if depth.shape != (plan.src_height, plan.src_width):
        raise UserInputError(f"{path}: depth map is {depth.shape[1]}x{depth.shape[0]} but the image is "
                             f"{plan.src_width}x{plan.src_height}; they must match pixel for pixel")
    bad = ~np.isfinite(depth) | (depth <= 0)
    if bad.any():
        raise UserInputError(f"{path}: depth map has {int(bad.sum())} pixels that are not finite positive metres "
                             "(0 = unknown is not allowed: fill them first)")
    # output pixel (i, j) has its centre at ((j + 0.5 + left) / scale, (i + 0.5 + top) / scale) in source pixels
    cols = np.floor((np.arange(plan.width) + 0.5 + plan.left) / plan.scale).astype(np.int64)
    rows = np.floor((np.arange(plan.height) + 0.5 + plan.top) / plan.scale).astype(np.int64)
    cols = np.clip(cols, 0, plan.src_width - 1)
    rows = np.clip(rows, 0, plan.src_height - 1)
    return torch.from_numpy(depth[rows[:, None], cols[None, :]].astype(np.float32))


def _check_camera_size(camera: Cameras | None, who: str, height: int, width: int) -> None:
    if camera is not None and (camera.height, camera.width) != (height, width):
        raise InternalError(f"{who}: the camera is {camera.width}x{camera.height} but the photo was fitted to "
                             f"{width}x{height}")


class PhotoFirstView:
    """TextToImage role: the first view is the user's photo (the prompt still guides every later
    view). The photo is read and fitted when this is built."""

    def __init__(self, photo: Photo) -> None:
        self.photo = photo
        self.label = f"your photo {photo.path.name} ({photo.plan.describe()}" + "".join(f"; {n}" for n in photo.notes) + ")"

    def generate(self, prompt: str, camera: Cameras, generator: torch.Generator | None = None) -> Tensor:
        """The photo (H, W, 3) float32 in [0, 1] on camera.device (prompt and generator unused)."""
        _check_camera_size(camera, self.label, *self.photo.rgb.shape[:2])
        return self.photo.rgb.to(camera.device).clone()       # callers may edit it in place


class GivenDepth:
    """DepthEstimator role for the first view: the user's metric z-depth of their photo."""

    def __init__(self, depth: Tensor, path: Path, photo: Photo) -> None:
        if depth.shape != photo.rgb.shape[:2]:
            raise UserInputError(f"{path}: depth map {tuple(depth.shape)} does not match the fitted photo "
                                 f"{tuple(photo.rgb.shape[:2])}")
        self.depth = depth
        self.photo = photo
        self.label = f"your depth map {Path(path).name} (metric)"

    def estimate(self, image: Tensor, camera: Cameras | None = None) -> DepthPrediction:
        """The given depth (H, W) float32 in metres (METRIC) on image.device. ``image`` must be the
        photo itself: this depth belongs to that one picture, not to any later view."""
        check_image(image, self.label)
        photo = self.photo.rgb.to(image.device, image.dtype)
        if image.shape != photo.shape or not torch.equal(image, photo):
            raise InternalError(f"{self.label}: asked for the depth of another image than the photo it belongs to")
        return DepthPrediction(self.depth.to(image.device, torch.float32, copy=True), DepthKind.METRIC)


def photo_priors(image: str | Path, depth: str | Path | None, width: int, height: int,
                 max_upscale: float = 2.0, png_scale: float = 0.001) -> tuple[PhotoFirstView, GivenDepth | None]:
    """Build the first-view priors of a photo start (depth None: a depth network estimates it).
    Everything is read and checked now. ``math.isfinite`` guards the two scalars."""
    if not (math.isfinite(max_upscale) and max_upscale >= 1.0):
        raise UserInputError(f"first_view.max_upscale: {max_upscale!r}; expected a number >= 1")
    if not (math.isfinite(png_scale) and png_scale > 0):
        raise UserInputError(f"first_view.depth_png_scale: {png_scale!r}; expected metres per unit > 0")
    photo = load_photo(image, width, height, max_upscale)
    given = None
    if depth:
        given = GivenDepth(load_depth_map(depth, photo.plan, png_scale), Path(depth), photo)
    return PhotoFirstView(photo), given
