"""Trajectory presets as data, and the checks and counts a plan needs, without importing torch.

``TRAJECTORY_PRESETS`` maps a preset name to a frozen params dataclass whose fields (documented,
with their allowed range in the field metadata) are the preset's options, and whose
``poses(frames)`` returns the (frames, 4, 4) float64 c2w path (OpenCV axes, world = camera 0's
frame before make_trajectory re-bases it; degrees and scene units). ``build_preset_params`` and
``check_path_image`` validate a request, so ``generate --dry-run`` refuses what a run would refuse
and counts the cameras (``frames``) without torch; torch is imported only when poses are built.
geometry/trajectory.py (make_trajectory, interpolation) imports everything here back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..errors import UserInputError

if TYPE_CHECKING:
    from torch import Tensor


def path_frame_count(num_cameras: int, frames_per_view: int) -> int:
    """Frames of a path that passes every one of ``num_cameras`` cameras with ``frames_per_view``
    frames per gap: (num_cameras - 1) * frames_per_view + 1, at least 2 (a video needs two)."""
    return max(2, (num_cameras - 1) * frames_per_view + 1)




def _rng(gt: float | None = None, ge: float | None = None, lt: float | None = None,
         le: float | None = None) -> dict[str, float | None]:
    """Field metadata: the allowed range of a numeric preset option."""
    return {"gt": gt, "ge": ge, "lt": lt, "le": le}


_MAX_TURN_DEG = 3600.0      # ten full turns: beyond that a typo is likelier than intent
_MAX_PITCH_DEG = 89.0       # look straight up/down leaves the roll undefined
_MAX_CYCLES = 100.0
_MAX_DISTANCE = 1e6


def _turn_fractions(frames: int, periodic: bool) -> Tensor:
    """(frames,) progress in [0, 1]; a periodic path (closed loop) leaves out its end (= start)."""
    import torch

    if frames == 1:
        return torch.zeros(1, dtype=torch.float64)
    if periodic:
        return torch.arange(frames, dtype=torch.float64) / frames
    return torch.linspace(0, 1, frames, dtype=torch.float64)


def _is_full_turn(degrees: float) -> bool:
    return degrees != 0 and math.isclose(math.remainder(degrees, 360.0), 0.0, abs_tol=1e-9)


def _is_whole(cycles: float) -> bool:
    return math.isclose(cycles, round(cycles), abs_tol=1e-9)


def _view_poses(positions: Tensor, yaw_deg: Tensor, pitch_deg: Tensor) -> Tensor:
    """(F, 4, 4) OpenCV c2w at positions (F, 3) looking along yaw/pitch (degrees, (F,) each).

    yaw 0, pitch 0 looks along +z; positive yaw turns right (+x), positive pitch looks up (-y).
    """
    import torch

    from .cameras import look_at

    yaw, pitch = torch.deg2rad(yaw_deg), torch.deg2rad(pitch_deg)
    forward = torch.stack([torch.sin(yaw) * torch.cos(pitch), -torch.sin(pitch),
                           torch.cos(yaw) * torch.cos(pitch)], -1)
    return look_at(positions, positions + forward)


@dataclass(frozen=True)
class OrbitParams:
    """Orbit around a point straight ahead of the first camera, always looking at it."""

    radius: float = field(default=2.0, metadata=_rng(gt=0, le=_MAX_DISTANCE))
    """Distance from the camera to the orbited point (scene units)."""
    degrees: float = field(default=360.0, metadata=_rng(ge=-_MAX_TURN_DEG, le=_MAX_TURN_DEG))
    """Sweep angle; positive moves the camera to its right."""
    elevation_deg: float = field(default=0.0, metadata=_rng(ge=-_MAX_PITCH_DEG, le=_MAX_PITCH_DEG))
    """Height of the orbit above the point's horizontal plane, as an angle seen from the point."""

    def poses(self, frames: int) -> Tensor:
        import torch

        from .cameras import look_at

        theta = torch.deg2rad(self.degrees * _turn_fractions(frames, _is_full_turn(self.degrees)))
        elev = math.radians(self.elevation_deg)
        centre = torch.tensor([0.0, 0.0, self.radius], dtype=torch.float64)
        offset = torch.stack([self.radius * torch.sin(theta) * math.cos(elev),
                              torch.full_like(theta, -self.radius * math.sin(elev)),   # up is -y
                              -self.radius * torch.cos(theta) * math.cos(elev)], -1)
        return look_at(centre + offset, centre.expand_as(offset))


