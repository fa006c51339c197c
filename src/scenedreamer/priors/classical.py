"""Classical (network-free) inpainting of images and background-biased completion of depth.

``ClassicalInpainter`` fills each connected hole by its size: thin cracks (a small largest
inscribed disc) with OpenCV's Telea or Navier-Stokes diffusion, which is smooth and fast; large
holes with PatchMatch (pypatchmatch), which copies texture. Known pixels are returned unchanged.

``complete_depth`` fills depth holes the way disocclusions need: a hole revealed by moving the
camera belongs to the background, so each hole pixel takes its value from the farther of the
known pixels around it, interpolated in disparity (1 / depth).
"""

from __future__ import annotations


import cv2
import numpy as np
import torch
from torch import Tensor

from ..errors import InternalError, UserInputError
from .base import check_image, check_mask
from .config import ClassicalInpaintConfig, DepthCompletionConfig


class ClassicalInpainter:
    """Inpainter without networks: OpenCV diffusion for thin holes, PatchMatch for large ones.

    The prompt is ignored; the camera is not needed. An empty ``inpaint`` mask returns the image
    itself with no work. A mask covering every pixel is a UserInputError (nothing to copy from).
    """

    label = "classical inpainting (OpenCV + PatchMatch, offline)"

    def __init__(self, config: ClassicalInpaintConfig | None = None) -> None:
        self.config = config or ClassicalInpaintConfig()
        if self.config.opencv_method not in ("telea", "ns"):
            raise UserInputError(f"classical inpainting: opencv_method must be 'telea' or 'ns', "
                                 f"got {self.config.opencv_method!r}")

    def inpaint(self, image: Tensor, inpaint: Tensor, prompt: str = "", generator: torch.Generator | None = None,
                camera=None) -> Tensor:
        """image (H, W, 3) float in [0, 1], inpaint (H, W) bool (True = fill) -> (H, W, 3) same device/dtype."""
        check_image(image, self.label)
        check_mask(inpaint, image, self.label)
        if not bool(inpaint.any()):
            return image
        if bool(inpaint.all()):
            raise UserInputError(f"{self.label}: the inpaint mask covers the whole image; nothing to copy from")
        cfg = self.config
        img8 = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
        hole = inpaint.cpu().numpy()
        large, thin = split_holes(hole, cfg.large_hole_radius)
        filled = img8.copy()
        if large.any():
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
            filled = _patchmatch_fill(filled, large, cfg, seed)
        if thin.any():
            flag = cv2.INPAINT_TELEA if cfg.opencv_method == "telea" else cv2.INPAINT_NS
            filled = cv2.inpaint(np.ascontiguousarray(filled), thin.astype(np.uint8), cfg.opencv_radius, flag)
        fill = torch.from_numpy(filled).to(device=image.device, dtype=image.dtype) / 255.0
        return torch.where(inpaint[..., None], fill, image)


