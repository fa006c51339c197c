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
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_json
from ..errors import UserInputError
from .cameras import Cameras, opencv_to_opengl_c2w, opengl_to_opencv_c2w, rotation_error
from .trajectory import Trajectory

ROTATION_TOLERANCE = 1e-3
"""Largest accepted deviation of a transform_matrix rotation from orthonormal (|R^T R - I| + |det - 1|);
within it the rotation is re-orthonormalised (SVD) so float noise from other tools is accepted."""

_INTRINSIC_FIELDS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def _fail(path: Path, where: str, message: str) -> UserInputError:
    return UserInputError(f"{path}: {where}{message}")


def _number(path: Path, where: str, name: str, value: Any, *, positive: bool = False,
            integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, where, f"{name}: expected a number, got {json.dumps(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(path, where, f"{name}: must be finite, got {value}")
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
        out[name] = _number(path, where, name, merged[name], positive=True, integer=True)
    if merged["fl_x"] is None and merged["camera_angle_x"] is not None:
        angle = _number(path, where, "camera_angle_x", merged["camera_angle_x"], positive=True)
        if angle >= math.pi:
            raise _fail(path, where, f"camera_angle_x: must be < pi radians, got {angle:g}")
        merged["fl_x"] = 0.5 * out["w"] / math.tan(0.5 * angle)
    if merged["fl_x"] is None:
        raise _fail(path, where, "fl_x: missing (neither in the frame nor at the top level)")
    out["fl_x"] = _number(path, where, "fl_x", merged["fl_x"], positive=True)
    out["fl_y"] = out["fl_x"] if merged["fl_y"] is None else _number(path, where, "fl_y", merged["fl_y"],
                                                                       positive=True)
    out["cx"] = out["w"] / 2 if merged["cx"] is None else _number(path, where, "cx", merged["cx"])
    out["cy"] = out["h"] / 2 if merged["cy"] is None else _number(path, where, "cy", merged["cy"])
    return out


def _transform(path: Path, value: Any, where: str) -> torch.Tensor:
    """Validated (4, 4) float64 OpenGL c2w from a frame's transform_matrix."""
    name = "transform_matrix"
    if value is None:
        raise _fail(path, where, f"{name}: missing")
    if (not isinstance(value, list) or len(value) not in (3, 4)
            or not all(isinstance(row, list) and len(row) == 4 for row in value)):
        raise _fail(path, where, f"{name}: must be a 4x4 (or 3x4) list of numbers")
    for row in value:
        for x in row:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise _fail(path, where, f"{name}: expected numbers, got {json.dumps(x)}")
            if not math.isfinite(float(x)):
                raise _fail(path, where, f"{name}: must be finite, got {x}")
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserInputError(f"{path}: cannot read ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserInputError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: top level must be a JSON object with 'frames'")
    frames = data.get("frames")
    if frames is None:
        raise UserInputError(f"{path}: frames: missing")
    if not isinstance(frames, list) or not frames:
        raise UserInputError(f"{path}: frames: must be a non-empty list")

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
            raise _fail(path, where, f"prompt: must be a string or null, got {json.dumps(prompt)}")
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
