"""NIQE and BRISQUE: our implementations against the independent ones and on known distortions.

The independent references are scikit-video's ``skvideo.measure.niqe`` and the ``brisque``
package's ``BRISQUE.score``. Neither runs under numpy 2 / scipy >= 1.3 as shipped, so the test
patches them, inside the test only, with the smallest shims that keep their algorithms:
``np.int``/``np.float``/``np.bool`` aliases and ``scipy.misc.imresize`` (PIL bicubic in mode 'F',
which is what the removed SciPy function did) for scikit-video; for ``brisque``, its AGGD fit
returns 1-element arrays that numpy 2 no longer converts with ``float()``, so a subclass unwraps them.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.util
from PIL import Image

from scenedreamer.errors import MissingWeightsError
from scenedreamer.eval import brisque as brisque_mod
from scenedreamer.eval.brisque import brisque, restricted_loads
from scenedreamer.eval.niqe import ImageTooSmallError, niqe

# Natural photographs that scikit-image ships (no download), all larger than NIQE's 192 px.
IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
# Agreement with the independent implementations: the 2 %.
REL_TOL = 0.02


def _image(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB photograph from scikit-image."""
    return getattr(skimage.data, name)()


def _float(img: np.ndarray) -> np.ndarray:
    return skimage.util.img_as_float(img)


@pytest.fixture
def skvideo_niqe(monkeypatch):
    """scikit-video's NIQE, runnable under numpy 2 for the duration of one test."""
    for name, value in (("int", int), ("float", float), ("bool", bool)):
        if name not in np.__dict__:
            monkeypatch.setattr(np, name, value, raising=False)
    import scipy.misc

    def imresize(arr, size, interp="bicubic", mode=None):
        h, w = arr.shape
        im = Image.fromarray(np.asarray(arr, np.float32), mode="F")
        return np.asarray(im.resize((int(w * size), int(h * size)), Image.BICUBIC))

    monkeypatch.setattr(scipy.misc, "imresize", imresize, raising=False)
    import skvideo.measure

    def score(rgb01: np.ndarray) -> float:
        grey = (rgb01 @ np.array([0.2989, 0.5870, 0.1140])) * 255.0
        return float(skvideo.measure.niqe(grey[None])[0])

    return score


@pytest.fixture
def package_brisque():
    """The brisque package's BRISQUE with its numpy-2 scalar fix; takes uint8 RGB."""
    from brisque import BRISQUE

    class Numpy2Brisque(BRISQUE):
        def asymmetric_generalized_gaussian_fit(self, x):
            return tuple(float(np.ravel(v)[0]) for v in super().asymmetric_generalized_gaussian_fit(x))

    return Numpy2Brisque(url=False).score


@pytest.mark.parametrize("name", IMAGES[:3])
def test_niqe_agrees_with_scikit_video(name, skvideo_niqe):
    img = _float(_image(name))
    ours, ref = niqe(img), skvideo_niqe(img)
    assert ours == pytest.approx(ref, rel=REL_TOL)


@pytest.mark.parametrize("name", IMAGES[:3])
def test_brisque_agrees_with_the_brisque_package(name, package_brisque):
    img = _image(name)
    ours, ref = brisque(_float(img)), package_brisque(img)
    assert ours == pytest.approx(ref, rel=REL_TOL)


def _distortions(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, blurred) versions of an RGB float image: sigma 0.08 Gaussian noise, 3 px blur."""
    noisy = np.clip(img + np.random.default_rng(0).normal(0.0, 0.08, img.shape), 0.0, 1.0)
    blurred = scipy.ndimage.gaussian_filter(img, (3.0, 3.0, 0.0))
    return noisy, blurred


@pytest.mark.parametrize("metric", [niqe, brisque], ids=["niqe", "brisque"])
@pytest.mark.parametrize("name", IMAGES)
def test_clean_scores_better_than_noisy_better_than_blurred(metric, name):
    """Lower is better for both: a clean photograph < the same with noise < strongly blurred."""
    img = _float(_image(name))
    noisy, blurred = _distortions(img)
    clean_s, noisy_s, blurred_s = metric(img), metric(noisy), metric(blurred)
    assert clean_s < noisy_s < blurred_s


def test_grey_input_equals_rgb_of_the_same_luminance():
    rgb = _float(_image("coffee"))
    grey = rgb @ np.array([0.2989, 0.5870, 0.1140])
    assert niqe(grey) == pytest.approx(niqe(rgb), rel=1e-9)


def test_small_images_are_refused_with_a_value_error():
    with pytest.raises(ImageTooSmallError, match="192x192"):
        niqe(np.zeros((128, 256, 3)))
    with pytest.raises(ValueError, match="16x16"):
        brisque(np.zeros((8, 64, 3)))
    with pytest.raises(ValueError, match="expected an"):
        niqe(np.zeros((256, 256, 4)))


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_the_model_pickle_reader_resolves_no_globals():
    data = pickle.dumps(_RunsCode())
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        restricted_loads(data)
    plain = {"min_": [0.0, 1.5], "max_": [2.0, 3.0]}
    assert restricted_loads(pickle.dumps(plain)) == plain


def test_a_missing_model_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(brisque_mod, "BRISQUE_MODEL_PACKAGE", "no_such_package_xyz")
    brisque_mod._load_model.cache_clear()
    try:
        with pytest.raises(MissingWeightsError, match="no_such_package_xyz"):
            brisque(_float(_image("coffee")))
    finally:
        brisque_mod._load_model.cache_clear()
