"""BRISQUE: the Blind/Referenceless Image Spatial Quality Evaluator, a no-reference image metric.

Reference: A. Mittal, A. K. Moorthy, A. C. Bovik, "No-reference image quality assessment in the
spatial domain", IEEE Transactions on Image Processing 21(12):4695-4708, 2012.

**Lower is better**; scores lie roughly in 0-100 (clean photographs about 0-30, strongly noisy or
blurred images 50 and more; the regressor can leave that range slightly).

Our own numpy/scipy implementation of the features; the regressor is the model shipped with the
``brisque`` PyPI package (0.2.0): its data files ``brisque/models/svm.txt`` (libsvm epsilon-SVR, RBF
kernel) and ``brisque/models/normalize.pickle`` (per-feature ``min_``/``max_`` that scale features to
[-1, 1]). The package folder is found with ``importlib.util.find_spec("brisque")`` without executing
the package (its code fails under numpy 2). The pickle is read with ``_RestrictedUnpickler``, which
resolves no global at all (the file is a plain dict of float lists), so a crafted file cannot run
code. The SVR is evaluated here in numpy from the model file (``sum_i coef_i exp(-gamma |x - sv_i|^2)
- rho``), not through libsvm.

The SVM was trained on that package's feature definition, so we compute exactly that (the test
checks agreement with ``brisque.BRISQUE().score`` within 2 %):

1. grey ``0.2125 R + 0.7154 G + 0.0721 B`` in [0, 1] (scikit-image's rgb2gray);
2. two scales: the image and its half size by OpenCV-style bicubic (a = -0.75, edge pixels
   replicated, output side rint(n / 2));
3. MSCN ``(I - mu) / (sigma + 1/255)``, 7x7 Gaussian window sigma 7/6, zero padding;
4. an AGGD fit by moment matching (shape solved exactly with Brent's method) of the MSCN
   coefficients -> [alpha, (sigma_l^2 + sigma_r^2) / 2] (where the paper fits a GGD: with the
   package's model, the AGGD variance is what the SVM expects) and of the horizontal, vertical,
   main- and secondary-diagonal neighbour products -> [alpha, mean, sigma_l^2, sigma_r^2];
   18 features per scale, 36 in all.
"""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np
import scipy.ndimage
import scipy.optimize
import scipy.special

from ..errors import MissingWeightsError
from .niqe import ImageTooSmallError, _package_dir

BRISQUE_MSCN_WINDOW_RADIUS = 3
"""Radius of the Gaussian window of the MSCN transform (7x7 window)."""
BRISQUE_MSCN_WINDOW_SIGMA = 7.0 / 6.0
"""Standard deviation of the MSCN Gaussian window, px."""
BRISQUE_MSCN_C = 1.0 / 255.0
"""Stabilising constant of the MSCN divisor, grey levels in [0, 1]."""
BRISQUE_GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)
"""RGB -> grey weights (scikit-image rgb2gray, as the model's feature extractor)."""
BRISQUE_CUBIC_A = -0.75
"""Bicubic kernel parameter of the half-scale resize (OpenCV INTER_CUBIC)."""
BRISQUE_MIN_SIDE = 16
"""Smallest height and width, px: the half scale must still hold a few 7x7 windows."""
BRISQUE_MODEL_PACKAGE = "brisque"
BRISQUE_SVM_FILE = "models/svm.txt"
BRISQUE_NORMALIZE_FILE = "models/normalize.pickle"
"""The regressor and the feature scaling, relative to the brisque package folder."""

BRISQUE_VERSION = "scenedreamer-brisque-1 (brisque-0.2.0 model and feature layout)"

_ALPHA_BRACKET = (0.01, 100.0)
"""Search interval of the AGGD shape; rho(alpha) spans (~0, 0.75) over it."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``ALLOWED``: none, since normalize.pickle is a
    dict of lists of floats, which pickle rebuilds from opcodes without any class. Anything that
    names a global (``os.system``, a numpy reconstructor, ...) is refused before it is called."""

    ALLOWED: frozenset[tuple[str, str]] = frozenset()

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name} in a model pickle")


