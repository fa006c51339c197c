"""Niantic SPZ ("splat zip") files: compressed 3D Gaussian splats, written and read here.

Which SPZ: file-format **version 3**, gzip-compressed: the version Niantic's spz library 2.x
writes, that Spark 2.x reads (it reads versions 1-3 and nothing newer) and that glTF's
KHR_gaussian_splatting_compression_spz_2 extension names. (The spz library 3.x writes a
zstd-based version 4 that Spark 2.2 cannot open, so it is not written here.)

Layout (every number little-endian): a 16-byte header

    uint32 magic 0x5053474E ("NGSP")   uint32 version (3)   uint32 number of splats N
    uint8 SH degree (0-3)   uint8 fractional bits f   uint8 flags   uint8 reserved (0)

then the attributes, each for all N splats before the next:

    positions  N x 3 x 24-bit signed fixed point (value = integer / 2**f)
    alphas     N x uint8   opacity after the sigmoid, * 255
    colours    N x 3 uint8 DC SH coefficient c stored as (c * 0.15 + 0.5) * 255
    scales     N x 3 uint8 log std-dev s stored as (s + 10) * 16
    rotations  N x uint32  "smallest three": bits 30-31 the index (in x, y, z, w order) of the
               largest component (made positive); then the other three, first one highest, each
               a sign bit and a 9-bit magnitude of |q| / sqrt(1/2)
    SH         N x (K-1) x 3 uint8, coefficient-major, channel fastest: round(c * 128) + 128,
               degree-1 values kept to 5 bits and higher ones to 4 (Niantic's own choice)

and the whole stream is gzipped. Flag 0x1 would say "trained with anti-aliasing" (mip-splatting):
our rasteriser is the plain 3DGS one, so it is never set.

Axes: SPZ is defined in RUB (+x right, +y up, +z back). Our world is the OpenCV-style
+y-down world of the first camera, so the writer turns the scene 180 degrees about x
(points.to_y_up: positions, rotations and SH all rotated) and the reader turns it back.

Fixed point: f is chosen per file from the scene's size: enough fractional bits for a
round-trip error 2**-(f+1) of at most 1e-6 of the scene extent (a hundredth of the 1e-4 the
export promises), never fewer than Niantic's default 12, and never more than let the farthest
coordinate fit 23 bits plus sign. A scene far from the origin compared with its size, for which
even that cannot keep the error within 1e-4 of its extent, gets an error, not a coarse file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..errors import UserInputError
from ..representation.gaussians import GaussianConfig, GaussianScene, points_extent

SPZ_MAGIC = 0x5053474E
SPZ_VERSION = 3
HEADER = struct.Struct("<IIIBBBB")           # magic, version, count, degree, fractional bits, flags, reserved
COLOUR_SCALE = 0.15                           # SPZ's DC coefficient scale (see module docstring)
MAX_FRACTIONAL_BITS = 24                      # readers compute 1 << f in 32-bit ints: stay well inside
DEFAULT_FRACTIONAL_BITS = 12                  # Niantic's library default (0.12 mm steps in metres)
TARGET_PRECISION = 1e-6                       # aimed-for round-trip error, fraction of the scene extent
POSITION_TOLERANCE = 1e-4                     # promised round-trip error, as a fraction of the scene extent
SH_BITS_DEGREE_1 = 5                          # Niantic's quantisation of degree-1 SH (bits kept of 8)
SH_BITS_HIGHER = 4                            # ... and of degrees 2 and 3
GZIP_LEVEL = 6                                # zlib's default: ~same size as 9, several times faster
_SQRT_HALF = float(np.sqrt(0.5))
_N_SH_REST = {0: 0, 1: 3, 2: 8, 3: 15}        # degree -> number of higher SH coefficients per channel


def fractional_bits_for(max_abs: float, extent: float) -> int:
    """Fractional bits f for positions up to ``max_abs`` (units) in a scene ``extent`` across:
    the fewest giving a round-trip error 2**-(f+1) <= TARGET_PRECISION * extent, at least
    DEFAULT_FRACTIONAL_BITS, at most what lets ``max_abs`` * 2**f fit a signed 24-bit integer.
    Raises UserInputError when no f keeps the error within POSITION_TOLERANCE * extent."""
    limit = 2 ** 23 - 1
    fits = [f for f in range(MAX_FRACTIONAL_BITS + 1) if round(max_abs * 2 ** f) <= limit]
    wanted = max(DEFAULT_FRACTIONAL_BITS,
                 math.ceil(math.log2(1.0 / (2.0 * TARGET_PRECISION * max(extent, 1e-30)))))
    f = min(wanted, max(fits)) if fits else -1
    if f < 0 or 2.0 ** -(f + 1) > POSITION_TOLERANCE * extent:
        raise UserInputError(f"the scene ({extent:.3g} units across) lies {max_abs:.3g} units from the origin: "
                             f"SPZ's 24-bit positions cannot keep it within {POSITION_TOLERANCE:g} of its extent")
    return f


# ------------------------------------------------------------------------------------------
# quaternions: our (w, x, y, z) -> SPZ v3 "smallest three" uint32, and back
def pack_quaternions(quats_wxyz: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z), any norm > 0 -> (N,) uint32 SPZ v3 words."""
    q = np.asarray(quats_wxyz, dtype=np.float64)[:, [1, 2, 3, 0]]            # SPZ order x, y, z, w
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    largest = np.argmax(np.abs(q), axis=1)
    n = len(q)
    rows = np.arange(n)
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]             # -q is the same rotation
    word = largest.astype(np.uint64)
    for i in range(4):                                                     # x, y, z, w in turn
        keep = largest != i
        mag = np.minimum(np.floor(511 * np.abs(q[:, i]) / _SQRT_HALF + 0.5), 511).astype(np.uint64)
        sign = (q[:, i] < 0).astype(np.uint64)
        word = np.where(keep, (word << np.uint64(10)) | (sign << np.uint64(9)) | mag, word)
    return word.astype(np.uint32)


