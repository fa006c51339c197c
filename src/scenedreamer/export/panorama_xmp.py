"""Equirectangular panoramas that photo sites and viewers recognise as 360: GPano XMP metadata.

Google's Photo Sphere XMP (namespace GPano, http://ns.google.com/photos/1.0/panorama/) says the
image is an equirectangular projection, how large the full sphere is in pixels and which part of
it the image covers (ours: all of it). The packet is written by hand, no XMP library:
- PNG: an ``iTXt`` chunk with keyword ``XML:com.adobe.xmp`` (uncompressed, UTF-8), placed right
  after IHDR as the XMP specification (part 3) asks;
- JPEG: an APP1 segment starting with the XMP namespace header ``http://ns.adobe.com/xap/1.0/\\0``,
  placed after SOI and any APP0 (JFIF) segment.
Pillow's ``Image.getxmp()`` and exiftool read both (tests/export/test_panorama_xmp.py).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import UserInputError

XMP_PNG_KEYWORD = b"XML:com.adobe.xmp"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SEGMENT_MAX = 65533          # a JPEG segment's 16-bit length counts itself (2 bytes)

JPEG_QUALITY = 95
"""Quality of panorama JPEGs (Pillow's scale): high, as panoramas are viewed zoomed in."""


def gpano_xmp(width: int, height: int) -> str:
    """The XMP packet (UTF-8 text) of a full equirectangular panorama of ``width`` x ``height``
    pixels (width = 2 x height: 360 x 180 degrees, no crop)."""
    fields = {"ProjectionType": "equirectangular", "UsePanoramaViewer": "True",
              "FullPanoWidthPixels": width, "FullPanoHeightPixels": height,
              "CroppedAreaImageWidthPixels": width, "CroppedAreaImageHeightPixels": height,
              "CroppedAreaLeftPixels": 0, "CroppedAreaTopPixels": 0}
    attributes = "".join(f'\n    GPano:{key}="{value}"' for key, value in fields.items())
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
            ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
            '  <rdf:Description rdf:about=""\n'
            f'    xmlns:GPano="http://ns.google.com/photos/1.0/panorama/"{attributes}/>\n'
            ' </rdf:RDF>\n'
            '</x:xmpmeta>\n'
            '<?xpacket end="w"?>')


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_xmp(png: bytes, xmp: str) -> bytes:
    """``png`` (a whole PNG file) with an iTXt XMP chunk inserted right after IHDR."""
    if not png.startswith(_PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("png_with_xmp: not a PNG file (no signature and IHDR)")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]       # signature + length/type/crc + data
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translated keyword NUL
    data = XMP_PNG_KEYWORD + b"\x00\x00\x00" + b"\x00" + b"\x00" + xmp.encode("utf-8")
    return png[:ihdr_end] + _png_chunk(b"iTXt", data) + png[ihdr_end:]


def jpeg_with_xmp(jpeg: bytes, xmp: str) -> bytes:
    """``jpeg`` (a whole JPEG file) with an APP1 XMP segment after SOI and any APP0 segment."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("jpeg_with_xmp: not a JPEG file (no SOI marker)")
    payload = XMP_JPEG_HEADER + xmp.encode("utf-8")
    if len(payload) > _JPEG_SEGMENT_MAX:
        raise ValueError(f"jpeg_with_xmp: XMP packet of {len(payload)} bytes does not fit one APP1 segment")
    at = 2
    if jpeg[2:4] == b"\xff\xe0":                                   # keep JFIF's APP0 first
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:at] + segment + jpeg[at:]


def panorama_bytes(image: np.ndarray, suffix: str) -> bytes:
    """(H, W, 3) uint8 equirectangular image -> a PNG (suffix ".png") or JPEG (".jpg"/".jpeg")
    file's bytes carrying the GPano XMP packet."""
    from PIL import Image

    height, width = image.shape[:2]
    buffer = io.BytesIO()
    if suffix == ".png":
        Image.fromarray(image).save(buffer, format="PNG")
        return png_with_xmp(buffer.getvalue(), gpano_xmp(width, height))
    if suffix in (".jpg", ".jpeg"):
        Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)   # 4:4:4
        return jpeg_with_xmp(buffer.getvalue(), gpano_xmp(width, height))
    raise UserInputError(f"panorama: {suffix!r} is not a panorama format (.png, .jpg)")


def write_panorama(path: str | os.PathLike, image) -> None:
    """Write an equirectangular panorama ``image`` ((H, W, 3) float in [0, 1], tensor or array, or
    uint8) at ``path`` (.png or .jpg/.jpeg, by suffix) with GPano XMP, atomically."""
    from .video import to_uint8

    path = Path(path)
    atomic_write_bytes(path, panorama_bytes(to_uint8(image), path.suffix.lower()))