def restricted_loads(data: bytes):
    """Unpickle ``data`` with ``_RestrictedUnpickler`` (no globals resolved); returns the object."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


@functools.lru_cache(maxsize=1)
def _load_model() -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray, np.ndarray]:
    """(feature min (36,), feature max (36,), gamma, rho, sv_coef (S,), support vectors (S, 36))."""
    root = _package_dir(BRISQUE_MODEL_PACKAGE)
    norm_path, svm_path = root / BRISQUE_NORMALIZE_FILE, root / BRISQUE_SVM_FILE
    for p in (norm_path, svm_path):
        if not p.is_file():
            raise MissingWeightsError(f"BRISQUE model file not found: {p}")
    scale = restricted_loads(norm_path.read_bytes())
    if not isinstance(scale, dict) or "min_" not in scale or "max_" not in scale:
        raise MissingWeightsError(f"BRISQUE scaling file {norm_path} is not a dict with min_ and max_")
    fmin = np.asarray(scale["min_"], dtype=np.float64).ravel()
    fmax = np.asarray(scale["max_"], dtype=np.float64).ravel()

    header: dict[str, str] = {}
    coefs: list[float] = []
    rows: list[np.ndarray] = []
    with open(svm_path) as f:
        in_sv = False
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if not in_sv:
                if parts[0] == "SV":
                    in_sv = True
                else:
                    header[parts[0]] = " ".join(parts[1:])
                continue
            coefs.append(float(parts[0]))
            row = np.zeros(fmin.shape[0], dtype=np.float64)
            for item in parts[1:]:
                idx, val = item.split(":")
                row[int(idx) - 1] = float(val)
            rows.append(row)
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise MissingWeightsError(f"BRISQUE model {svm_path} is not an RBF epsilon-SVR: {header}")
    return (fmin, fmax, float(header["gamma"]), float(header["rho"]),
            np.asarray(coefs, dtype=np.float64), np.stack(rows))


def to_grey(image: np.ndarray) -> np.ndarray:
    """BRISQUE grey in [0, 1]: (H, W, 3) RGB in [0, 1] or (H, W) grey in [0, 1] -> (H, W) float64."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[2] == 3:
        wr, wg, wb = BRISQUE_GREY_WEIGHTS
        return img @ np.array([wr, wg, wb])
    if img.ndim == 3 and img.shape[2] == 1:
        return img[..., 0]
    if img.ndim == 2:
        return img
    raise ValueError(f"brisque: expected an (H, W, 3) RGB or (H, W) grey image, got shape {img.shape}")


def _cubic_half_weights() -> np.ndarray:
    """The 4 taps of a bicubic (a = -0.75) kernel at fractional offset 0.5 (sum 1)."""
    a = BRISQUE_CUBIC_A
    t = 0.5
    w = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
         ((a + 2) * t - (a + 3)) * t * t + 1,
         ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1]
    return np.array(w + [1.0 - sum(w)])


def _half_axis0(img: np.ndarray) -> np.ndarray:
    """Bicubic halving along axis 0, (n, ...) -> (rint(n/2), ...), edge pixels replicated.

    Output pixel i samples input coordinate 2i + 0.5 (pixel centres at integers): taps 2i-1..2i+2.
    """
    n = img.shape[0]
    m = max(int(np.rint(n * 0.5)), 1)
    w = _cubic_half_weights()
    idx = np.clip(np.arange(-1, 2 * m + 2), 0, n - 1)
    padded = img[idx]
    return sum(w[k] * padded[k:k + 2 * m:2] for k in range(4))


def _half_cubic(img: np.ndarray) -> np.ndarray:
    """Half-size of a grey image (H, W) -> (rint(H/2), rint(W/2)) float64."""
    return _half_axis0(_half_axis0(img).T).T


def _mscn(img: np.ndarray) -> np.ndarray:
    """MSCN coefficients (H, W) float64 -> (H, W) float64, zero padding."""
    r = np.arange(-BRISQUE_MSCN_WINDOW_RADIUS, BRISQUE_MSCN_WINDOW_RADIUS + 1, dtype=np.float64)
    win = np.exp(-0.5 * r * r / BRISQUE_MSCN_WINDOW_SIGMA ** 2)
    win /= win.sum()  # the normalised 7x7 Gaussian is the outer product of this window

    def blur(x):
        y = scipy.ndimage.correlate1d(x, win, 0, mode="constant")
        return scipy.ndimage.correlate1d(y, win, 1, mode="constant")

    mu = blur(img)
    sigma = np.sqrt(np.abs(mu * mu - blur(img * img)))
    return (img - mu) / (sigma + BRISQUE_MSCN_C)


