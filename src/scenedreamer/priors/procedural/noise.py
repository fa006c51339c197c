"""Deterministic noise for the procedural world: lattice value noise, tileable textures, hashes.

Everything is generated once per world from a ``torch.Generator`` (same seed, same world) and
stored as small textures; rendering only samples them with ``grid_sample`` (bilinear), which
keeps the per-ray cost at a few memory reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def fbm_grid(size: int, base_cells: int, octaves: int, generator: torch.Generator,
             persistence: float = 0.5, periodic: bool = False) -> Tensor:
    """(size, size) fractal value noise in roughly [0, 1].

    Octave o is a random lattice of ``base_cells * 2**o`` cells per side upsampled bicubically to
    ``size``; amplitudes fall by ``persistence`` per octave and the sum is normalised by the total
    amplitude. ``periodic=True`` makes the result tile seamlessly (the lattice wraps around).
    """
    total = torch.zeros(size, size)
    amp_sum = 0.0
    amp = 1.0
    for octave in range(octaves):
        cells = base_cells * 2 ** octave
        lattice = torch.rand(cells, cells, generator=generator)
        total += amp * _upsample_lattice(lattice, size, periodic)
        amp_sum += amp
        amp *= persistence
    return (total / amp_sum).clamp(0.0, 1.0)


def _upsample_lattice(lattice: Tensor, size: int, periodic: bool) -> Tensor:
    """Bicubic upsampling of a (c, c) lattice to (size, size); wraps around when periodic."""
    cells = lattice.shape[0]
    if not periodic:
        return F.interpolate(lattice[None, None], size=(size, size), mode="bicubic",
                             align_corners=True)[0, 0]
    # Pad circularly so the cubic kernel sees the wrapped neighbours, upsample, then crop the one
    # period that starts at lattice point 0.
    pad = 2
    padded = F.pad(lattice[None, None], (pad, pad, pad, pad), mode="circular")
    scale = size / cells
    big = F.interpolate(padded, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0]
    start = int(round(pad * scale))
    return big[start:start + size, start:start + size]


def sample_plane(texture: Tensor, x: Tensor, z: Tensor, half_extent: float) -> Tensor:
    """Bilinear samples of a (C, N, N) texture covering [-half_extent, half_extent]^2 in (x, z).

    Rows of the texture run along z, columns along x; texel centres at the grid corners
    (align_corners=True); outside the square the border value continues.
    x, z: (n,) world coordinates. Returns (n, C).
    """
    grid = torch.stack([x / half_extent, z / half_extent], dim=-1).view(1, 1, -1, 2)
    out = F.grid_sample(texture[None], grid.to(texture.dtype), mode="bilinear",
                        padding_mode="border", align_corners=True)   # (1, C, 1, n)
    return out[0, :, 0].transpose(0, 1)


def sample_tiled(texture: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Bilinear samples of a tileable (C, N, N) texture at (u, v) in texture periods (wraps).

    u runs along columns, v along rows; u = 1 is one full period. Returns (n, C).
    """
    C, N, _ = texture.shape
    padded = F.pad(texture[None], (1, 1, 1, 1), mode="circular")   # (1, C, N+2, N+2)
    # texel i of the original sits at index i+1 of the padded one; align_corners=False puts
    # texel centres at i + 0.5, so position s (in original texels) maps to s + 1 padded.
    su = torch.remainder(u, 1.0) * N + 1.0
    sv = torch.remainder(v, 1.0) * N + 1.0
    grid = torch.stack([2.0 * su / (N + 2) - 1.0, 2.0 * sv / (N + 2) - 1.0], dim=-1).view(1, 1, -1, 2)
    out = F.grid_sample(padded, grid.to(texture.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].transpose(0, 1)


def hash01(ix: Tensor, iy: Tensor, iz: Tensor, seed: int) -> Tensor:
    """Deterministic per-integer-cell pseudo-random numbers in [0, 1) (same on every device).

    ix, iy, iz: int64 tensors of the same shape. A multiply-xorshift integer hash; used for
    stars and lit windows, where a stored texture would be too coarse.
    """
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ (seed * 2654435761)
    h = h & 0xFFFFFFFF
    h = ((h >> 16) ^ h) * 0x45D9F3B & 0xFFFFFFFF
    h = ((h >> 16) ^ h) * 0x45D9F3B & 0xFFFFFFFF
    h = (h >> 16) ^ h
    return (h & 0xFFFFFF).to(torch.float32) / float(0x1000000)
