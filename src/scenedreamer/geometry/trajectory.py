"""Camera trajectories: named presets, smooth pose interpolation and per-segment prompts.

World frame of every preset: the FIRST camera's frame (camera 0 has the identity pose), with
OpenCV axes, so +x is right, +y is DOWN and +z is forward; "up" in the world is -y. Angles are
in degrees, distances in scene units (the depth units of the first view). A positive yaw turns
the camera to its right (toward +x); a positive pitch tilts it up (toward -y).

Presets are data: ``TRAJECTORY_PRESETS`` maps a name to a frozen params dataclass whose fields
(documented, with their allowed range in the field metadata) are the preset's options, and
whose ``poses(frames)`` returns the c2w path. ``make_trajectory`` validates the options
(UserInputError naming the preset and the field) and builds a ``Trajectory``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import UserInputError
from .cameras import Cameras, intrinsics_from_fov, pose_from_rotation_translation, rigid_inverse
from .trajectory_presets import (MAX_FRAMES, TRAJECTORY_PRESETS, build_preset_params, check_path_image,
                                 path_frame_count)


__all__ = ["Trajectory", "matrix_to_quaternion", "quaternion_to_matrix", "slerp", "interpolate_poses",
           "interpolated_cameras", "cameras_between", "segment_prompts", "make_trajectory",
           "keyframe_trajectory", "MAX_FRAMES", "TRAJECTORY_PRESETS", "build_preset_params",
           "check_path_image", "path_frame_count"]
"""The public names; the presets and path_frame_count live in trajectory_presets.py (torch-free) and
are this module's too."""


@dataclass(frozen=True)
class Trajectory:
    """A camera path with an optional prompt per frame.

    cameras: N cameras (OpenCV axes, c2w in the trajectory's world frame).
    prompts: N entries; None means "use the main prompt" for that frame.
    """

    cameras: Cameras
    prompts: list[str | None]

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.cameras):
            raise ValueError(f"Trajectory: {len(self.cameras)} cameras but {len(self.prompts)} prompts")

    def __len__(self) -> int:
        return len(self.cameras)


# ---------------------------------------------------------------------------------------------
# rotations: quaternions (w, x, y, z), slerp
# ---------------------------------------------------------------------------------------------

