"""Pure geometry functions (torch, batched, any device). Imports nothing above it.

cameras (Cameras, intrinsics, poses, look_at, the OpenCV<->OpenGL flip), projection, warp
(forward / soft / backward), depth_align (robust scale-shift fit, seam compensation),
trajectory (presets, interpolation, per-segment prompts), trajectory_io (transforms.json).
"""

from ..lazy_exports import lazy_exports

__all__ = [
    "Cameras",
    "AlignConfig", "DepthAlignment", "SeamConfig", "align_depth", "compensate_seams",
    "TRAJECTORY_PRESETS", "Trajectory", "interpolate_poses", "make_trajectory",
    "BackwardWarpConfig", "ForwardWarpConfig", "SoftWarpConfig", "WarpResult", "backward_warp", "forward_warp",
    "soft_forward_warp",
]

_HOMES = {
    "Cameras": ".cameras", "AlignConfig": ".config", "DepthAlignment": ".depth_align",
    "SeamConfig": ".config", "align_depth": ".depth_align", "compensate_seams": ".depth_align",
    "TRAJECTORY_PRESETS": ".trajectory", "Trajectory": ".trajectory", "interpolate_poses": ".trajectory",
    "make_trajectory": ".trajectory", "BackwardWarpConfig": ".warp", "ForwardWarpConfig": ".config",
    "SoftWarpConfig": ".warp", "WarpResult": ".warp", "backward_warp": ".warp", "forward_warp": ".warp",
    "soft_forward_warp": ".warp",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
