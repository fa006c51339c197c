"""Export of the support database as a nerfstudio dataset.

Layout written into ``folder``::

    transforms.json                 nerfstudio's "nerfstudio-data" format
    images/frame_00042.png          8-bit RGB (rounded from the float rgb)
    depths/frame_00042.npy          float32 (H, W) z-depth in counts of SupportConfig.export_depth_unit
                                    (1e-3: millimetres for a scene in metres = nerfstudio's
                                    default depth_unit_scale_factor); 0 = unknown. This is the
                                    frame's ``depth_file_path``: nerfstudio reads .npy natively,
                                    and float keeps EVERY known depth (the sky and anything past
                                    65535 counts does not fit 16 bits).
    depths/frame_00042.png          the same depth as 16-bit counts for PNG-only tools; 0 where
                                    unknown or beyond 65535 counts (not clipped to a wrong depth)
    points3D.ply                    coloured points back-projected from the known depths, the
                                    ``ply_file_path`` splatfacto starts from (same world frame
                                    as transform_matrix: our OpenCV world, +y down)
    masks/frame_00042.png           8-bit, 255 where `valid` (optional, SupportConfig.export_masks)

transforms.json: camera_model "OPENCV", per frame ``file_path``, ``depth_file_path``,
``mask_path``, ``transform_matrix`` (camera-to-world with OpenGL camera axes, as nerfstudio
wants; we store OpenCV and convert here with geometry.cameras.opencv_to_opengl_c2w) and the
intrinsics ``fl_x fl_y cx cy w h`` (pixels; nerfstudio uses the same pixel-centre convention as
ours); the intrinsics also go at the top level when all views share them. Depth is z-depth,
which is nerfstudio's default reading (is_euclidean_depth False). Every file is written
atomically and transforms.json last, so an interrupted export never has a transforms.json that
names a missing file. ``scenedreamer`` per frame keeps view_id, provenance, step and prompt.

Rotation-only paths (lookaround, rotate360: every camera at one centre): nerfstudio's default
``auto_scale_poses`` divides by the largest camera translation after centring and fails with
ZeroDivisionError. Nothing in transforms.json can change that default, so the export logs one
warning naming the option to pass (``ROTATION_ONLY_HINT``) and records it in transforms.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import imageio.v3 as iio
import numpy as np
import torch

import logging

from ..atomic import atomic_path, atomic_write_json
from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras, opencv_to_opengl_c2w
from ..geometry.projection import unproject_depth
from .config import SupportConfig
from .records import ViewRecord

_UINT16_MAX = np.iinfo(np.uint16).max
log = logging.getLogger(__name__)

POINTS_NAME = "points3D.ply"
ROTATION_ONLY_HINT = "ns-train splatfacto nerfstudio-data --data {folder} --auto-scale-poses False"
"""The nerfstudio command for a dataset whose cameras share one centre (see the module docstring)."""


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


def depth_to_counts(depth: torch.Tensor, valid: torch.Tensor, unit: float) -> np.ndarray:
    """(H, W) z-depth (scene units) -> (H, W) float32 counts of ``unit`` (depth / unit); 0 where
    unknown (not valid or depth <= 0). No range limit: every known depth is kept."""
    depth64 = depth.numpy().astype(np.float64)
    known = valid.numpy() & (depth64 > 0)
    return np.where(known, depth64 / unit, 0.0).astype(np.float32)


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def view_points(record: ViewRecord, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """World points (M, 3) float32 (OpenCV world of the run) and colours (M, 3) uint8 of the
    pixels of ``record`` with known depth, at most ``max_points`` of them, evenly spaced in
    raster order (deterministic)."""
    known = (record.valid & (record.depth > 0)).reshape(-1)
    camera = Cameras(record.K.float()[None], record.c2w.float()[None], record.width, record.height)
    world = unproject_depth(record.depth.float()[None], camera)[0].reshape(-1, 3)
    index = torch.nonzero(known).reshape(-1)
    if len(index) > max_points:
        index = index[torch.linspace(0, len(index) - 1, max_points).round().long()]
    colours = rgb_to_uint8(record.rgb.reshape(-1, 3)[index][None])[0]
    return world[index].numpy().astype(np.float32), colours


def write_points(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Points (M, 3) float and colours (M, 3) uint8 as a binary PLY (x y z float, red green blue
    uchar: what nerfstudio reads through Open3D), atomically."""
    from plyfile import PlyData, PlyElement

    vertex = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, name in enumerate("xyz"):
        vertex[name] = xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<").write(str(tmp))


def cameras_share_one_centre(centres: np.ndarray, depth_scale: float, tolerance: float) -> bool:
    """True when the camera centres (N, 3) span less than ``tolerance`` x ``depth_scale`` (the
    median known depth) about their mean, measured as nerfstudio does (largest |coordinate|):
    then its auto_scale_poses divides by (almost) zero."""
    spread = float(np.abs(centres - centres.mean(axis=0)).max()) if len(centres) else 0.0
    return spread <= tolerance * depth_scale


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

    frames, centres, medians, points, colours = [], [], [], [], []
    per_view = max(1, config.export_points // len(ids))
    for n, view_id in enumerate(ids):
        record = get_view(view_id)
        stem = f"frame_{view_id:05d}"
        frame: dict[str, Any] = {"file_path": f"images/{stem}.png",
                                 "depth_file_path": f"depths/{stem}.npy"}
        _write_png(folder / frame["file_path"], rgb_to_uint8(record.rgb))
        _write_npy(folder / frame["depth_file_path"],
                   depth_to_counts(record.depth, record.valid, config.export_depth_unit))
        _write_png(folder / f"depths/{stem}.png",
                   depth_to_uint16(record.depth, record.valid, config.export_depth_unit))
        xyz, rgb = view_points(record, per_view)
        points.append(xyz)
        colours.append(rgb)
        known = record.depth[record.valid & (record.depth > 0)]
        if len(known):
            medians.append(float(known.median()))
        centres.append(record.c2w.double()[:3, 3].numpy())
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
    xyz, rgb = np.concatenate(points), np.concatenate(colours)
    # exact duplicates would give splatfacto's nearest-neighbour scale init a zero distance
    xyz, first = np.unique(xyz, axis=0, return_index=True)
    write_points(folder / POINTS_NAME, xyz, rgb[first])
    transforms["ply_file_path"] = POINTS_NAME
    if cameras_share_one_centre(np.stack(centres), float(np.median(medians)) if medians else 1.0,
                                config.export_min_camera_spread):
        hint = ROTATION_ONLY_HINT.format(folder=folder)
        transforms["scenedreamer"] = {"cameras": "one centre (rotation only)", "ns_train": hint}
        log.warning("nerfstudio dataset %s: all cameras share one centre, so nerfstudio's default "
                    "auto-scale-poses divides by zero; train with: %s", folder, hint)
    transforms["frames"] = frames
    path = folder / "transforms.json"
    atomic_write_json(path, transforms)
    return path
