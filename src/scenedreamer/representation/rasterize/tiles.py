"""The CPU tile rasterizer: bin 2D Gaussians into screen tiles, composite each tile's
depth-sorted list front to back, with an analytic backward pass.

Compositing rule (shared with the brute-force twin in ``reference.py``), per pixel, over the
Gaussians sorted by camera depth:
    alpha_i = min(alpha_max, o_i exp(-q_i / 2)), set to 0 unless above alpha_min
    T_i = prod_{j<i} (1 - alpha_j)                       (transmittance in front of i)
    w_i = alpha_i T_i if T_i > transmittance_min else 0   (early termination)
    out = sum_i w_i v_i                                  (v_i: colour, features, z, 1)

Speed notes: a tile's exponent log(o) - q/2 is a quadratic polynomial in the pixel offset from
the tile centre, so all (pixel, Gaussian) exponents of a tile batch come from ONE matmul of a
(P, 6) pixel basis with (6, L) per-Gaussian coefficients. Tiles are processed in batches padded to
the longest list of the batch (tiles sorted by list length, so little padding). The backward pass
recomputes alpha and transmittance per batch instead of storing them (memory stays small) and
uses the suffix-sum form of d out / d alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import RasterConfig

# log-opacity of the padding slot: exp() underflows to 0 < alpha_min, so it never contributes
_PADDING_LOG_OPACITY = -100.0


@dataclass(frozen=True)
class TileBins:
    """Gaussian lists per tile, depth-sorted, flattened (CSR layout).

    gaussian_ids: (S,) Gaussian index of every (tile, Gaussian) pair, grouped by tile, near first.
    tile_starts, tile_counts: (n_tiles,) where each tile's run starts in gaussian_ids, its length.
    tiles_x, tiles_y, tile_size: the tile grid.
    """

    gaussian_ids: Tensor
    tile_starts: Tensor
    tile_counts: Tensor
    tiles_x: int
    tiles_y: int
    tile_size: int

    @property
    def num_tiles(self) -> int:
        return self.tiles_x * self.tiles_y


def bin_gaussians(means2d: Tensor, extents: Tensor, depths: Tensor, width: int, height: int,
                  tile_size: int) -> TileBins:
    """Assign M screen Gaussians to every tile their box (centre +- extents) overlaps.

    means2d (M, 2) pixels; extents (M, 2) half sides in pixels; depths (M,) camera z.
    Each tile's list is sorted by depth (stable, so ties keep index order like the reference).
    """
    device = means2d.device
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    n_tiles = tiles_x * tiles_y
    with torch.no_grad():
        # Walk the Gaussians near to far, so the pairs come out depth-ordered and one stable
        # sort by tile finishes the lists (cheaper than sorting (tile, depth) keys).
        by_depth = torch.argsort(depths, stable=True)
        lo = torch.floor((means2d[by_depth] - extents[by_depth]) / tile_size).to(torch.int32)
        hi = torch.floor((means2d[by_depth] + extents[by_depth]) / tile_size).to(torch.int32)
        x0, x1 = lo[:, 0].clamp(0, tiles_x - 1), hi[:, 0].clamp(0, tiles_x - 1)
        y0, y1 = lo[:, 1].clamp(0, tiles_y - 1), hi[:, 1].clamp(0, tiles_y - 1)
        span_x = x1 - x0 + 1
        n_pairs = (span_x * (y1 - y0 + 1)).long()                           # tiles per Gaussian
        total = int(n_pairs.sum())
        rep = lambda t: torch.repeat_interleave(t, n_pairs, output_size=total)  # noqa: E731
        first = torch.cumsum(n_pairs, 0) - n_pairs
        k = (torch.arange(total, device=device) - rep(first)).to(torch.int32)  # pair index within its Gaussian
        sx = rep(span_x)
        row = torch.div(k, sx, rounding_mode="floor")
        tile = (rep(y0) + row) * tiles_x + rep(x0) + (k - row * sx)
        order = torch.argsort(tile, stable=True)
        gaussian_ids = rep(by_depth)[order]
        counts = torch.bincount(tile, minlength=n_tiles)
        starts = torch.cumsum(counts, 0) - counts
    return TileBins(gaussian_ids, starts, counts, tiles_x, tiles_y, tile_size)


def tiles_to_image(tile_values: Tensor, bins: TileBins, width: int, height: int) -> Tensor:
    """(n_tiles, P, D) per-tile pixel rows (P = tile_size^2, row-major) -> (H, W, D) image."""
    ts, D = bins.tile_size, tile_values.shape[-1]
    img = tile_values.view(bins.tiles_y, bins.tiles_x, ts, ts, D).permute(0, 2, 1, 3, 4)
    return img.reshape(bins.tiles_y * ts, bins.tiles_x * ts, D)[:height, :width]


def image_to_tiles(image: Tensor, bins: TileBins) -> Tensor:
    """(H, W, D) image -> (n_tiles, P, D), zero-padded to whole tiles (inverse of the above)."""
    ts, (H, W, D) = bins.tile_size, image.shape
    padded = image.new_zeros(bins.tiles_y * ts, bins.tiles_x * ts, D)
    padded[:H, :W] = image
    return padded.view(bins.tiles_y, ts, bins.tiles_x, ts, D).permute(0, 2, 1, 3, 4).reshape(
        bins.num_tiles, ts * ts, D)


def _pixel_basis(tile_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(P, 6) basis [lx^2, lx ly, ly^2, lx, ly, 1] of pixel-centre offsets from the tile centre."""
    c = torch.arange(tile_size, device=device, dtype=dtype) + 0.5 - tile_size / 2
    ly, lx = torch.meshgrid(c, c, indexing="ij")
    lx, ly = lx.reshape(-1), ly.reshape(-1)
    return torch.stack([lx * lx, lx * ly, ly * ly, lx, ly, torch.ones_like(lx)], dim=-1)