def unpack_quaternions(words: np.ndarray) -> np.ndarray:
    """(N,) uint32 SPZ v3 words -> (N, 4) unit quaternions (w, x, y, z)."""
    w = np.asarray(words, dtype=np.uint32).astype(np.int64)
    largest = w >> 30
    q = np.zeros((len(w), 4))
    rest = w.copy()
    for i in range(3, -1, -1):                                             # lowest bits hold the last one
        here = largest != i
        mag = (rest & 511) * (_SQRT_HALF / 511)
        sign = np.where((rest >> 9) & 1, -1.0, 1.0)
        q[:, i] = np.where(here, sign * mag, q[:, i])
        rest = np.where(here, rest >> 10, rest)
    missing = np.sqrt(np.maximum(1.0 - (q ** 2).sum(axis=1), 0.0))
    q[np.arange(len(w)), largest] = missing
    return q[:, [3, 0, 1, 2]].astype(np.float32)


def _quantise_sh(values: np.ndarray, bits: int) -> np.ndarray:
    raw = np.round(values * 128.0) + 128.0
    bucket = 2 ** (8 - bits)
    return np.clip(np.floor((raw + bucket / 2) / bucket) * bucket, 0, 255).astype(np.uint8)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


# ------------------------------------------------------------------------------------------
def encode_spz(scene: GaussianScene) -> bytes:
    """The SPZ v3 file (gzipped bytes) of ``scene`` (our +y-down world; written in RUB)."""
    from .points import to_y_up

    degree = scene.config.sh_degree
    if degree not in _N_SH_REST:
        raise UserInputError(f"SH degree {degree}: SPZ holds degrees 0-3")
    rub = to_y_up(scene)
    with torch.no_grad():
        xyz = rub.means.detach().cpu().double().numpy()
        alpha = torch.sigmoid(rub.opacity_logits.detach().cpu().double()).numpy()
        dc = rub.sh0.detach().cpu().double().numpy()[:, 0, :]
        log_s = rub.log_scales.detach().cpu().double().numpy()
        quats = rub.quats.detach().cpu().double().numpy()
        rest = rub.shN.detach().cpu().double().numpy().reshape(len(xyz), -1)   # (N, (K-1)*3) coef-major
    if not np.isfinite(xyz).all():
        raise UserInputError("the scene has Gaussians with non-finite positions; SPZ cannot store them")
    n = len(xyz)
    max_abs = float(np.abs(xyz).max()) if n else 0.0
    bits = fractional_bits_for(max_abs, points_extent(torch.from_numpy(xyz)) if n else 1.0)
    fixed = np.round(xyz * 2.0 ** bits).astype(np.int64)
    pos = (fixed & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(n, 3, 4)[:, :, :3]
    parts = [HEADER.pack(SPZ_MAGIC, SPZ_VERSION, n, degree, bits, 0, 0),
             np.ascontiguousarray(pos).tobytes(),
             np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8).tobytes(),
             np.clip(np.round((dc * COLOUR_SCALE + 0.5) * 255), 0, 255).astype(np.uint8).tobytes(),
             np.clip(np.round((log_s + 10.0) * 16.0), 0, 255).astype(np.uint8).tobytes(),
             pack_quaternions(quats).astype("<u4").tobytes()]
    if degree > 0:
        sh = np.empty(rest.shape, dtype=np.uint8)
        sh[:, :9] = _quantise_sh(rest[:, :9], SH_BITS_DEGREE_1)
        sh[:, 9:] = _quantise_sh(rest[:, 9:], SH_BITS_HIGHER)
        parts.append(sh.tobytes())
    return gzip.compress(b"".join(parts), compresslevel=GZIP_LEVEL, mtime=0)


