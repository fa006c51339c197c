"""Fill the surroundings: plan cameras that cover the 360-degree panorama from the first camera.

`scenedreamer extend RUN --surround` asks this module for a chapter path. The measure is the
equirectangular panorama from the run's first camera centre (the one `render --panorama`
writes, layout in geometry/panorama.py: world axes, up = -y): a pixel is covered when the
grown scene's accumulated opacity there is >= coverage.EMPTY_OPACITY. The target is
``SurroundConfig.target_coverage`` of its pixels, the ground under the camera and the sky
included.

Planning needs no render. A camera at the panorama's centre shows exactly the directions inside
its frustum, so a **direction-coverage map** (the panorama's pixel grid at a coarse size, one
bool per pixel direction) is exact for views at that centre. Support views elsewhere count with
their own frustum as if they stood at the centre (their parallax is ignored: an estimate, the
rendered panorama afterwards is the real measure). The planner then turns in place at the first
camera centre: it picks, greedily, the yaw/pitch view (world up = -y, no roll) that covers the
most still-uncovered panorama pixels among the views whose own image lies at least
``min_known_fraction`` inside the views that exist or are planned before it, until the map
reaches ``plan_coverage``. Pitch runs from -90 (the ground straight below) to +90 (straight
up), so ground and sky are planned like the horizon.

Why turning in place suffices: every direction of the panorama is a direction some camera at its
centre can look along, so the map can always be completed there; stepping away from the centre
would only add parallax the panorama does not see.

Why each new view must lie at least half (``min_known_fraction`` = 0.6: half plus a margin) on
what exists: the progressive loop (pipeline/generate.py) gives a new view's unseen pixels depth
aligned by least squares to the depth it already shows, and inpaints the rest from the warped
neighbours; with the known part the larger part of the image, the alignment always has known
depth and the inpainter fills less than half a frame. Along an image axis, half known is a turn
of half the field of view (30 degrees at 60); 60 % allows at most about 23 degrees at 60, so the
candidates, 10 degrees apart, turn by 20: the turn the method's own initial neighbours make
(init.neighbour_yaws_deg = +-20 at a 60-degree field of view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UserInputError
from ..geometry.cameras import Cameras, camera_rays, pose_from_rotation_translation


@dataclass(frozen=True)
class SurroundConfig:
    """Tunables of the surround planner (degrees, fractions of panorama pixels)."""

    target_coverage: float = 0.95
    """the rendered panorama from the first camera should be at least this covered (issue 23)"""
    plan_coverage: float = 0.995
    """the direction-coverage map is planned to this fraction, above the target: the rendered
    panorama loses a little at the seams between views (Gaussians whose opacity falls under 0.5
    at a view's border), which the map does not see"""
    min_known_fraction: float = 0.6
    """a new view is allowed only when at least this fraction of its image (``known_grid`` pixel
    rays) already lies inside the views that exist or are planned before it: half, so the known
    content stays the larger part (module docstring), plus a margin because frusta are
    optimistic at a view's border, where the rendered opacity falls under 0.5 (measured: a view
    half inside the existing frusta rendered 52% empty on the tiny test run)"""
    known_grid: int = 12
    """each candidate's image is sampled at known_grid x known_grid pixel rays for its known fraction"""
    candidate_step_deg: float = 10.0
    """spacing of the yaw/pitch candidate directions the planner chooses among"""
    map_height: int = 64
    """rows of the direction-coverage map (an equirectangular grid, twice as wide)"""
    max_views: int = 96
    """refuse (one line) a plan that would need more cameras than this"""

    def __post_init__(self) -> None:
        if not 0.0 < self.target_coverage <= 1.0 or not 0.0 < self.plan_coverage <= 1.0:
            raise ValueError("SurroundConfig: coverages must be in (0, 1]")
        if not 0.0 <= self.min_known_fraction < 1.0:
            raise ValueError(f"SurroundConfig.min_known_fraction must be in [0, 1), got {self.min_known_fraction}")
        if not 0.0 < self.candidate_step_deg <= 90.0:
            raise ValueError(f"SurroundConfig.candidate_step_deg must be in (0, 90], got {self.candidate_step_deg}")
        if self.map_height < 4 or self.known_grid < 2 or self.max_views < 1:
            raise ValueError("SurroundConfig: map_height must be >= 4, known_grid >= 2 and max_views >= 1")


@dataclass(frozen=True)
class SurroundPlan:
    """The planner's answer.

    cameras: the new cameras in path order (c2w OpenCV, world frame; the first camera's K and size).
    coverage_before, coverage_after: covered fraction of the direction-coverage map (panorama
        pixels) before the chapter and with the planned cameras.
    known: (N,) fraction of each new camera's image directions already covered when it was
        chosen (each >= SurroundConfig.min_known_fraction).
    """

    cameras: Cameras
    coverage_before: float
    coverage_after: float
    known: list[float]


# the direction-coverage map ----------------------------------------------------------------------
def map_directions(height: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(height, 2*height, 3) unit world directions of the coverage map's pixels: the panorama's
    own equirectangular layout (geometry/panorama.py ``equirect_directions``) at a coarse size."""
    from ..geometry.panorama import equirect_directions

    return equirect_directions(2 * height, height, dtype=dtype)


def direction_coverage(cameras: Cameras, directions: Tensor) -> Tensor:
    """(N, P) bool: whether direction p (of ``directions`` (P, 3), world, unit) falls inside the
    image of camera n (of N; only its rotation and intrinsics count: as seen from its own centre).

    A direction is inside when it points in front of the camera (z > 0 in camera axes) and
    projects within the image rectangle [0, W] x [0, H] (pixel edges, OpenCV pixel centres at
    +0.5).
    """
    R = cameras.c2w[:, :3, :3].to(directions)                      # (N, 3, 3) camera -> world
    local = torch.einsum("nji,pj->npi", R, directions)              # world -> camera: R^T d
    z = local[..., 2]
    K = cameras.K.to(directions)
    safe = torch.where(z > 0, z, torch.ones_like(z))
    u = K[:, None, 0, 0] * local[..., 0] / safe + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * local[..., 1] / safe + K[:, None, 1, 2]
    return (z > 0) & (u >= 0) & (u <= cameras.width) & (v >= 0) & (v <= cameras.height)


def direction_coverage_reference(cameras: Cameras, directions: Tensor) -> Tensor:
    """The slow, obviously-correct twin of ``direction_coverage``: one camera and one direction
    at a time, in plain Python arithmetic (R^T d, then the pinhole projection)."""
    out = torch.zeros(len(cameras), directions.shape[0], dtype=torch.bool)
    for n in range(len(cameras)):
        R = cameras.c2w[n, :3, :3].double().tolist()
        K = cameras.K[n].double().tolist()
        for p, d in enumerate(directions.double().tolist()):
            x = sum(R[r][0] * d[r] for r in range(3))
            y = sum(R[r][1] * d[r] for r in range(3))
            z = sum(R[r][2] * d[r] for r in range(3))
            if z <= 0:
                continue
            u = K[0][0] * x / z + K[0][2]
            v = K[1][1] * y / z + K[1][2]
            out[n, p] = 0 <= u <= cameras.width and 0 <= v <= cameras.height
    return out


# candidate views ---------------------------------------------------------------------------------
def yaw_pitch_rotation(yaw_deg: Tensor, pitch_deg: Tensor) -> Tensor:
    """(N, 3, 3) camera-to-world rotations (OpenCV camera axes) looking along yaw/pitch, no roll.

    yaw 0, pitch 0 looks along world +z; a positive yaw turns right (+x), a positive pitch looks
    up (-y), the conventions of geometry/trajectory.py. Built as R_y(yaw) @ R_x(pitch), so it is
    defined straight up and down too (where a look-at with an up vector is not).
    """
    yaw, pitch = torch.deg2rad(yaw_deg.double()), torch.deg2rad(pitch_deg.double())
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    Ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    Rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    return Ry @ Rx


def candidate_angles(step_deg: float) -> tuple[Tensor, Tensor]:
    """(yaw_deg (C,), pitch_deg (C,)) of the candidate views: pitch rings every ``step_deg`` from
    -90 to +90 (both poles included), each ring's yaws spaced about ``step_deg`` apart along the
    ring (fewer toward the poles, one at each pole)."""
    rings = max(2, math.ceil(180.0 / step_deg)) + 1
    yaws, pitches = [], []
    for pitch in torch.linspace(-90.0, 90.0, rings, dtype=torch.float64).tolist():
        count = max(1, math.ceil(360.0 * math.cos(math.radians(pitch)) / step_deg - 1e-9))
        for k in range(count):
            yaws.append(360.0 * k / count - 180.0)
            pitches.append(pitch)
    return torch.tensor(yaws, dtype=torch.float64), torch.tensor(pitches, dtype=torch.float64)


# the plan -----------------------------------------------------------------------------------------
def plan_surround(existing: Cameras, centre: Tensor, K: Tensor, width: int, height: int,
                  config: SurroundConfig = SurroundConfig()) -> SurroundPlan:
    """Choose new cameras at ``centre`` (3,) (world, scene units: the run's first camera centre)
    so that the panorama from there gets covered.

    existing: the support database's cameras (N, c2w OpenCV world, any centres); K: (3, 3)
    intrinsics (pixels) and width x height of the new cameras (the run's). Greedy, deterministic:
    each new camera is the candidate (``candidate_angles``) that adds the most uncovered map
    pixels among those whose image (its own pixel rays, so each pixel weighs the same: the map's
    pixels crowd toward the poles) lies at least ``min_known_fraction`` inside the existing
    views and the cameras planned before it (so the path can be followed in order);
    stops at ``plan_coverage`` or when no allowed candidate adds anything. Raises
    UserInputError when the plan would need more than ``max_views`` cameras.
    """
    K = K.detach().double().cpu()
    dirs = map_directions(config.map_height, dtype=torch.float64).reshape(-1, 3)
    covered = direction_coverage(existing.to(dtype=torch.float64), dirs).any(0)
    before = float(covered.double().mean())

    yaw, pitch = candidate_angles(config.candidate_step_deg)
    R = yaw_pitch_rotation(yaw, pitch)                                      # (C, 3, 3)
    c2w_all = pose_from_rotation_translation(R, centre.detach().double().cpu().expand(len(R), 3))
    candidates = Cameras(K.expand(len(R), 3, 3), c2w_all, width, height)
    sees = direction_coverage(candidates, dirs)                             # (C, P)
    n = config.known_grid
    _, rays = camera_rays(candidates.scaled(n, n))                          # (C, n, n, 3) world
    rays = (rays / rays.norm(dim=-1, keepdim=True)).reshape(-1, 3)          # (C * n * n, 3)
    inside = direction_coverage(existing.to(dtype=torch.float64), rays).any(0).reshape(len(R), n * n)

    chosen: list[int] = []
    known: list[float] = []
    while float(covered.double().mean()) < config.plan_coverage:
        fraction = inside.double().mean(1)                                  # (C,) known part of each image
        gain = (sees & ~covered).sum(1)
        gain[fraction < config.min_known_fraction] = 0
        best = int(gain.argmax())
        if int(gain[best]) == 0:
            break
        if len(chosen) >= config.max_views:
            raise UserInputError(f"--surround: covering the panorama needs more than {config.max_views} "
                                 "cameras at this field of view (SurroundConfig.max_views)")
        chosen.append(best)
        known.append(float(fraction[best]))
        covered |= sees[best]
        inside |= direction_coverage(candidates[best:best + 1], rays).reshape(len(R), n * n)
    index = torch.tensor(chosen, dtype=torch.long)
    cams = Cameras(K.float().expand(len(chosen), 3, 3).contiguous(), c2w_all[index].float(), width, height)
    return SurroundPlan(cams, before, float(covered.double().mean()), known)


# the real measure: a rendered panorama -----------------------------------------------------------
def panorama_empty_fraction(scene, position: Tensor, width: int = 256) -> float:
    """Empty fraction (coverage.empty_fraction: opacity < EMPTY_OPACITY) of the equirectangular
    panorama (width x width/2 pixels) of ``scene`` seen from ``position`` (3,) world.

    The panorama is assembled like `render --panorama`'s (six cube faces resampled onto the
    equirectangular grid, geometry/panorama.py), from the accumulated opacity instead of colour.
    """
    from ..geometry.panorama import cube_cameras, equirect_from_faces, face_size_for
    from .coverage import empty_fraction

    cams = cube_cameras(torch.as_tensor(position, dtype=torch.float32).cpu(), face_size_for(width))
    device = next(iter(scene.parameters())).device
    faces = []
    for f in range(6):
        with torch.no_grad():
            faces.append(scene.render(cams[f].to(device)).opacity[0].float().cpu())
    opacity = equirect_from_faces(torch.stack(faces)[..., None], cams, width, width // 2)
    return empty_fraction(opacity[..., 0])