@dataclass(frozen=True)
class Rotate360Params:
    """Turn in place about the vertical axis (a panorama sweep)."""

    degrees: float = field(default=360.0, metadata=_rng(ge=-_MAX_TURN_DEG, le=_MAX_TURN_DEG))
    """Total turn; positive turns right."""
    pitch_deg: float = field(default=0.0, metadata=_rng(ge=-_MAX_PITCH_DEG, le=_MAX_PITCH_DEG))
    """Constant up (+) / down (-) tilt during the turn."""

    def poses(self, frames: int) -> Tensor:
        import torch

        yaw = self.degrees * _turn_fractions(frames, _is_full_turn(self.degrees))
        return _view_poses(torch.zeros(frames, 3, dtype=torch.float64), yaw, torch.full_like(yaw, self.pitch_deg))


@dataclass(frozen=True)
class LookaroundParams:
    """Stand still and look left/right and up, returning to the start."""

    yaw_deg: float = field(default=30.0, metadata=_rng(ge=0, le=180.0))
    """Largest turn to each side."""
    pitch_deg: float = field(default=10.0, metadata=_rng(ge=0, le=_MAX_PITCH_DEG))
    """Largest upward tilt (reached halfway through each cycle)."""
    cycles: float = field(default=1.0, metadata=_rng(gt=0, le=_MAX_CYCLES))
    """Number of left-right sweeps."""

    def poses(self, frames: int) -> Tensor:
        import torch

        phase = 2 * math.pi * self.cycles * _turn_fractions(frames, _is_whole(self.cycles))
        yaw = self.yaw_deg * torch.sin(phase)
        pitch = self.pitch_deg * 0.5 * (1 - torch.cos(phase))
        return _view_poses(torch.zeros(frames, 3, dtype=torch.float64), yaw, pitch)


@dataclass(frozen=True)
class LookdownParams:
    """Tilt the view down (optionally turning and moving forward), as for floors and tables."""

    pitch_deg: float = field(default=30.0, metadata=_rng(ge=0, le=_MAX_PITCH_DEG))
    """Final downward tilt."""
    yaw_deg: float = field(default=0.0, metadata=_rng(ge=-_MAX_TURN_DEG, le=_MAX_TURN_DEG))
    """Turn to the right (+) during the tilt."""
    distance: float = field(default=0.0, metadata=_rng(ge=-_MAX_DISTANCE, le=_MAX_DISTANCE))
    """Move along the first camera's horizontal forward direction (scene units)."""

    def poses(self, frames: int) -> Tensor:
        import torch

        s = _turn_fractions(frames, periodic=False)
        positions = torch.stack([torch.zeros_like(s), torch.zeros_like(s), self.distance * s], -1)
        return _view_poses(positions, self.yaw_deg * s, -self.pitch_deg * s)


@dataclass(frozen=True)
class ForwardParams:
    """Walk (dolly) straight along the view direction, optionally turning."""

    distance: float = field(default=1.0, metadata=_rng(ge=-_MAX_DISTANCE, le=_MAX_DISTANCE))
    """Distance travelled along the first view direction (scene units; negative = backward)."""
    yaw_deg: float = field(default=0.0, metadata=_rng(ge=-_MAX_TURN_DEG, le=_MAX_TURN_DEG))
    """Gradual turn to the right (+) over the path (the camera keeps moving straight)."""

    def poses(self, frames: int) -> Tensor:
        import torch

        s = _turn_fractions(frames, periodic=False)
        positions = torch.stack([torch.zeros_like(s), torch.zeros_like(s), self.distance * s], -1)
        return _view_poses(positions, self.yaw_deg * s, torch.zeros_like(s))


@dataclass(frozen=True)
class BackAndForthParams:
    """Move forward and back to the start along the view direction, smoothly, ``cycles`` times."""

    distance: float = field(default=0.5, metadata=_rng(ge=-_MAX_DISTANCE, le=_MAX_DISTANCE))
    """Farthest point reached along the view direction (scene units)."""
    cycles: float = field(default=1.0, metadata=_rng(gt=0, le=_MAX_CYCLES))
    """Number of there-and-back trips."""

    def poses(self, frames: int) -> Tensor:
        import torch

        phase = 2 * math.pi * self.cycles * _turn_fractions(frames, _is_whole(self.cycles))
        z = self.distance * 0.5 * (1 - torch.cos(phase))
        positions = torch.stack([torch.zeros_like(z), torch.zeros_like(z), z], -1)
        return _view_poses(positions, torch.zeros_like(z), torch.zeros_like(z))