def write_spz(path: str | os.PathLike, scene: GaussianScene) -> None:
    """Write ``scene`` (our +y-down world) to ``path`` as an SPZ v3 file (RUB axes), atomically."""
    atomic_write_bytes(path, encode_spz(scene))


def read_spz(path: str | os.PathLike, config: GaussianConfig | None = None) -> GaussianScene:
    """Read an SPZ file (versions 2 and 3, gzipped) back into a GaussianScene in our +y-down
    world (the file's RUB axes turned back). Our own reader, for round-trip tests and tools.
    Raises UserInputError for a missing, truncated or foreign file."""
    from .points import to_y_up

    try:
        with open(path, "rb") as fh:
            data = gzip.decompress(fh.read())
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such SPZ file") from None
    except (OSError, EOFError) as err:
        raise UserInputError(f"{path}: not a gzipped SPZ file ({err})") from None
    if len(data) < HEADER.size:
        raise UserInputError(f"{path}: too short for an SPZ header")
    magic, version, n, degree, bits, _flags, _ = HEADER.unpack_from(data)
    if magic != SPZ_MAGIC:
        raise UserInputError(f"{path}: not an SPZ file (magic {magic:#x})")
    if version not in (2, 3) or degree not in _N_SH_REST:
        raise UserInputError(f"{path}: SPZ version {version}, SH degree {degree}: only versions 2-3, degrees 0-3 are read")
    n_rest = _N_SH_REST[degree] * 3
    rot_bytes = 4 if version == 3 else 3
    need = HEADER.size + n * (9 + 1 + 3 + 3 + rot_bytes + n_rest)
    if len(data) < need:
        raise UserInputError(f"{path}: truncated SPZ ({len(data)} bytes, {need} needed for {n} splats)")
    buf = np.frombuffer(data, dtype=np.uint8, count=need - HEADER.size, offset=HEADER.size)
    at = 0

    def take(count: int) -> np.ndarray:
        nonlocal at
        out = buf[at:at + count]
        at += count
        return out

    p = take(n * 9).reshape(n, 3, 3).astype(np.int64)
    fixed = p[:, :, 0] | (p[:, :, 1] << 8) | (p[:, :, 2] << 16)
    fixed = np.where(fixed >= 2 ** 23, fixed - 2 ** 24, fixed)
    xyz = fixed / 2.0 ** bits
    alpha = np.clip(take(n) / 255.0, 0.5 / 255, 1 - 0.5 / 255)              # keep the logit finite
    dc = (take(n * 3).reshape(n, 3) / 255.0 - 0.5) / COLOUR_SCALE
    log_s = take(n * 3).reshape(n, 3) / 16.0 - 10.0
    if version == 3:
        quats = unpack_quaternions(take(n * 4).view("<u4"))
    else:                                                                  # v2: x, y, z bytes, w >= 0
        xyz_q = take(n * 3).reshape(n, 3) / 127.5 - 1.0
        w = np.sqrt(np.maximum(1.0 - (xyz_q ** 2).sum(axis=1), 0.0))
        quats = np.concatenate([w[:, None], xyz_q], axis=1)
    rest = (take(n * n_rest).reshape(n, -1, 3) - 128.0) / 128.0 if n_rest else np.zeros((n, 0, 3))

    base = config or GaussianConfig()
    cfg = GaussianConfig(**{**base.__dict__, "sh_degree": degree, "feature_dim": 0})
    rub = GaussianScene(cfg, num=n)
    with torch.no_grad():
        rub.means.copy_(torch.from_numpy(xyz).float())
        rub.opacity_logits.copy_(torch.from_numpy(_logit(alpha)).float())
        rub.sh0.copy_(torch.from_numpy(dc).float()[:, None, :])
        rub.log_scales.copy_(torch.from_numpy(log_s).float())
        rub.quats.copy_(torch.from_numpy(np.asarray(quats, dtype=np.float32)))
        rub.shN.copy_(torch.from_numpy(rest).float())
        rub.scene_extent.fill_(points_extent(rub.means))
    return to_y_up(rub)                                                    # its own inverse: RUB -> ours
