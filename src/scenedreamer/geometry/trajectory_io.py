"""Trajectory files in nerfstudio's ``transforms.json`` layout.

Layout (read and written)::

    {
      "camera_model": "OPENCV",
      "fl_x": 443.4, "fl_y": 443.4, "cx": 256.0, "cy": 256.0, "w": 512, "h": 512,
      "frames": [
        {"file_path": "images/frame_00000.png",
         "transform_matrix": [[...4 numbers...] x 4],     # camera-to-world, OpenGL camera axes
         "prompt": "a cosy reading nook"},                 # optional, ours (others ignore it)
        ...
      ]
    }

Intrinsics (``fl_x fl_y cx cy w h``) may sit at the top level or in each frame (a frame's value
wins). ``camera_angle_x`` (horizontal FOV in radians, NeRF-synthetic files) stands in for a
missing ``fl_x`` when ``w`` is known. nerfstudio puts pixel centres at (j + 0.5, i + 0.5), like us,
so cx/cy carry over unchanged. The transform_matrix uses OpenGL camera axes (+y up, +z back);
the conversion to our OpenCV axes is ``opengl_to_opencv_c2w`` (the one axis flip); the world
frame is kept as the file has it. Frames must share one image size (one Cameras batch).

Bad files raise UserInputError naming the file, the frame and the field, e.g.
``path/transforms.json: frame 3: transform_matrix: rotation is not orthonormal (error 0.21)``.
Hostile files are refused before they cost anything: a file over ``MAX_FILE_BYTES`` or that is
not a regular file (``/dev/zero``, a FIFO) is refused from ``stat`` without being opened, nesting
deeper than ``MAX_NESTING`` is refused before parsing, and every number must be finite and within
the ranges below (so a 400-digit integer or ``fl_x: 1e-300`` never reaches the camera maths).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_json
from ..config_io import MAX_JSON_NESTING, read_json_file, shown
from ..errors import UserInputError
from .cameras import Cameras, opencv_to_opengl_c2w, opengl_to_opencv_c2w, rotation_error
from .trajectory import Trajectory
from .trajectory_presets import check_prompt

ROTATION_TOLERANCE = 1e-3
"""Largest accepted deviation of a transform_matrix rotation from orthonormal (|R^T R - I| + |det - 1|);
within it the rotation is re-orthonormalised (SVD) so float noise from other tools is accepted."""

_INTRINSIC_FIELDS = ("fl_x", "fl_y", "cx", "cy", "w", "h")

MAX_FILE_BYTES = 16 * 2**20
"""Largest accepted trajectory file (bytes). A frame takes ~300 bytes, so this allows ~50k
frames, far more than a run can generate; a bigger file is refused from stat, before reading."""
MAX_NESTING = MAX_JSON_NESTING
"""Deepest accepted JSON nesting (objects/lists); transforms.json needs 4. Checked on the raw text
before parsing (config_io.read_json_file), so json's recursion limit is never reached."""
MAX_FRAMES = 10_000
"""Most accepted frames (each becomes a support view; a run of more is not practical)."""
MAX_IMAGE_SIDE = 16384
"""Largest accepted w/h (pixels)."""
MAX_TRANSLATION = 1e6
"""Largest accepted |camera position| coordinate (scene units); beyond it float32 cannot
represent the small steps between cameras."""
MAX_PRINCIPAL_OFFSET = 10.0
"""cx/cy must lie within this many image sizes of the image (a principal point further out is
not a real camera and makes the rays degenerate)."""
MIN_FOV_DEG, MAX_FOV_DEG = 0.01, 179.9
"""Accepted field of view (degrees) of a camera, as fl_x/fl_y or camera_angle_x: outside it K is
singular in float32 (fl_x 1e-300 made generate fail with LinAlgError)."""

def _parse_int(digits: str) -> int | float:
    """An integer literal of the file: a huge one becomes inf (float() of it would raise
    OverflowError, int() of over 4300 digits ValueError) so that the range checks name the field."""
    return int(digits) if len(digits) <= 18 else float("inf")


def _read_json(path: Path) -> Any:
    """The file's JSON, read with the bounds of the module docstring (UserInputError naming the
    path). NaN / Infinity literals are read so that the checks can name the field holding them."""
    return read_json_file(path, what="transforms.json file", max_bytes=MAX_FILE_BYTES,
                          parse_int=_parse_int, allow_nan=True)


def _fail(path: Path, where: str, message: str) -> UserInputError:
    return UserInputError(f"{path}: {where}{message}")