def matrix_to_quaternion(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Picks, per matrix, the numerically best of the four classic formulas (largest diagonal
    term), so it is accurate for every rotation including 180 degrees.
    """
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack([
        torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], dim=-2)                                                              # (..., 4 candidates, 4)
    diag = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(dim=-1, keepdim=True)                               # (..., 1)
    q = torch.gather(candidates, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) quaternions (w, x, y, z) (normalised here) -> (..., 3, 3) rotation matrices."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def slerp(q0: Tensor, q1: Tensor, u: Tensor) -> Tensor:
    """Spherical linear interpolation of unit quaternions (..., 4) at fractions u (...,).

    Takes the short way (flips q1 when the dot product is negative); falls back to a
    normalised lerp when the quaternions are nearly equal.
    """
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    u = u.unsqueeze(-1)
    near = sin_theta < 1e-6
    safe = torch.where(near, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(near, 1 - u, torch.sin((1 - u) * theta) / safe)
    w1 = torch.where(near, u, torch.sin(u * theta) / safe)
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True)


def _catmull_rom(points: Tensor, seg: Tensor, u: Tensor) -> Tensor:
    """Uniform Catmull-Rom spline through points (K, 3) at segment seg (F,) and fraction u (F,).

    The curve passes through every key point; the ends are extended by reflection.
    """
    padded = torch.cat([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    p0, p1, p2, p3 = padded[seg], padded[seg + 1], padded[seg + 2], padded[seg + 3]
    u = u.unsqueeze(-1)
    u2, u3 = u * u, u * u * u
    return 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
                  + (-p0 + 3 * p1 - 3 * p2 + p3) * u3)


def interpolate_poses(c2w_keys: Tensor, frames: int) -> Tensor:
    """Smooth camera path through key poses.

    c2w_keys: (K, 4, 4) rigid camera-to-world keys (any camera axes; rotations are slerped,
    positions follow a Catmull-Rom spline through the key positions).
    Returns (frames, 4, 4) in the keys' dtype. Key k sits at frame k * (frames-1) / (K-1), so
    the path hits every key exactly when (frames - 1) is a multiple of (K - 1); frame 0 and
    the last frame are always the first and last key.
    """
    if c2w_keys.ndim != 3 or c2w_keys.shape[-2:] != (4, 4) or c2w_keys.shape[0] < 1:
        raise ValueError(f"interpolate_poses: keys must be (K, 4, 4), got {tuple(c2w_keys.shape)}")
    if frames < 1:
        raise ValueError(f"interpolate_poses: frames must be >= 1, got {frames}")
    K = c2w_keys.shape[0]
    keys = c2w_keys.double()
    if K == 1 or frames == 1:
        return c2w_keys[:1].expand(frames, 4, 4).clone()
    t = torch.linspace(0, K - 1, frames, dtype=torch.float64, device=keys.device)
    seg = t.floor().long().clamp(max=K - 2)
    u = t - seg
    quats = matrix_to_quaternion(keys[:, :3, :3])
    for i in range(1, K):                       # keep neighbours on the same hemisphere
        if float((quats[i] * quats[i - 1]).sum()) < 0:
            quats[i] = -quats[i]
    rot = quaternion_to_matrix(slerp(quats[seg], quats[seg + 1], u))
    pos = _catmull_rom(keys[:, :3, 3], seg, u)
    return pose_from_rotation_translation(rot, pos).to(c2w_keys.dtype)


def interpolated_cameras(cameras: Cameras, frames: int) -> Cameras:
    """The camera path through ``cameras`` (N, any world frame) resampled to ``frames`` cameras.

    The one owner of "the interpolated path" (video, render, distillation and eval all ask it):
    poses from ``interpolate_poses`` (slerp + Catmull-Rom, keys hit where (frames-1) is a
    multiple of (N-1)); every camera gets the first camera's intrinsics K (pixels) and size.
    """
    c2w = interpolate_poses(cameras.c2w, frames)
    return Cameras(cameras.K[:1].expand(frames, 3, 3).contiguous(), c2w, cameras.width, cameras.height)


def cameras_between(cameras: Cameras, per_gap: int) -> Cameras:
    """``per_gap`` interpolated cameras strictly between each consecutive pair of ``cameras``
    ((N-1) * per_gap cameras, the keys themselves left out; an empty batch when N < 2 or
    per_gap <= 0). per_gap = 1 gives the midpoints (held-out views)."""
    n = len(cameras)
    if n < 2 or per_gap <= 0:
        return cameras[:0]
    dense = interpolated_cameras(cameras, (n - 1) * (per_gap + 1) + 1)
    keep = [i for i in range(len(dense)) if i % (per_gap + 1) != 0]
    return dense[keep]


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------

def segment_prompts(prompts: Sequence[str | None] | None, frames: int) -> list[str | None]:
    """Per-frame prompts from per-segment prompts: the frames are split into len(prompts)
    contiguous, nearly equal segments, in order. None or an empty list -> all None."""
    if not prompts:
        return [None] * frames
    n = len(prompts)
    if n > frames:   # some prompts would silently never be used
        raise UserInputError(f"trajectory: {n} prompts but only {frames} frames (at most one prompt per frame)")
    return [prompts[min(n - 1, (f * n) // frames)] for f in range(frames)]


def make_trajectory(preset: str, frames: int, width: int, height: int, fov_deg: float = 60.0, *,
                    prompts: Sequence[str | None] | None = None, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None, **params: Any) -> Trajectory:
    """A preset camera path of ``frames`` cameras at width x height with horizontal FOV fov_deg.

    params: the preset's options (fields of ``TRAJECTORY_PRESETS[preset]``; degrees and scene
    units). prompts: per-segment prompts (frames split evenly among them; see segment_prompts).
    World: camera 0's frame (camera 0 = identity, OpenCV axes, world up = -y).
    Raises UserInputError for an unknown preset or option, or an out-of-range value.
    """
    p = build_preset_params(preset, **params)
    check_path_image(frames, width, height, fov_deg)
    c2w = p.poses(frames)                                                  # (F, 4, 4) float64
    c2w = rigid_inverse(c2w[:1]) @ c2w                                     # camera 0 = identity
    c2w = c2w.to(dtype=dtype, device=device)
    K = intrinsics_from_fov(float(fov_deg), width, height, dtype=dtype, device=device)
    cams = Cameras(K.expand(frames, 3, 3).clone(), c2w, width, height)
    return Trajectory(cameras=cams, prompts=segment_prompts(prompts, frames))


def keyframe_trajectory(c2w_keys: Tensor, frames: int, width: int, height: int, fov_deg: float = 60.0,
                        key_prompts: Sequence[str | None] | None = None) -> Trajectory:
    """A smooth path through key poses (K, 4, 4) (OpenCV c2w), with a prompt per key segment.

    Frame f gets the prompt of the last key at or before it (key k sits at frame
    k * (frames-1) / (K-1)). Intrinsics: centred, horizontal FOV fov_deg. World: the keys' world.
    """
    check_path_image(frames, width, height, fov_deg)
    K_keys = c2w_keys.shape[0]
    if key_prompts is not None and len(key_prompts) != K_keys:
        raise UserInputError(f"trajectory: {K_keys} key poses but {len(key_prompts)} key prompts")
    c2w = interpolate_poses(c2w_keys, frames)
    K = intrinsics_from_fov(float(fov_deg), width, height, dtype=c2w.dtype, device=c2w.device)
    if key_prompts is None:
        prompts: list[str | None] = [None] * frames
    elif K_keys == 1 or frames == 1:
        prompts = [key_prompts[0]] * frames
    else:
        key_of = [min(K_keys - 1, math.floor(f * (K_keys - 1) / (frames - 1) + 1e-9)) for f in range(frames)]
        prompts = [key_prompts[k] for k in key_of]
    return Trajectory(cameras=Cameras(K.expand(frames, 3, 3).clone(), c2w, width, height), prompts=prompts)
