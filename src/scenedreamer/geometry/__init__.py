"""Pure geometry functions (torch, batched, any device). Imports nothing above it.

cameras (Cameras, intrinsics, poses, look_at, the OpenCV<->OpenGL flip), projection, warp
(forward / soft / backward), depth_align (robust scale-shift fit, seam compensation),
trajectory (presets, interpolation, per-segment prompts), trajectory_io (transforms.json).
"""

from .cameras import Cameras
from .depth_align import AlignConfig, DepthAlignment, SeamConfig, align_depth, compensate_seams
from .trajectory import TRAJECTORY_PRESETS, Trajectory, interpolate_poses, make_trajectory
from .warp import (BackwardWarpConfig, ForwardWarpConfig, SoftWarpConfig, WarpResult, backward_warp, forward_warp,
                   soft_forward_warp)

__all__ = [
    "Cameras",
    "AlignConfig", "DepthAlignment", "SeamConfig", "align_depth", "compensate_seams",
    "TRAJECTORY_PRESETS", "Trajectory", "interpolate_poses", "make_trajectory",
    "BackwardWarpConfig", "ForwardWarpConfig", "SoftWarpConfig", "WarpResult", "backward_warp", "forward_warp",
    "soft_forward_warp",
]