def _log_rho(alpha: float) -> float:
    """log of Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), stable for small alpha."""
    g = scipy.special.gammaln
    return 2.0 * g(2.0 / alpha) - g(1.0 / alpha) - g(3.0 / alpha)


def _aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Moment-matching AGGD fit of samples x (any shape) -> (alpha, mean, sigma_l, sigma_r)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n_neg = int(np.count_nonzero(x < 0))
    n_pos = x.size - n_neg
    neg_part = np.minimum(x, 0.0)
    s_neg = float(neg_part @ neg_part)
    s_all = float(x @ x)
    sigma_l = float(np.sqrt(s_neg / n_neg)) if n_neg else 0.0
    sigma_r = float(np.sqrt((s_all - s_neg) / n_pos)) if n_pos else 0.0
    mean_sq = s_all / x.size
    if mean_sq == 0.0 or sigma_r == 0.0:
        return _ALPHA_BRACKET[0], 0.0, sigma_l, sigma_r
    r_hat = float(np.abs(x).mean()) ** 2 / mean_sq
    g = sigma_l / sigma_r
    big_r = r_hat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    lo, hi = _ALPHA_BRACKET
    target = np.log(big_r)
    f = lambda a: _log_rho(a) - target  # noqa: E731
    if f(lo) >= 0:
        alpha = lo
    elif f(hi) <= 0:
        alpha = hi
    else:
        alpha = scipy.optimize.brentq(f, lo, hi, xtol=1e-12)
    gam1, gam2, gam3 = (scipy.special.gamma(k / alpha) for k in (1.0, 2.0, 3.0))
    mean = (sigma_r - sigma_l) * np.sqrt(gam1 / gam3) * (gam2 / gam1)
    return float(alpha), float(mean), sigma_l, sigma_r


def _scale_features(grey: np.ndarray) -> list[float]:
    """18 BRISQUE features of one scale, grey (H, W) in [0, 1] -> list of 18 floats."""
    c = _mscn(grey)
    alpha, _, sl, sr = _aggd_fit(c)
    feats = [alpha, (sl ** 2 + sr ** 2) / 2.0]
    for prod in (c[:, :-1] * c[:, 1:],            # horizontal
                 c[:-1, :] * c[1:, :],            # vertical
                 c[:-1, :-1] * c[1:, 1:],         # main diagonal
                 c[1:, :-1] * c[:-1, 1:]):        # secondary diagonal
        alpha, mean, sl, sr = _aggd_fit(prod)
        feats += [alpha, mean, sl ** 2, sr ** 2]
    return feats


def brisque_features(image: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features (18 full scale, 18 half scale) of an image -> (36,) float64.

    image: (H, W, 3) RGB or (H, W) grey, float in [0, 1], at least 16x16 px.
    """
    grey = to_grey(image)
    h, w = grey.shape
    if h < BRISQUE_MIN_SIDE or w < BRISQUE_MIN_SIDE:
        raise ImageTooSmallError(f"brisque: image {h}x{w} is too small; needs at least "
                                 f"{BRISQUE_MIN_SIDE}x{BRISQUE_MIN_SIDE} px")
    return np.asarray(_scale_features(grey) + _scale_features(_half_cubic(grey)), dtype=np.float64)


def brisque_from_features(features: np.ndarray) -> float:
    """SVR score of a (36,) feature vector: scale to [-1, 1] with the model's min/max, RBF SVR."""
    fmin, fmax, gamma, rho, coef, sv = _load_model()
    x = -1.0 + 2.0 * (np.asarray(features, dtype=np.float64) - fmin) / (fmax - fmin)
    d2 = ((sv - x[None, :]) ** 2).sum(axis=1)
    return float(coef @ np.exp(-gamma * d2) - rho)


def brisque(image: np.ndarray) -> float:
    """BRISQUE score of one image; **lower is better**, roughly 0-100.

    image: (H, W, 3) RGB float in [0, 1] (converted to grey with scikit-image's weights) or (H, W)
    grey in [0, 1]; at least 16x16 px (``BRISQUE_MIN_SIDE``), else ``ImageTooSmallError`` (a
    ``ValueError`` and a ``UserInputError``).
    """
    return brisque_from_features(brisque_features(image))