def _number(path: Path, where: str, name: str, value: Any, *, positive: bool = False,
            integer: bool = False, limit: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, where, f"{name}: expected a number, got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise _fail(path, where, f"{name}: must be finite, got {value}")
    if limit is not None and abs(value) > limit:
        raise _fail(path, where, f"{name}: must be at most {limit:g} in size, got {value:g}")
    if integer and value != int(value):
        raise _fail(path, where, f"{name}: must be a whole number of pixels, got {value:g}")
    if positive and value <= 0:
        raise _fail(path, where, f"{name}: must be > 0, got {value:g}")
    return value


def _intrinsics(path: Path, top: dict, frame: dict, where: str) -> dict[str, float]:
    """fl_x fl_y cx cy w h for one frame (frame value, else top-level value)."""
    merged = {k: frame[k] if k in frame else top.get(k) for k in (*_INTRINSIC_FIELDS, "camera_angle_x")}
    out: dict[str, float] = {}
    for name in ("w", "h"):
        if merged[name] is None:
            raise _fail(path, where, f"{name}: missing (neither in the frame nor at the top level)")
        out[name] = _number(path, where, name, merged[name], positive=True, integer=True, limit=MAX_IMAGE_SIDE)
    if merged["fl_x"] is None and merged["camera_angle_x"] is not None:
        angle = _number(path, where, "camera_angle_x", merged["camera_angle_x"], positive=True)
        # the field-of-view range the focal-length check below accepts; a smaller angle made
        # tan() underflow to 0 (ZeroDivisionError for camera_angle_x = 5e-324)
        low, high = math.radians(MIN_FOV_DEG), math.radians(MAX_FOV_DEG)
        if not low <= angle <= high:
            raise _fail(path, where, f"camera_angle_x: {angle:g} radians is not a usable field of view "
                                     f"(expected {low:.3g} to {high:.3g})")
        merged["fl_x"] = 0.5 * out["w"] / math.tan(0.5 * angle)
    if merged["fl_x"] is None:
        raise _fail(path, where, "fl_x: missing (neither in the frame nor at the top level)")
    out["fl_x"] = _number(path, where, "fl_x", merged["fl_x"], positive=True)
    out["fl_y"] = out["fl_x"] if merged["fl_y"] is None else _number(path, where, "fl_y", merged["fl_y"],
                                                                       positive=True)
    for name, size in (("fl_x", out["w"]), ("fl_y", out["h"])):
        # between a MIN_FOV_DEG and a MAX_FOV_DEG field of view: outside it K is singular in
        # float32 (fl_x 1e-300 made generate fail with LinAlgError)
        low = size / 2 / math.tan(math.radians(MAX_FOV_DEG) / 2)
        high = size / 2 / math.tan(math.radians(MIN_FOV_DEG) / 2)
        if not low <= out[name] <= high:
            raise _fail(path, where, f"{name}: {out[name]:g} pixels is not a usable focal length for a "
                                     f"{int(size)}-pixel image (expected {low:.3g} to {high:.3g})")
    for name, size in (("cx", out["w"]), ("cy", out["h"])):
        if merged[name] is None:
            out[name] = size / 2
            continue
        out[name] = _number(path, where, name, merged[name])
        if not -MAX_PRINCIPAL_OFFSET * size <= out[name] <= (1 + MAX_PRINCIPAL_OFFSET) * size:
            raise _fail(path, where, f"{name}: {out[name]:g} is too far outside the {int(size)}-pixel image "
                                     f"(at most {MAX_PRINCIPAL_OFFSET:g} image sizes)")
    return out


def _transform(path: Path, value: Any, where: str) -> torch.Tensor:
    """Validated (4, 4) float64 OpenGL c2w from a frame's transform_matrix."""
    name = "transform_matrix"
    if value is None:
        raise _fail(path, where, f"{name}: missing")
    if (not isinstance(value, list) or len(value) not in (3, 4)
            or not all(isinstance(row, list) and len(row) == 4 for row in value)):
        raise _fail(path, where, f"{name}: must be a 4x4 (or 3x4) list of numbers")
    for r, row in enumerate(value):
        for c, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise _fail(path, where, f"{name}: expected numbers, got {shown(x)}")
            x = _number(path, where, name, x)
            if c == 3 and r < 3 and abs(x) > MAX_TRANSLATION:
                raise _fail(path, where, f"{name}: translation {x:g} is beyond +-{MAX_TRANSLATION:g} scene units")
            if c < 3 and abs(x) > 2.0:          # a rotation's entries are within [-1, 1]
                raise _fail(path, where, f"{name}: rotation entry {x:g} is not part of a rotation")
    m = torch.tensor(value, dtype=torch.float64)
    if m.shape[0] == 3:
        m = torch.cat([m, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    if (m[3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).abs().max() > 1e-6:
        raise _fail(path, where, f"{name}: last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    err = float(rotation_error(m[:3, :3]))
    if err > ROTATION_TOLERANCE:
        raise _fail(path, where, f"{name}: rotation is not orthonormal with det +1 (error {err:.3g})")
    U, _, Vh = torch.linalg.svd(m[:3, :3])
    m[:3, :3] = U @ Vh                                              # snap float noise to a rotation
    return m


def read_transforms_json(path: str | os.PathLike, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> Trajectory:
    """Read a nerfstudio-style transforms.json into a Trajectory (OpenCV camera axes).

    Returns N cameras (the file's frames, in order) in the file's world frame, K from the
    frame or top-level intrinsics, and each frame's optional ``prompt`` (None when absent).
    Raises UserInputError "<file>: frame <i>: <field>: <problem>" for every malformed input.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: top level must be a JSON object with 'frames'")
    frames = data.get("frames")
    if frames is None:
        raise UserInputError(f"{path}: frames: missing")
    if not isinstance(frames, list) or not frames:
        raise UserInputError(f"{path}: frames: must be a non-empty list")
    if len(frames) > MAX_FRAMES:
        raise UserInputError(f"{path}: frames: {len(frames)} frames, more than the {MAX_FRAMES} accepted")

    Ks, c2ws, prompts, sizes = [], [], [], set()
    for i, frame in enumerate(frames):
        where = f"frame {i}: "
        if not isinstance(frame, dict):
            raise _fail(path, where, "must be a JSON object")
        intr = _intrinsics(path, data, frame, where)
        sizes.add((int(intr["w"]), int(intr["h"])))
        if len(sizes) > 1:
            raise _fail(path, where, f"w/h: all frames must share one image size, got {sorted(sizes)}")
        c2ws.append(_transform(path, frame.get("transform_matrix"), where))
        Ks.append([[intr["fl_x"], 0.0, intr["cx"]], [0.0, intr["fl_y"], intr["cy"]], [0.0, 0.0, 1.0]])
        prompt = frame.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise _fail(path, where, f"prompt: must be a string or null, got {shown(prompt)}")
        if prompt is not None:
            check_prompt(f"{path}: frame {i}: prompt", prompt)
        prompts.append(prompt)

    (width, height), = sizes
    c2w = opengl_to_opencv_c2w(torch.stack(c2ws)).to(dtype=dtype, device=device)
    K = torch.tensor(Ks, dtype=dtype, device=device)
    return Trajectory(cameras=Cameras(K, c2w, width, height), prompts=prompts)


def _num(x: float) -> float | int:
    """JSON-friendly number: whole floats as ints (w, h), others rounded to float64 repr."""
    return int(x) if float(x).is_integer() and abs(x) < 2 ** 53 else float(x)


def write_transforms_json(path: str | os.PathLike, traj: Trajectory,
                          extra_frame_fields: list[dict] | None = None) -> None:
    """Write a Trajectory as nerfstudio-style transforms.json (OpenGL camera axes), atomically.

    Shared intrinsics go to the top level, differing ones into each frame. Each frame gets a
    ``file_path`` (images/frame_%05d.png, the name our renders use), its ``transform_matrix``
    and, when set, its ``prompt``. extra_frame_fields: one dict per frame merged into it (e.g.
    real file paths); it may override file_path.
    """
    cams = traj.cameras
    n = len(cams)
    if extra_frame_fields is not None and len(extra_frame_fields) != n:
        raise ValueError(f"write_transforms_json: {n} frames but {len(extra_frame_fields)} extra field dicts")
    K = cams.K.detach().double().cpu()
    c2w_gl = opencv_to_opengl_c2w(cams.c2w.detach().double().cpu())
    per_frame = [{"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}
                 for k in K]
    shared = all(p == per_frame[0] for p in per_frame)
    out: dict[str, Any] = {"camera_model": "OPENCV"}
    if shared:
        out.update({k: _num(v) for k, v in per_frame[0].items()})
    out.update({"w": cams.width, "h": cams.height})
    frames = []
    for i in range(n):
        frame: dict[str, Any] = {"file_path": f"images/frame_{i:05d}.png",
                                 "transform_matrix": [[float(x) for x in row] for row in c2w_gl[i].tolist()]}
        if not shared:
            frame.update({k: _num(v) for k, v in per_frame[i].items()})
        if traj.prompts[i] is not None:
            frame["prompt"] = traj.prompts[i]
        if extra_frame_fields is not None:
            frame.update(extra_frame_fields[i])
        frames.append(frame)
    out["frames"] = frames
    atomic_write_json(path, out)


def summarize_trajectory(traj: Trajectory) -> dict[str, Any]:
    """Numbers that describe a trajectory (for ``scenedreamer trajectory --check``).

    frames, image size, horizontal FOV range (degrees), path length and extent (scene units),
    largest step between frames (translation, scene units; rotation, degrees), prompt count.
    """
    cams = traj.cameras
    c2w = cams.c2w.detach().double().cpu()
    centres = c2w[:, :3, 3]
    steps = (centres[1:] - centres[:-1]).norm(dim=-1) if len(cams) > 1 else torch.zeros(1, dtype=torch.float64)
    if len(cams) > 1:
        rel = c2w[:-1, :3, :3].transpose(1, 2) @ c2w[1:, :3, :3]
        cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
        turn = torch.rad2deg(torch.acos(cos))
    else:
        turn = torch.zeros(1, dtype=torch.float64)
    fov = torch.rad2deg(2 * torch.atan(0.5 * cams.width / cams.K[:, 0, 0].double().cpu()))
    return {
        "frames": len(cams), "width": cams.width, "height": cams.height,
        "fov_x_deg_min": float(fov.min()), "fov_x_deg_max": float(fov.max()),
        "path_length": float(steps.sum()), "extent": (centres.amax(0) - centres.amin(0)).tolist(),
        "max_step": float(steps.max()), "max_turn_deg": float(turn.max()),
        "total_turn_deg": float(turn.sum()),
        "prompts": len({p for p in traj.prompts if p is not None}),
    }
