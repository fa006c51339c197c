"""Cameras of a run: the trajectory to follow and the neighbours of the first camera."""

from __future__ import annotations

import math

import torch

from ..errors import UserInputError
from ..geometry.cameras import Cameras
from ..geometry.trajectory import Trajectory, make_trajectory
from ..geometry.trajectory_io import read_transforms_json
from .config import GenerateConfig, InitConfig


def load_trajectory(config: GenerateConfig) -> Trajectory:
    """The run's trajectory at the run's resolution: a transforms.json file or a preset.

    A file's intrinsics are rescaled to (config.width, config.height). Fewer than 2 cameras is
    refused (there would be nothing to generate progressively).
    """
    spec = config.trajectory
    if spec.file:
        traj = read_transforms_json(spec.file)
        traj = Trajectory(traj.cameras.scaled(config.width, config.height), traj.prompts)
        where = spec.file
    else:
        traj = make_trajectory(spec.preset, spec.frames, config.width, config.height, fov_deg=spec.fov_deg,
                               **spec.params)
        where = f"preset {spec.preset!r}"
    if len(traj.cameras) < 2:
        raise UserInputError(f"{where}: a trajectory needs at least 2 cameras, got {len(traj.cameras)}")
    return traj


def _rotation(axis: str, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    if axis == "y":   # yaw: about the camera's vertical axis (+y down in OpenCV)
        return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # pitch: about +x


def initial_neighbour_cameras(camera0: Cameras, config: InitConfig) -> list[Cameras]:
    """Cameras around the first one (a batch of 1) for the initial support set.

    Each yaw offset turns camera 0 about its own vertical axis (positive = to the right) and
    moves it ``neighbour_shift`` scene units sideways toward that side; each pitch offset
    tilts it (positive = up).
    """
    cams = []
    for axis, angles in (("y", config.neighbour_yaws_deg), ("x", config.neighbour_pitches_deg)):
        for deg in angles:
            local = torch.eye(4)
            # OpenCV: +y is down, so turning right is +yaw about +y; tilting up is -rotation about +x
            local[:3, :3] = _rotation(axis, deg if axis == "y" else -deg)
            if axis == "y" and config.neighbour_shift:
                local[0, 3] = math.copysign(config.neighbour_shift, deg)
            c2w = camera0.c2w[0] @ local.to(camera0.c2w)
            cams.append(Cameras(camera0.K, c2w[None], camera0.width, camera0.height))
    return cams
