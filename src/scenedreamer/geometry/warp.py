"""Warping an RGB-D view into another camera ("depth-based differentiable rendering").

Three operations, all batched (B views at once) and device-agnostic:

- ``forward_warp``: splat every source pixel (lifted to 3D by its depth) onto the nearest target
  pixel with a z-buffer (nearest surface wins), then fill 1-pixel cracks left by magnification.
  Pixels are never connected to each other, so a depth discontinuity leaves a hole (to be
  inpainted) instead of a "rubber sheet" of stretched pixels; the crack filler only bridges two
  neighbours that lie on the same surface (their depths agree within a relative tolerance).
  A pixel whose line of sight the source never saw (the far backdrop carried in front of space
  beside a sideways step: ``line_of_sight_seen``) is left out too.
- ``soft_forward_warp``: the differentiable variant: bilinear splatting with soft z-buffer
  weights (softmax splatting), so gradients reach both the carried colour and the source depth.
- ``backward_warp``: given the target's depth, sample the source image where each target pixel
  reprojects (grid_sample).

The slow, per-pixel twin of ``forward_warp`` lives in ``warp_reference.py``; tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import Cameras
from .projection import project_points, unproject_depth
from .config import ForwardWarpConfig


@dataclass(frozen=True)
class WarpResult:
    """A view warped into a target camera.

    rgb: (B, H, W, C) values carried (colour or any channels), 0 where not valid.
    depth: (B, H, W) z-depth in the TARGET camera (scene units), 0 where not valid.
    valid: (B, H, W) bool, True where the target pixel received content.
    """

    rgb: Tensor
    depth: Tensor
    valid: Tensor


@dataclass(frozen=True)
class SoftWarpConfig:
    """Tunables of the differentiable (soft z-buffer) forward warp."""

    near: float = 1e-4
    """Points whose z-depth in the target camera is below this (scene units) are dropped."""
    depth_sharpness: float = 50.0
    """Soft z-buffer: a splat's weight is exp(-sharpness * (z - z_front) / z_front), z_front the
    nearest depth landing on that target pixel; larger means closer to a hard z-buffer."""
    min_coverage: float = 0.3
    """A target pixel is valid when its summed bilinear splat weight reaches this."""
    front_min_weight: float = 0.05
    """Only splats with at least this bilinear weight on a pixel define its front depth z_front
    (a point landing almost on the neighbouring pixel must not hide the one landing here)."""
    eps: float = 1e-8
    """Guards the normalising division by the summed weights."""


@dataclass(frozen=True)
class BackwardWarpConfig:
    """Tunables of the backward (gather) warp."""

    near: float = 1e-4
    """Target pixels whose reprojection into the source has z-depth below this are invalid."""
    mode: str = "bilinear"
    """grid_sample interpolation: "bilinear" or "nearest"."""
    occlusion_rel_tol: float = 0.05
    """With ``src_depth``: a target pixel is occluded in the source when its reprojected depth
    exceeds the source depth there by more than this fraction."""


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------

def _check_view(rgb: Tensor, depth: Tensor, valid: Tensor | None, cams: Cameras, what: str) -> Tensor:
    """Validate shapes of an RGB-D view against its cameras; return the valid mask (B, H, W)."""
    B, H, W = len(cams), cams.height, cams.width
    if rgb.ndim != 4 or tuple(rgb.shape[:3]) != (B, H, W):
        raise ValueError(f"{what}: rgb must be (B, H, W, C) = ({B}, {H}, {W}, C), got {tuple(rgb.shape)}")
    if tuple(depth.shape) != (B, H, W):
        raise ValueError(f"{what}: depth must be ({B}, {H}, {W}), got {tuple(depth.shape)}")
    if valid is None:
        return torch.ones(B, H, W, dtype=torch.bool, device=depth.device)
    if tuple(valid.shape) != (B, H, W) or valid.dtype != torch.bool:
        raise ValueError(f"{what}: valid must be bool ({B}, {H}, {W}), got {valid.dtype} {tuple(valid.shape)}")
    return valid


def _src_to_dst_pixels(depth: Tensor, src: Cameras, dst: Cameras) -> tuple[Tensor, Tensor, Tensor]:
    """Where each source pixel lands in the target camera.

    depth: (B, Hs, Ws) source z-depth. Returns u, v (B, Hs*Ws) target pixel coordinates and
    z (B, Hs*Ws) target z-depth. Composes M = K_dst R_{dst<-src} K_src^-1 and b = K_dst t once,
    so the per-pixel work is pix = depth * (M @ [u, v, 1]) + b, written out per component
    (broadcasting the pixel row/column; much faster on CPU than a batched matmul with K = 3).
    """
    B, Hs, Ws = depth.shape
    rel = dst.w2c @ src.c2w                                               # (B, 4, 4) src cam -> dst cam
    M = (dst.K @ rel[:, :3, :3] @ torch.linalg.inv(src.K)).to(depth.dtype)   # (B, 3, 3)
    b = (dst.K @ rel[:, :3, 3:]).to(depth.dtype)                           # (B, 3, 1)
    u = (torch.arange(Ws, device=depth.device, dtype=depth.dtype) + 0.5).view(1, 1, Ws)
    v = (torch.arange(Hs, device=depth.device, dtype=depth.dtype) + 0.5).view(1, Hs, 1)

    def component(k: int) -> Tensor:
        ray = M[:, k, 0].view(B, 1, 1) * u + (M[:, k, 1].view(B, 1, 1) * v + M[:, k, 2].view(B, 1, 1))
        return (depth * ray + b[:, k].view(B, 1, 1)).reshape(B, -1)         # (B, Hs*Ws)

    x, y, z = component(0), component(1), component(2)
    inv_z = 1.0 / z.clamp_min(torch.finfo(depth.dtype).tiny)
    return x * inv_z, y * inv_z, z


def source_depth_edges(depth: Tensor, rel_tol: float) -> Tensor:
    """(B, H, W) bool: pixels with a 4-neighbour nearer by more than ``rel_tol`` * own depth.

    These are the far sides of depth discontinuities in a z-depth map (B, H, W).
    """
    padded = F.pad(depth.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    neighbours = torch.stack([padded[:, 1:-1, :-2], padded[:, 1:-1, 2:],
                              padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]])    # (4, B, H, W)
    nearest = neighbours.amin(dim=0)
    return depth - nearest > rel_tol * depth


def _min3x3(x: Tensor) -> Tensor:
    """(B, H, W) -> minimum over each pixel's 3x3 block (inf outside), by shifted minima
    (separable; much faster on CPU than max_pool2d)."""
    p = F.pad(x, (1, 1, 1, 1), value=float("inf"))
    rows = torch.minimum(torch.minimum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])        # (B, H+2, W)
    return torch.minimum(torch.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def fill_cracks(rgb: Tensor, depth: Tensor, valid: Tensor, source_rc: Tensor,
                rel_tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """One pass of crack filling on a splatted view, never across depth edges.

    rgb (B, H, W, C), depth (B, H, W), valid (B, H, W) bool, source_rc (B, H, W, 2) integer (< 2^15): the
    source pixel (row, col) each target pixel came from. Two opposite neighbours (left/right,
    up/down or diagonal) of a pixel bound a CRACK when both are valid, came from ADJACENT source
    pixels (8-neighbours: magnification pulled them apart) and agree in depth within rel_tol
    (one surface). A pixel inside a crack is filled when it is empty or see-through (farther
    than the pair by more than rel_tol: background showing through the crack). The fill is the
    pair's mean; when several pairs qualify the nearest (then the first listed) wins.
    Neighbours are read before any write (one Jacobi-style pass), so the visiting order does
    not matter. Returns the new (rgb, depth, valid).

    Speed: only CANDIDATE pixels are examined: those with two valid opposite neighbours that
    are empty or farther than (1 + rel_tol) x the nearest valid pixel of their 3x3 block (a
    see-through pixel is farther than both of its pair, hence than that minimum). They are few
    (cracks and hole rims), so the pair tests run on a gathered subset, not the full image.
    """
    B, H, W, C = rgb.shape
    inf = torch.tensor(float("inf"), dtype=depth.dtype, device=depth.device)
    depth_or_inf = torch.where(valid, depth, inf)
    nearest = _min3x3(depth_or_inf)
    m = F.pad(valid, (1, 1, 1, 1))
    has_pair = ((m[:, 1:-1, :-2] & m[:, 1:-1, 2:]) | (m[:, :-2, 1:-1] & m[:, 2:, 1:-1])
                | (m[:, :-2, :-2] & m[:, 2:, 2:]) | (m[:, :-2, 2:] & m[:, 2:, :-2]))
    candidates = has_pair & (~valid | (depth - nearest > rel_tol * nearest))
    cand = candidates.reshape(-1).nonzero().squeeze(1)                     # flat indices (b, i, j)
    if cand.numel() == 0:
        return rgb, depth, valid

    # one-pixel invalid border, so border pixels simply have no partner on that side
    Hp, Wp = H + 2, W + 2
    d = F.pad(depth_or_inf, (1, 1, 1, 1), value=float("inf")).reshape(-1)
    c = F.pad(rgb, (0, 0, 1, 1, 1, 1)).reshape(-1, C)
    # source (row, col) packed in one int32 (row << 16 | col) so each neighbour costs one gather
    packed = (source_rc[..., 0].to(torch.int32) << 16) | source_rc[..., 1].to(torch.int32)
    rc = F.pad(packed, (1, 1, 1, 1)).reshape(-1)
    b_i, rem = cand // (H * W), cand % (H * W)
    centre = b_i * (Hp * Wp) + (rem // W + 1) * Wp + (rem % W + 1)        # index in the padded arrays
    own_depth, own_valid = depth.reshape(-1)[cand], valid.reshape(-1)[cand]

    best_depth = torch.full_like(own_depth, float("inf"))
    best_a = torch.zeros_like(centre)
    best_b = torch.zeros_like(centre)
    for (ai, aj), (bi, bj) in (((0, -1), (0, 1)), ((-1, 0), (1, 0)), ((-1, -1), (1, 1)), ((-1, 1), (1, -1))):
        ia, ib = centre + ai * Wp + aj, centre + bi * Wp + bj
        da, db = d[ia], d[ib]                                               # inf where invalid
        pa, pb = rc[ia], rc[ib]
        adjacent_sources = (((pa >> 16) - (pb >> 16)).abs() <= 1) & (((pa & 0xFFFF) - (pb & 0xFFFF)).abs() <= 1)
        same_surface = adjacent_sources & ((da - db).abs() <= rel_tol * torch.minimum(da, db))  # inf-inf: nan
        far = torch.maximum(da, db)
        needs = ~own_valid | (own_depth - far > rel_tol * far)
        mean_d = 0.5 * (da + db)
        better = same_surface & needs & (mean_d < best_depth)
        best_depth = torch.where(better, mean_d, best_depth)
        best_a = torch.where(better, ia, best_a)
        best_b = torch.where(better, ib, best_b)

    filled = torch.isfinite(best_depth)
    where_filled = cand[filled]
    out_rgb, out_depth, out_valid = rgb.clone(), depth.clone(), valid.clone()
    out_rgb.view(-1, C)[where_filled] = 0.5 * (c[best_a[filled]] + c[best_b[filled]])
    out_depth.view(-1)[where_filled] = best_depth[filled]
    out_valid.view(-1)[where_filled] = True
    return out_rgb, out_depth, out_valid


# ---------------------------------------------------------------------------------------------
# forward warp (hard z-buffer)
# ---------------------------------------------------------------------------------------------

_INDEX_BITS = 32  # low bits of the packed key hold the source index; high bits the float32 depth


def forward_warp(rgb: Tensor, depth: Tensor, src: Cameras, dst: Cameras, valid: Tensor | None = None,
                 config: ForwardWarpConfig = ForwardWarpConfig()) -> WarpResult:
    """Splat an RGB-D view into another camera with a z-buffer.

    rgb: (B, Hs, Ws, C) any channels carried along (colour in [0, 1], features, ...).
    depth: (B, Hs, Ws) z-depth in the SOURCE camera (scene units); valid: (B, Hs, Ws) bool.
    src, dst: B cameras each (OpenCV axes); dst may have another image size.
    Returns WarpResult at dst's size: the nearest source point per target pixel (ties broken
    by the smaller source index; depths compared at float32 precision), then depth-aware
    1-pixel crack filling (``fill_cracks``); with ``config.sight_clearance`` the pixels whose line
    of sight the source did not see are then dropped (``line_of_sight_seen``). Differentiable
    w.r.t. ``rgb`` only (gather); use ``soft_forward_warp`` for gradients w.r.t. depth.
    """
    valid = _check_view(rgb, depth, valid, src, "forward_warp")
    if len(dst) != len(src):
        raise ValueError(f"forward_warp: {len(src)} source cameras but {len(dst)} target cameras")
    B, Hs, Ws, C = rgb.shape
    Ht, Wt = dst.height, dst.width
    if B * max(Hs * Ws, Ht * Wt) >= 2 ** _INDEX_BITS or max(Hs, Ws) >= 2 ** 15:
        raise ValueError("forward_warp: too many pixels for the packed z-buffer / source keys")
    if config.drop_depth_edges:
        valid = valid & ~source_depth_edges(depth, config.edge_depth_rel_tol)

    u, v, z = _src_to_dst_pixels(depth, src, dst)                          # (B, N) each
    col = torch.floor(u)                                                   # pixel j covers u in [j, j+1)
    row = torch.floor(v)
    keep = (valid.reshape(B, -1) & (z > config.near) & torch.isfinite(z)
            & (col >= 0) & (col < Wt) & (row >= 0) & (row < Ht))            # (B, N)
    # splats that are not kept go to target 0 with the "empty" key, so they change nothing
    zero = torch.zeros((), dtype=u.dtype, device=u.device)
    target = ((torch.arange(B, device=depth.device) * (Ht * Wt)).unsqueeze(1)
              + torch.where(keep, row, zero).long() * Wt + torch.where(keep, col, zero).long()).reshape(-1)

    # z-buffer in one scatter: positive float32 bit patterns order like the floats, so the key
    # (depth bits << 32 | global source index) has its minimum at the nearest point (then the
    # lowest index), and the winner's index comes back in the low bits.
    z_flat = z.reshape(-1)
    source = torch.arange(B * Hs * Ws, device=depth.device)
    z_bits = z_flat.to(torch.float32).view(torch.int32).to(torch.int64)
    empty = torch.iinfo(torch.int64).max
    key = torch.where(keep.reshape(-1), (z_bits << _INDEX_BITS) | source, empty)
    zbuf = torch.full((B * Ht * Wt,), empty, dtype=torch.int64, device=depth.device)
    zbuf.scatter_reduce_(0, target, key, reduce="amin", include_self=True)

    out_valid = zbuf != empty                                              # (B*Ht*Wt,)
    # the winner's global source index per target pixel (0 for empty pixels, masked below);
    # full-size gathers + where are faster on CPU than boolean-mask indexing
    winner = torch.where(out_valid, zbuf & ((1 << _INDEX_BITS) - 1), 0)
    out_rgb = torch.where(out_valid.unsqueeze(-1), rgb.reshape(B * Hs * Ws, C)[winner], 0.0).reshape(B, Ht, Wt, C)
    out_depth = torch.where(out_valid, z_flat[winner], 0.0).reshape(B, Ht, Wt)
    out_valid = out_valid.reshape(B, Ht, Wt)
    if config.fill_cracks:
        local = (winner % (Hs * Ws)).to(torch.int32)                       # index within its view
        source_rc = torch.stack([local // Ws, local % Ws], dim=-1).reshape(B, Ht, Wt, 2)
        out_rgb, out_depth, out_valid = fill_cracks(out_rgb, out_depth, out_valid, source_rc,
                                                    config.crack_depth_rel_tol)
    if config.sight_clearance is not None:
        out_valid = out_valid & line_of_sight_seen(out_depth, src, dst, config.sight_clearance, config.near)
        out_rgb = torch.where(out_valid.unsqueeze(-1), out_rgb, 0.0)
        out_depth = torch.where(out_valid, out_depth, 0.0)
    return WarpResult(rgb=out_rgb, depth=out_depth, valid=out_valid)


def line_of_sight_seen(depth: Tensor, src: Cameras, dst: Cameras, clearance: float, near: float) -> Tensor:
    """(B, Ht, Wt) bool: target pixels whose line of sight the source camera saw.

    depth: (B, Ht, Wt) z-depth in the TARGET camera ``dst`` (scene units) of what a pixel shows;
    src: the B source cameras. The point on each target pixel's ray (through its centre) at
    z-depth min(clearance, depth) must land inside the source image (u in [0, Ws), v in
    [0, Hs)) at a source z-depth above ``near``. The surface itself lies there too when it was
    warped from the source, so the whole stretch between the two points does (a segment whose
    ends both project inside a convex image, in front of the camera). Why:
    ForwardWarpConfig.sight_clearance (a far surface the source saw behind space it never saw is
    not known to be visible from the target). Returns True where seen.
    """
    probe = torch.minimum(depth, torch.as_tensor(clearance, dtype=depth.dtype, device=depth.device))
    u, v, z = _src_to_dst_pixels(probe, dst, src)                          # target pixels -> source
    inside = (z > near) & (u >= 0) & (u < src.width) & (v >= 0) & (v < src.height)
    return inside.reshape(depth.shape)


# ---------------------------------------------------------------------------------------------
# soft forward warp (differentiable)
# ---------------------------------------------------------------------------------------------

def soft_forward_warp(rgb: Tensor, depth: Tensor, src: Cameras, dst: Cameras, valid: Tensor | None = None,
                      config: SoftWarpConfig = SoftWarpConfig()) -> WarpResult:
    """Differentiable forward warp: bilinear splatting with a soft z-buffer (softmax splatting).

    rgb (B, Hs, Ws, C), depth (B, Hs, Ws) source z-depth, valid (B, Hs, Ws) bool; src/dst B
    cameras. Each source point spreads over the 4 target pixels around where it lands with
    bilinear weights times exp(-sharpness * (z - z_front) / z_front) (z_front: the nearest depth
    splatted onto that pixel), and each target pixel is the weighted mean.
    Gradients reach ``rgb`` (through the mean) and ``depth`` (through the landing positions,
    the soft z-buffer weights and the carried depth). Returns WarpResult at dst's size; output
    depth is the weighted mean target z-depth.
    """
    valid = _check_view(rgb, depth, valid, src, "soft_forward_warp")
    B, Hs, Ws, C = rgb.shape
    Ht, Wt = dst.height, dst.width
    u, v, z = _src_to_dst_pixels(depth, src, dst)                          # (B, N) each
    # bilinear neighbours: pixel centres are at j + 0.5, so shift to "centre = integer" coordinates
    x = u - 0.5
    y = v - 0.5
    x0 = torch.floor(x.detach())
    y0 = torch.floor(y.detach())
    fx, fy = x - x0, y - y0
    base_ok = valid.reshape(B, -1) & (z > config.near) & torch.isfinite(z)
    z_safe = torch.where(base_ok, z, torch.ones_like(z))

    targets, bil_weights, oks = [], [], []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        cx, cy = x0 + dx, y0 + dy
        w = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
        ok = base_ok & (cx >= 0) & (cx < Wt) & (cy >= 0) & (cy < Ht)
        t = torch.arange(B, device=depth.device).unsqueeze(1) * (Ht * Wt) + (cy.clamp(0, Ht - 1) * Wt
                                                                           + cx.clamp(0, Wt - 1)).long()
        targets.append(t)
        bil_weights.append(torch.where(ok, w, torch.zeros_like(w)))
        oks.append(ok)
    target = torch.stack(targets).reshape(-1)                              # (4*B*N,)
    bil = torch.stack(bil_weights).reshape(-1)
    ok = torch.stack(oks).reshape(-1)
    zz = z_safe.unsqueeze(0).expand(4, -1, -1).reshape(-1)
    colours = rgb.reshape(1, B * Hs * Ws, C).expand(4, -1, -1).reshape(-1, C)

    # the front depth per target pixel: the softmax's reference (differentiable: amin passes the
    # gradient to the front splat, so the gradient is the true derivative away from ties)
    defines_front = ok & (bil.detach() >= config.front_min_weight)
    z_front = torch.full((B * Ht * Wt,), float("inf"), dtype=depth.dtype, device=depth.device).scatter_reduce(
        0, target[defines_front], zz[defines_front], reduce="amin", include_self=True)
    ref = z_front[target]
    ref = torch.where(torch.isfinite(ref), ref, zz).clamp_min(config.near)
    rel_behind = ((zz - ref) / ref).clamp_min(0.0)
    soft = torch.exp(-config.depth_sharpness * rel_behind)
    weight = torch.where(ok, bil * soft, torch.zeros_like(bil))

    zeros = torch.zeros(B * Ht * Wt, dtype=depth.dtype, device=depth.device)
    w_sum = zeros.index_add(0, target, weight)
    coverage = zeros.index_add(0, target, bil.detach())
    z_sum = zeros.index_add(0, target, weight * zz)
    c_sum = torch.zeros(B * Ht * Wt, C, dtype=rgb.dtype, device=rgb.device).index_add(
        0, target, weight.unsqueeze(-1).to(rgb.dtype) * colours)

    out_valid = (coverage >= config.min_coverage) & (w_sum > config.eps)
    denom = w_sum.clamp_min(config.eps)
    out_rgb = torch.where(out_valid.unsqueeze(-1), c_sum / denom.unsqueeze(-1).to(rgb.dtype),
                          torch.zeros_like(c_sum))
    out_depth = torch.where(out_valid, z_sum / denom, torch.zeros_like(z_sum))
    return WarpResult(rgb=out_rgb.reshape(B, Ht, Wt, C), depth=out_depth.reshape(B, Ht, Wt),
                      valid=out_valid.reshape(B, Ht, Wt))


# ---------------------------------------------------------------------------------------------
# backward warp
# ---------------------------------------------------------------------------------------------

def backward_warp(src_rgb: Tensor, dst_depth: Tensor, src: Cameras, dst: Cameras,
                  dst_valid: Tensor | None = None, *, src_depth: Tensor | None = None,
                  config: BackwardWarpConfig = BackwardWarpConfig()) -> WarpResult:
    """Sample the source image where each target pixel reprojects, given the target's depth.

    src_rgb: (B, Hs, Ws, C) source values; dst_depth: (B, Ht, Wt) z-depth of the TARGET camera
    (scene units); dst_valid: (B, Ht, Wt) bool where dst_depth is known. Optional src_depth
    (B, Hs, Ws): target pixels hidden behind the source's surface (reprojected depth farther
    than the source depth by more than ``occlusion_rel_tol``) become invalid.
    Returns WarpResult at the target size; ``depth`` is dst_depth where valid. A pixel is valid
    when its depth is known, its reprojection lies in front of the source camera and inside
    the source image (and, with src_depth, is not occluded). Differentiable w.r.t. src_rgb
    and dst_depth.
    """
    B, Ht, Wt = len(dst), dst.height, dst.width
    Hs, Ws = src.height, src.width
    if src_rgb.ndim != 4 or tuple(src_rgb.shape[:3]) != (len(src), Hs, Ws):
        raise ValueError(f"backward_warp: src_rgb must be ({len(src)}, {Hs}, {Ws}, C), got {tuple(src_rgb.shape)}")
    if tuple(dst_depth.shape) != (B, Ht, Wt):
        raise ValueError(f"backward_warp: dst_depth must be ({B}, {Ht}, {Wt}), got {tuple(dst_depth.shape)}")
    if dst_valid is None:
        dst_valid = torch.ones_like(dst_depth, dtype=torch.bool)

    points = unproject_depth(dst_depth, dst).reshape(B, -1, 3)            # world, (B, Ht*Wt, 3)
    uv, z = project_points(points, src)                                    # (B, Ht*Wt, 2), (B, Ht*Wt)
    uv = uv.reshape(B, Ht, Wt, 2)
    z = z.reshape(B, Ht, Wt)
    size = torch.tensor([Ws, Hs], dtype=uv.dtype, device=uv.device)
    grid = uv / size * 2 - 1                                               # align_corners=False: -1 = left edge
    sampled = F.grid_sample(src_rgb.permute(0, 3, 1, 2), grid.to(src_rgb.dtype), mode=config.mode,
                            padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= Ws) & (uv[..., 1] >= 0) & (uv[..., 1] <= Hs)
    valid = dst_valid & (dst_depth > config.near) & (z > config.near) & inside & torch.isfinite(z)
    if src_depth is not None:
        seen = F.grid_sample(src_depth.unsqueeze(1), grid.to(src_depth.dtype), mode="nearest",
                             padding_mode="border", align_corners=False)[:, 0]
        valid = valid & (z - seen <= config.occlusion_rel_tol * seen)
    rgb = torch.where(valid.unsqueeze(-1), sampled, torch.zeros_like(sampled))
    depth = torch.where(valid, dst_depth, torch.zeros_like(dst_depth))
    return WarpResult(rgb=rgb, depth=depth, valid=valid)
