"""Panoramas carry GPano XMP (equirectangular, full size, no crop), read back by Pillow's own XMP
reader; the pixels are unchanged by the inserted metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scenedreamer.export.panorama_xmp import jpeg_with_xmp, png_with_xmp, write_panorama
from scenedreamer.export.video import to_uint8

GPANO = "{http://ns.google.com/photos/1.0/panorama/}"


def _gpano(image: Image.Image) -> dict:
    """The GPano attributes of the image's XMP, as Pillow parses them (namespace prefixes dropped)."""
    description = image.getxmp()["xmpmeta"]["RDF"]["Description"]
    return {k: v for k, v in description.items() if k not in ("about",)}


@pytest.mark.parametrize("name", ["pano.png", "pano.jpg", "pano.JPEG"])
def test_panorama_has_gpano_xmp(tmp_path, name):
    # a smooth picture (like a rendered sky and ground), so the JPEG check is about our bytes,
    # not about how JPEG copes with noise
    v, u = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 48), indexing="ij")
    pano = torch.stack([u, v, 0.5 + 0.4 * torch.sin(6.28 * u)], -1)
    path = tmp_path / name
    write_panorama(path, pano)
    with Image.open(path) as image:
        gpano = _gpano(image)
        pixels = np.asarray(image.convert("RGB"))
    assert gpano["ProjectionType"] == "equirectangular"
    assert (gpano["FullPanoWidthPixels"], gpano["FullPanoHeightPixels"]) == ("48", "24")
    assert (gpano["CroppedAreaImageWidthPixels"], gpano["CroppedAreaImageHeightPixels"]) == ("48", "24")
    assert (gpano["CroppedAreaLeftPixels"], gpano["CroppedAreaTopPixels"]) == ("0", "0")
    want = to_uint8(pano).astype(int)
    if name.endswith(".png"):
        np.testing.assert_array_equal(pixels, want)
    else:
        # JPEG is lossy: quality 95 of a smooth image is within ~1 level on average (3 = loose bound)
        assert np.abs(pixels.astype(int) - want).mean() < 3
    assert not [p for p in tmp_path.iterdir() if p.name != name]      # no temp file left


def test_xmp_insertion_refuses_other_files():
    with pytest.raises(ValueError, match="not a PNG"):
        png_with_xmp(b"GIF89a....", "<x/>")
    with pytest.raises(ValueError, match="not a JPEG"):
        jpeg_with_xmp(b"\x89PNG", "<x/>")


def test_render_panorama_writes_the_xmp(tmp_path, tmp_path_factory, worker_id):
    from scenedreamer.cli import main
    from shared_runs import shared_run_copy
    from tiny_models import tiny_run_args

    # any finished run will do: the session's shared tiny run (3 cameras; this test made its own
    # 2-camera run before), copied
    run = shared_run_copy(tmp_path_factory, worker_id, "a forest lake", tiny_run_args("48x32", 3), tmp_path / "run")
    out = tmp_path / "pano.png"
    assert main(["render", str(run), "--panorama", "--resolution", "64x32", "--out", str(out), "--quiet"]) == 0
    with Image.open(out) as image:
        assert image.size == (64, 32)
        gpano = _gpano(image)
    assert gpano["ProjectionType"] == "equirectangular" and gpano["FullPanoWidthPixels"] == "64"