def _tile_centres(tile_ids: Tensor, bins: TileBins, dtype: torch.dtype) -> Tensor:
    """(b,) tile ids -> (b, 2) tile centres in pixels."""
    tx = (tile_ids % bins.tiles_x).to(dtype)
    ty = (tile_ids // bins.tiles_x).to(dtype)
    return torch.stack([tx, ty], -1) * bins.tile_size + bins.tile_size / 2


def _batch_slots(bins: TileBins, tile_ids: Tensor, first: int, length: int, dummy: int) -> Tensor:
    """(b, length) Gaussian ids in slots [first, first + length) of each tile; ``dummy`` pads."""
    slot = torch.arange(first, first + length, device=tile_ids.device)
    idx = bins.tile_starts[tile_ids, None] + slot
    inside = slot < bins.tile_counts[tile_ids, None]
    if bins.gaussian_ids.numel() == 0:
        return torch.full_like(idx, dummy)
    idx = idx.clamp(max=bins.gaussian_ids.numel() - 1)
    return torch.where(inside, bins.gaussian_ids[idx], torch.full_like(idx, dummy))


def _exponent_coefficients(rel_means: Tensor, conics: Tensor, log_opac: Tensor) -> Tensor:
    """(b, L, 6) coefficients k so that basis @ k = log(o) - q/2 at every pixel.

    rel_means (b, L, 2): Gaussian centres relative to the tile centre; conics (b, L, 3) (a, b, c);
    log_opac (b, L). With d = pixel - mean:  -q/2 = -(a dx^2 + 2 b dx dy + c dy^2)/2.
    """
    mx, my = rel_means.unbind(-1)
    a, b, c = conics.unbind(-1)
    return torch.stack([-0.5 * a, -b, -0.5 * c, a * mx + b * my, b * mx + c * my,
                        log_opac - 0.5 * (a * mx * mx + 2 * b * mx * my + c * my * my)], dim=-1)


# Op choice note (measured on the 2-core CPU box, (128, 256, 64) float tensors): masked_fill_ and
# where take ~16 ms, F.threshold ~0.8 ms. Every "x below t -> 0" rule below is therefore a
# threshold (strict: x is kept iff x > t; the brute-force twin uses the same strict rule).
_threshold = torch.nn.functional.threshold


def _alpha(exponent: Tensor, config: RasterConfig) -> Tensor:
    """alpha = min(alpha_max, exp(exponent)), 0 where not above alpha_min. Overwrites ``exponent``.

    The exponent is floored just below log(alpha_min) first: those pixels get alpha 0 anyway,
    and exp() of very negative floats takes a slow (denormal) path that was 5x slower here.
    """
    floor = math.log(config.alpha_min) - 1.0
    raw = exponent.clamp_min_(floor).exp_()
    return _threshold(raw, config.alpha_min, 0.0, inplace=True).clamp_max_(config.alpha_max)


def _alpha_slope(alpha: Tensor, config: RasterConfig) -> Tensor:
    """d alpha / d exponent: alpha itself, except 0 where alpha was clamped at alpha_max."""
    # -threshold(-alpha, -alpha_max) keeps alpha where alpha < alpha_max, else 0
    return _threshold(-alpha, -config.alpha_max, 0.0, inplace=True).neg_()


def _transmittance(alpha: Tensor, start: Tensor) -> tuple[Tensor, Tensor]:
    """Transmittance in front of every slot, (b, P, l), and behind the last one, (b, P).

    start (b, P): transmittance in front of the first slot. One cumprod over [start, 1 - alpha].
    """
    b, P, l = alpha.shape
    factors = alpha.new_empty(b, P, l + 1)
    factors[..., 0] = start
    factors[..., 1:].copy_(alpha).neg_().add_(1.0)
    trans = torch.cumprod(factors, dim=-1)
    return trans[..., :-1], trans[..., -1]


class _PackedGaussians:
    """One per-Gaussian table [mean_u, mean_v, a, b, c, log o, values...] (so each chunk needs a
    single gather), with a padding row at index M that never contributes."""

    def __init__(self, means2d: Tensor, conics: Tensor, opacities: Tensor, values: Tensor):
        M = means2d.shape[0]
        self.dummy = M
        self.num_values = values.shape[1]
        rows = torch.cat([means2d, conics, torch.log(opacities)[:, None], values], dim=1)
        pad = rows.new_zeros(1, rows.shape[1])
        pad[0, 5] = _PADDING_LOG_OPACITY
        self.table = torch.cat([rows, pad])                                      # (M+1, 6+D)

    def gather(self, gid: Tensor, centres: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(b, L) ids, (b, 2) tile centres -> coefficients (b, L, 6), centres relative to the
        tile (b, L, 2), conics (b, L, 3), values (b, L, D)."""
        rows = self.table[gid]
        rel = rows[..., 0:2] - centres[:, None, :]
        conic = rows[..., 2:5]
        return _exponent_coefficients(rel, conic, rows[..., 5]), rel, conic, rows[..., 6:]


def _forward(packed: _PackedGaussians, bins: TileBins, config: RasterConfig) -> tuple[Tensor, Tensor]:
    """Composite every tile. Returns (n_tiles, P, D) tile values and (n_tiles,) the number of
    leading slots of each tile's list that some pixel still saw (what backward replays).

    Tiles go in batches (longest lists first); each batch walks its lists in depth chunks and
    drops tiles whose pixels are all opaque (transmittance <= transmittance_min).
    """
    ts, D = bins.tile_size, packed.num_values
    P = ts * ts
    device, dtype = packed.table.device, packed.table.dtype
    basis = _pixel_basis(ts, device, dtype)                                    # (P, 6)
    out = packed.table.new_zeros(bins.num_tiles, D, P)
    n_used = torch.zeros(bins.num_tiles, dtype=torch.long, device=device)
    counts = bins.tile_counts
    order = torch.argsort(counts, descending=True)
    order = order[counts[order] > 0]
    chunk = config.depth_chunk
    per_batch = max(1, config.batch_elements // (P * chunk))
    for b0 in range(0, order.numel(), per_batch):
        tile_ids = order[b0:b0 + per_batch]                                     # (b,)
        lengths = counts[tile_ids]
        centres = _tile_centres(tile_ids, bins, dtype)
        trans = packed.table.new_ones(tile_ids.numel(), P)                      # (b, P)
        acc = packed.table.new_zeros(tile_ids.numel(), D, P)                    # (b, D, P)
        used = torch.zeros(tile_ids.numel(), dtype=torch.long, device=device)
        s0 = 0
        while tile_ids.numel() > 0 and s0 < int(lengths.max()):
            l = min(chunk, int(lengths.max()) - s0)
            gid = _batch_slots(bins, tile_ids, s0, l, packed.dummy)             # (b, l)
            coef, _, _, vals = packed.gather(gid, centres)
            alpha = _alpha(torch.matmul(basis, coef.transpose(1, 2)), config)   # (b, P, l)
            t_front, trans = _transmittance(alpha, trans)
            weight = _threshold(t_front, config.transmittance_min, 0.0).mul_(alpha)
            acc += torch.bmm(vals.transpose(1, 2), weight.transpose(1, 2))      # (b, D, P)
            # transmittance only falls along a list, so the slots some pixel still sees form a
            # prefix; backward replays exactly that prefix
            seen = (t_front.amax(dim=1) > config.transmittance_min).sum(-1)      # (b,)
            used = torch.where(seen > 0, s0 + seen, used)
            s0 += l
            alive = trans.amax(dim=1) > config.transmittance_min
            if not bool(alive.all()):                                           # retire opaque tiles
                done = ~alive
                out[tile_ids[done]] = acc[done]
                n_used[tile_ids[done]] = used[done]
                tile_ids, lengths, centres = tile_ids[alive], lengths[alive], centres[alive]
                trans, acc, used = trans[alive], acc[alive], used[alive]
        out[tile_ids] = acc
        n_used[tile_ids] = used
    return out.transpose(1, 2), n_used


def _backward(packed: _PackedGaussians, bins: TileBins, n_used: Tensor, grad_tiles: Tensor,
              config: RasterConfig) -> Tensor:
    """Gradient w.r.t. the packed table rows [mean_u, mean_v, a, b, c, log o, values...]
    (M+1, 6+D), padding row included. grad_tiles (n_tiles, P, D): d loss / d tile values."""
    ts, D = bins.tile_size, packed.num_values
    P = ts * ts
    device, dtype = packed.table.device, packed.table.dtype
    basis = _pixel_basis(ts, device, dtype)
    grad_table = torch.zeros_like(packed.table)
    order = torch.argsort(n_used, descending=True)
    order = order[n_used[order] > 0]
    i = 0
    while i < order.numel():
        length = int(n_used[order[i]])
        per_batch = max(1, config.batch_elements // (P * length))
        tile_ids = order[i:i + per_batch]
        i += per_batch
        b = tile_ids.numel()
        gid = _batch_slots(bins, tile_ids, 0, length, packed.dummy)                 # (b, L)
        coef, rel, conic, vals = packed.gather(gid, _tile_centres(tile_ids, bins, dtype))
        alpha = _alpha(torch.matmul(basis, coef.transpose(1, 2)), config)        # (b, P, L)
        t_front, _ = _transmittance(alpha, packed.table.new_ones(b, P))
        t_seen = _threshold(t_front, config.transmittance_min, 0.0, inplace=True)  # 0 once stopped
        weight = t_seen * alpha                                                  # (b, P, L)
        grad_out = grad_tiles[tile_ids]                                          # (b, P, D)

        g_vals = torch.bmm(weight.transpose(1, 2), grad_out)                     # (b, L, D)
        s = torch.bmm(grad_out, vals.transpose(1, 2))                            # (b, P, L): G . v_i
        ws = weight.mul_(s)
        behind = torch.cumsum(ws, dim=-1).neg_().add_(ws.sum(-1, keepdim=True))  # sum_{j>i} w_j s_j
        # d out / d alpha_i = T_i v_i - sum_{j>i} w_j v_j / (1 - alpha_i)
        g_alpha = t_seen.mul_(s).sub_(behind.div_(alpha.neg().add_(1.0)))
        g_exp = g_alpha.mul_(_alpha_slope(alpha, config))                       # alpha = exp(e)
        g_coef = torch.matmul(basis.T, g_exp)                                    # (b, 6, L)
        k0, k1, k2, k3, k4, k5 = g_coef.unbind(1)
        mx, my = rel.unbind(-1)
        a, bb, c = conic.unbind(-1)
        rows = torch.stack([
            a * k3 + bb * k4 - (a * mx + bb * my) * k5,                          # d mean_u
            bb * k3 + c * k4 - (bb * mx + c * my) * k5,                          # d mean_v
            -0.5 * k0 + mx * k3 - 0.5 * mx * mx * k5,                            # d a
            -k1 + my * k3 + mx * k4 - mx * my * k5,                              # d b
            -0.5 * k2 + my * k4 - 0.5 * my * my * k5,                            # d c
            k5,                                                                  # d log o
        ], dim=-1)
        grad_table.index_add_(0, gid.reshape(-1), torch.cat([rows, g_vals], -1).reshape(-1, 6 + D))
    return grad_table


class RasterizeTiles(torch.autograd.Function):
    """(means2d (M,2), conics (M,3), opacities (M,), values (M,D)) -> (H, W, D) composited image.

    Non-tensor arguments: bins (TileBins), width, height, config (RasterConfig).
    """

    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, opacities: Tensor, values: Tensor,
                bins: TileBins, width: int, height: int, config: RasterConfig) -> Tensor:
        packed = _PackedGaussians(means2d, conics, opacities, values)
        tile_values, n_used = _forward(packed, bins, config)
        ctx.save_for_backward(means2d, conics, opacities, values, n_used)
        ctx.bins, ctx.config = bins, config
        return tiles_to_image(tile_values, bins, width, height)

    @staticmethod
    def backward(ctx, grad_image: Tensor):
        means2d, conics, opacities, values, n_used = ctx.saved_tensors
        packed = _PackedGaussians(means2d, conics, opacities, values)
        grad_tiles = image_to_tiles(grad_image.contiguous(), ctx.bins)
        g = _backward(packed, ctx.bins, n_used, grad_tiles, ctx.config)
        M = means2d.shape[0]
        return (g[:M, 0:2], g[:M, 2:5], g[:M, 5] / opacities, g[:M, 6:], None, None, None, None)


def composite_tiles(means2d: Tensor, conics: Tensor, opacities: Tensor, values: Tensor,
                    depths: Tensor, extents: Tensor, width: int, height: int,
                    config: RasterConfig) -> Tensor:
    """Tile-rasterize M screen Gaussians: returns (H, W, D) = sum_i w_i values_i per pixel.

    means2d (M, 2) pixels; conics (M, 3) inverse 2D covariance (a, b, c); opacities (M,) in
    (alpha_min, 1]; values (M, D); depths (M,) sort key (camera z); extents (M, 2) half box sides
    in pixels bounding where alpha >= alpha_min. Differentiable in means2d, conics, opacities, values.
    """
    bins = bin_gaussians(means2d.detach(), extents, depths.detach(), width, height, config.tile_size)
    return RasterizeTiles.apply(means2d, conics, opacities, values, bins, width, height, config)
