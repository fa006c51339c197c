"""Export of the support database as a nerfstudio dataset.

Layout written into ``folder``::

    transforms.json                 nerfstudio's "nerfstudio-data" format
    images/frame_00042.png          8-bit RGB (rounded from the float rgb)
    depths/frame_00042.png          16-bit z-depth in units of SupportConfig.export_depth_unit
                                    (1e-3: millimetres for a scene in metres = nerfstudio's
                                    default depth_unit_scale_factor); 0 = unknown
    masks/frame_00042.png           8-bit, 255 where `valid` (optional, SupportConfig.export_masks)

transforms.json: camera_model "OPENCV", per frame ``file_path``, ``depth_file_path``,
``mask_path``, ``transform_matrix`` (camera-to-world with OpenGL camera axes, as nerfstudio
wants; we store OpenCV and convert here with geometry.cameras.opencv_to_opengl_c2w) and the
intrinsics ``fl_x fl_y cx cy w h`` (pixels; nerfstudio uses the same pixel-centre convention as
ours); the intrinsics also go at the top level when all views share them. Depth is z-depth,
which is nerfstudio's default reading (is_euclidean_depth False). Every file is written
atomically and transforms.json last, so an interrupted export never has a transforms.json that
names a missing file. ``scenedreamer`` per frame keeps view_id, provenance, step and prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import imageio.v3 as iio
import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_json
from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import opencv_to_opengl_c2w
from .config import SupportConfig
from .records import ViewRecord

_UINT16_MAX = np.iinfo(np.uint16).max


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        iio.imwrite(tmp, image, extension=".png")


def rgb_to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> (H, W, 3) uint8, rounded to nearest (computed in float64,
    so exact; numpy rather than torch: single-threaded, steady on a busy machine)."""
    scaled = np.clip(rgb.numpy().astype(np.float64), 0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)


def depth_to_uint16(depth: torch.Tensor, valid: torch.Tensor, unit: float) -> np.ndarray:
    """(H, W) z-depth (scene units) -> (H, W) uint16 counts of ``unit``; 0 where unknown
    (not valid, depth <= 0, or beyond the 16-bit range: 0 is "no depth" to nerfstudio, while
    clipping would state a wrong depth)."""
    depth64 = depth.numpy().astype(np.float64)
    counts = np.rint(depth64 / unit)
    known = valid.numpy() & (depth64 > 0) & (counts <= _UINT16_MAX)
    return np.where(known, counts, 0.0).astype(np.uint16)


def _intrinsics(record: ViewRecord) -> dict[str, Any]:
    K = record.K.double()
    if float(K[0, 1]) != 0.0:
        raise UserInputError(f"support view {record.view_id}: K has skew {float(K[0, 1])}, which "
                             "nerfstudio's transforms.json cannot represent")
    return {"fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]), "cx": float(K[0, 2]),
            "cy": float(K[1, 2]), "w": record.width, "h": record.height}


def export_nerfstudio(ids: Sequence[int], get_view: Callable[[int], ViewRecord], source: str, folder: Path,
                      config: SupportConfig, on_event: EventSink | None = None) -> Path:
    """Write the views ``ids`` (read one at a time with ``get_view``, so memory stays bounded)
    into ``folder`` as a nerfstudio dataset (layout above). ``source`` names where the views come
    from (the database folder) in errors.

    Returns the path of transforms.json. Raises UserInputError when there is no view or
    ``folder`` cannot be written (the message names it). Existing files of the same names are
    replaced; other files in ``folder`` are left alone.
    """
    if not ids:
        raise UserInputError(f"{source}: the support database is empty, nothing to export")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"{folder}: cannot create the export folder ({err.strerror})") from None

    frames = []
    for n, view_id in enumerate(ids):
        record = get_view(view_id)
        stem = f"frame_{view_id:05d}"
        frame: dict[str, Any] = {"file_path": f"images/{stem}.png",
                                 "depth_file_path": f"depths/{stem}.png"}
        _write_png(folder / frame["file_path"], rgb_to_uint8(record.rgb))
        _write_png(folder / frame["depth_file_path"],
                   depth_to_uint16(record.depth, record.valid, config.export_depth_unit))
        if config.export_masks:
            frame["mask_path"] = f"masks/{stem}.png"
            _write_png(folder / frame["mask_path"], record.valid.numpy().astype(np.uint8) * 255)
        frame["transform_matrix"] = opencv_to_opengl_c2w(record.c2w.double()).tolist()
        frame.update(_intrinsics(record))
        frame["scenedreamer"] = {"view_id": view_id, "provenance": record.provenance.value,
                                 "step": record.step, "prompt": record.prompt}
        frames.append(frame)
        emit(on_event, "export", step=n + 1, total=len(ids), message=f"nerfstudio frame {stem}")

    transforms: dict[str, Any] = {"camera_model": "OPENCV"}
    intrinsic_keys = ("fl_x", "fl_y", "cx", "cy", "w", "h")
    shared = {key: frames[0][key] for key in intrinsic_keys}
    if all(all(frame[key] == shared[key] for key in intrinsic_keys) for frame in frames):
        transforms.update(shared)
    # Not read by nerfstudio (its dataparser flag is --depth-unit-scale-factor); kept for humans.
    transforms["depth_unit_scale_factor"] = config.export_depth_unit
    transforms["frames"] = frames
    path = folder / "transforms.json"
    atomic_write_json(path, transforms)
    return path