@dataclass(frozen=True)
class SpiralParams:
    """LLFF-style spiral: circle in the image plane while drifting in depth, looking at a focus point."""

    radius: float = field(default=0.3, metadata=_rng(ge=0, le=_MAX_DISTANCE))
    """Radius of the circle around the start position (scene units)."""
    depth: float = field(default=0.2, metadata=_rng(ge=-_MAX_DISTANCE, le=_MAX_DISTANCE))
    """Forward/backward drift amplitude (scene units)."""
    rotations: float = field(default=2.0, metadata=_rng(gt=0, le=_MAX_CYCLES))
    """Turns around the circle."""
    focus_distance: float = field(default=2.0, metadata=_rng(gt=0, le=_MAX_DISTANCE))
    """The cameras look at the point this far ahead of the start (scene units)."""

    def poses(self, frames: int) -> Tensor:
        import torch

        from .cameras import look_at

        s = _turn_fractions(frames, _is_whole(self.rotations))
        phi = 2 * math.pi * self.rotations * s
        # start on the circle's centre line: x = r sin(phi), y = r (1 - cos(phi)) starts at 0
        positions = torch.stack([self.radius * torch.sin(phi), -self.radius * (1 - torch.cos(phi)),
                                 self.depth * torch.sin(phi / max(self.rotations, 1.0))], -1)
        focus = torch.tensor([0.0, 0.0, self.focus_distance], dtype=torch.float64)
        return look_at(positions, focus.expand_as(positions))


TRAJECTORY_PRESETS: dict[str, type] = {
    "orbit": OrbitParams,
    "rotate360": Rotate360Params,
    "lookaround": LookaroundParams,
    "lookdown": LookdownParams,
    "forward": ForwardParams,
    "dolly": ForwardParams,
    "back_and_forth": BackAndForthParams,
    "spiral": SpiralParams,
}
"""Preset name -> params dataclass (its fields are the preset's options; see each docstring)."""

MAX_FRAMES = 100_000
"""Upper bound on the frame count of a generated trajectory (catches typos)."""


def _preset_error(preset: str, name: str, message: str) -> UserInputError:
    return UserInputError(f"trajectory preset '{preset}': {name}: {message}")


def _coerce_number(preset: str, name: str, raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _preset_error(preset, name, f"expected a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise _preset_error(preset, name, f"expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise _preset_error(preset, name, f"must be finite, got {value}")
    return value


def build_preset_params(preset: str, **params: Any) -> Any:
    """Validated params dataclass of ``preset`` from keyword options (numbers or numeric strings).

    Raises UserInputError for an unknown preset, an unknown option or a value out of range.
    """
    if preset not in TRAJECTORY_PRESETS:
        raise UserInputError(f"unknown trajectory preset '{preset}' (choose from: "
                             f"{', '.join(TRAJECTORY_PRESETS)})")
    cls = TRAJECTORY_PRESETS[preset]
    known = {f.name: f for f in fields(cls)}
    values = {}
    for name, raw in params.items():
        if name not in known:
            raise _preset_error(preset, name, f"unknown option (options: {', '.join(known) or 'none'})")
        value = _coerce_number(preset, name, raw)
        rng = known[name].metadata
        if rng.get("gt") is not None and not value > rng["gt"]:
            raise _preset_error(preset, name, f"must be > {rng['gt']:g}, got {value:g}")
        if rng.get("ge") is not None and not value >= rng["ge"]:
            raise _preset_error(preset, name, f"must be >= {rng['ge']:g}, got {value:g}")
        if rng.get("lt") is not None and not value < rng["lt"]:
            raise _preset_error(preset, name, f"must be < {rng['lt']:g}, got {value:g}")
        if rng.get("le") is not None and not value <= rng["le"]:
            raise _preset_error(preset, name, f"must be <= {rng['le']:g}, got {value:g}")
        values[name] = value
    return cls(**values)


def check_path_image(frames: int, width: int, height: int, fov_deg: float) -> None:
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise UserInputError(f"trajectory: frames must be an integer in [1, {MAX_FRAMES}], got {frames!r}")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserInputError(f"trajectory: {name} must be a positive integer, got {value!r}")
    if not (isinstance(fov_deg, (int, float)) and math.isfinite(fov_deg) and 0 < fov_deg < 180):
        raise UserInputError(f"trajectory: fov_deg must be in (0, 180) degrees, got {fov_deg!r}")


MAX_PROMPT_CHARS = 10_000
"""Longest accepted per-frame prompt (characters)."""


def check_prompt(where: str, prompt: str) -> str:
    """A prompt that can be written as UTF-8 (no lone surrogates, e.g. from undecodable command
    line bytes), not over MAX_PROMPT_CHARS; UserInputError "<where>: ..." otherwise."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UserInputError(f"{where}: not valid text (undecodable character at position {err.start}; "
                             "use UTF-8)") from None
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserInputError(f"{where}: longer than {MAX_PROMPT_CHARS} characters ({len(prompt)})")
    return prompt