def split_holes(hole: np.ndarray, large_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a bool (H, W) hole mask into (large, thin) by each 8-connected hole's largest
    inscribed disc radius (the maximum of its distance transform) against ``large_radius``."""
    mask8 = hole.astype(np.uint8)
    count, labels = cv2.connectedComponents(mask8, connectivity=8)
    # distance from each hole pixel to the nearest known pixel (the image border counts as known)
    padded = np.pad(mask8, 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    radius = np.zeros(count, np.float32)
    np.maximum.at(radius, labels.ravel(), dist.ravel())
    is_large = radius >= large_radius
    is_large[0] = False                                    # label 0 = known pixels
    large = is_large[labels]
    return large, hole & ~large


def _patchmatch_fill(img8: np.ndarray, large: np.ndarray, cfg: ClassicalInpaintConfig, seed: int) -> np.ndarray:
    """PatchMatch on a (downscaled) crop around the large holes; returns a full (H, W, 3) uint8 image."""
    from patchmatch import patch_match

    H, W = large.shape
    rows, cols = np.nonzero(large)
    i0, i1 = max(0, rows.min() - cfg.crop_margin), min(H, rows.max() + 1 + cfg.crop_margin)
    j0, j1 = max(0, cols.min() - cfg.crop_margin), min(W, cols.max() + 1 + cfg.crop_margin)
    crop, crop_hole = img8[i0:i1, j0:j1], large[i0:i1, j0:j1]
    if not (~crop_hole).any():                             # no source pixel in the crop: use the image
        i0, i1, j0, j1 = 0, H, 0, W
        crop, crop_hole = img8, large
    h, w = crop_hole.shape
    scale = 1.0
    if cfg.patchmatch_max_side is not None and max(h, w) > cfg.patchmatch_max_side:
        scale = cfg.patchmatch_max_side / max(h, w)
    patch_match.set_random_seed(seed)
    if scale < 1.0:
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
        # conservative: a low-res pixel is a hole if any of its high-res pixels is one
        small_hole = cv2.resize(crop_hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0
        if not (~small_hole).any():
            small_hole = cv2.resize(crop_hole.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST) > 0
        out_small = patch_match.inpaint(small, small_hole.astype(np.uint8), patch_size=cfg.patch_size)
        out = cv2.resize(out_small, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        out = patch_match.inpaint(np.ascontiguousarray(crop), crop_hole.astype(np.uint8), patch_size=cfg.patch_size)
    result = img8.copy()
    region = result[i0:i1, j0:j1]
    region[crop_hole] = out[crop_hole]
    return result


def complete_depth(depth: Tensor, known: Tensor, config: DepthCompletionConfig | None = None) -> Tensor:
    """Fill the unknown pixels of a z-depth map from the farther side, in disparity.

    depth: (H, W) z-depth > 0 where ``known``; values elsewhere are ignored.
    known: (H, W) bool. Returns (H, W) z-depth (known pixels exactly as given).
    Each unknown pixel looks left, right, up and down for the nearest known pixel; of those
    candidates it keeps the background ones (see ``foreground_ratio``) and takes their inverse-
    distance-weighted mean disparity. Pixels with no candidate are filled in later passes from
    newly filled ones.
    """
    cfg = config or DepthCompletionConfig()
    _check_depth_inputs(depth, known)
    if bool(known.all()):
        return depth
    disp = torch.where(known, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
    have = known.clone()
    for _ in range(cfg.max_passes):
        fill, ok = _directional_fill(disp, have, cfg.foreground_ratio)
        new = ok & ~have
        if not bool(new.any()):
            break
        disp = torch.where(new, fill, disp)
        have = have | new
        if bool(have.all()):
            break
    farthest = disp[known].min()
    disp = torch.where(have, disp, farthest)
    return torch.where(known, depth, 1.0 / disp)


def _check_depth_inputs(depth: Tensor, known: Tensor) -> None:
    who = "complete_depth"
    if not isinstance(depth, Tensor) or depth.ndim != 2 or not depth.is_floating_point():
        raise InternalError(f"{who}: depth must be a float tensor (H, W), got "
                             f"{tuple(depth.shape) if isinstance(depth, Tensor) else type(depth).__name__}")
    if not isinstance(known, Tensor) or known.dtype != torch.bool or known.shape != depth.shape:
        raise InternalError(f"{who}: known must be a bool tensor of the depth's shape {tuple(depth.shape)}")
    if not bool(known.any()):
        raise UserInputError(f"{who}: no known depth pixel; nothing to complete from")
    if not bool((depth[known] > 0).all()):
        raise UserInputError(f"{who}: known depth values must be > 0")


def _nearest_known_along_rows(have: Tensor) -> tuple[Tensor, Tensor]:
    """Column of the nearest known pixel at or left of each pixel (-1 if none), and right (W if none)."""
    H, W = have.shape
    j = torch.arange(W, device=have.device).expand(H, W)
    left = torch.where(have, j, torch.full_like(j, -1)).cummax(dim=1).values
    jr = torch.where(have, W - 1 - j, torch.full_like(j, -1)).flip(1).cummax(dim=1).values.flip(1)
    right = torch.where(jr >= 0, W - 1 - jr, torch.full_like(jr, W))
    return left, right


def _directional_fill(disp: Tensor, have: Tensor, ratio: float) -> tuple[Tensor, Tensor]:
    """One pass: (fill (H, W) disparity, ok (H, W) bool where a candidate existed)."""
    H, W = disp.shape
    cands, dists = [], []
    for transpose in (False, True):
        d, h = (disp.T, have.T) if transpose else (disp, have)
        n = d.shape[1]
        j = torch.arange(n, device=d.device).expand_as(d)
        left, right = _nearest_known_along_rows(h)
        for idx, valid in ((left, left >= 0), (right, right < n)):
            value = d.gather(1, idx.clamp(0, n - 1))
            dist = (j - idx).abs().to(d.dtype)
            value = torch.where(valid, value, torch.full_like(value, float("nan")))
            cands.append(value.T if transpose else value)
            dists.append(dist.T if transpose else dist)
    c = torch.stack(cands)                                   # (4, H, W) candidate disparities (nan = none)
    dist = torch.stack(dists)
    valid = ~torch.isnan(c)
    farthest = torch.where(valid, c, torch.full_like(c, float("inf"))).amin(0)   # smallest disparity
    background = valid & (c <= farthest * (1.0 + ratio))
    w = torch.where(background, 1.0 / dist.clamp_min(1.0), torch.zeros_like(dist))
    fill = (w * torch.nan_to_num(c)).sum(0) / w.sum(0).clamp_min(1e-12)
    return fill, valid.any(0)


class ClassicalDepthCompleter:
    """DepthCompleter role by ``complete_depth``: the holes a camera move reveals take the depth of
    the background around them. The network-free depth of later views (a photo start offline)."""

    label = "background-biased depth completion (classical)"

    def __init__(self, config: DepthCompletionConfig | None = None) -> None:
        self.config = config or DepthCompletionConfig()

    def complete(self, depth: Tensor, known: Tensor) -> Tensor:
        """depth (H, W) > 0 where ``known`` (H, W) bool -> (H, W) z-depth (known pixels exact).
        A view with no known pixel has nothing to complete from: UserInputError."""
        if not bool(known.any()):
            raise UserInputError(f"{self.label}: the view has no known depth to complete from "
                                 "(a first view needs a depth map or a depth network)")
        return complete_depth(depth, known, self.config)


def complete_depth_reference(depth: Tensor, known: Tensor, config: DepthCompletionConfig | None = None) -> Tensor:
    """Per-pixel loop twin of ``complete_depth`` (slow, obviously correct; for tests, tiny sizes)."""
    cfg = config or DepthCompletionConfig()
    _check_depth_inputs(depth, known)
    H, W = depth.shape
    disp = [[1.0 / float(depth[i, j]) if bool(known[i, j]) else 0.0 for j in range(W)] for i in range(H)]
    have = [[bool(known[i, j]) for j in range(W)] for i in range(H)]
    for _ in range(cfg.max_passes):
        new = {}
        for i in range(H):
            for j in range(W):
                if have[i][j]:
                    continue
                cands = []
                for di, dj in ((0, -1), (0, 1), (-1, 0), (1, 0)):
                    k, ii, jj = 1, i + di, j + dj
                    while 0 <= ii < H and 0 <= jj < W:
                        if have[ii][jj]:
                            cands.append((disp[ii][jj], k))
                            break
                        k, ii, jj = k + 1, ii + di, jj + dj
                if cands:
                    far = min(c for c, _ in cands)
                    bg = [(c, k) for c, k in cands if c <= far * (1.0 + cfg.foreground_ratio)]
                    new[(i, j)] = sum(c / k for c, k in bg) / sum(1.0 / k for _, k in bg)
        if not new:
            break
        for (i, j), v in new.items():
            disp[i][j], have[i][j] = v, True
    farthest = min(disp[i][j] for i in range(H) for j in range(W) if bool(known[i, j]))
    out = depth.clone()
    for i in range(H):
        for j in range(W):
            if not bool(known[i, j]):
                out[i, j] = 1.0 / (disp[i][j] if have[i][j] else farthest)
    return out
