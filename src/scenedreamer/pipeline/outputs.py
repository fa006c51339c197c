"""What a finished run writes for other tools: checkpoint, splats, video, nerfstudio dataset."""

from __future__ import annotations

import torch

from ..events import EventSink, emit
from ..export.ply import write_gaussians_ply
from ..export.video import write_video
from ..geometry.cameras import Cameras
from ..geometry.trajectory import Trajectory, interpolate_poses
from ..representation.bake import bake_to_gaussians
from ..representation.base import SceneRepresentation
from ..representation.checkpoint import save_checkpoint
from ..representation.gaussians import GaussianScene
from ..support.database import SupportDatabase
from .config import GenerateConfig
from .priors_factory import Priors
from .run_folder import RunFolder


def export_outputs(config: GenerateConfig, run: RunFolder, trajectory: Trajectory, database: SupportDatabase,
                   representation: SceneRepresentation, priors: Priors, on_event: EventSink | None) -> None:
    """scene.pt, adapter.safetensors, transforms.json + images/ + depths/, scene.ply, video.mp4."""
    exp = config.export
    emit(on_event, "export", 0, 4, "scene checkpoint")
    save_checkpoint(run.root / "scene.pt", representation)
    priors.save_refiner_state(run.adapter_path)
    if exp.nerfstudio:
        emit(on_event, "export", 1, 4, "nerfstudio dataset")
        database.export_nerfstudio(run.root)
    representation.eval()
    if exp.ply:
        emit(on_event, "export", 2, 4, "3DGS splats")
        write_gaussians_ply(run.root / "scene.ply", as_gaussians(representation, database, config, on_event))
    if exp.video:
        emit(on_event, "export", 3, 4, "video")
        cameras = video_cameras(trajectory, exp.video_frames_per_view)
        write_video(run.root / "video.mp4", render_path(representation, cameras, on_event), fps=exp.fps)
    emit(on_event, "export", 4, 4, "done")


def as_gaussians(representation: SceneRepresentation, database: SupportDatabase, config: GenerateConfig,
                 on_event: EventSink | None) -> GaussianScene:
    """The scene as 3D Gaussians: itself, or baked from renders at every support camera."""
    if isinstance(representation, GaussianScene):
        return representation
    device = next(representation.parameters()).device
    cameras = database.cameras().to(device)
    with torch.no_grad():
        return bake_to_gaussians(representation, cameras, config.export.bake, on_event=on_event)


def video_cameras(trajectory: Trajectory, frames_per_view: int) -> Cameras:
    """The trajectory densified for video: poses interpolated (slerp + spline) between cameras."""
    cams = trajectory.cameras
    n = max(2, (len(cams) - 1) * frames_per_view + 1)
    c2w = interpolate_poses(cams.c2w, n)
    K = cams.K[:1].expand(n, 3, 3)
    return Cameras(K.contiguous(), c2w, cams.width, cams.height)


def render_path(representation: SceneRepresentation, cameras: Cameras, on_event: EventSink | None = None):
    """Yield rendered colour frames (H, W, 3) one camera at a time (bounded memory), with a
    "video" progress event per frame."""
    device = next(representation.parameters()).device
    for i in range(len(cameras)):
        with torch.no_grad():
            frame = representation.render(cameras[i].to(device)).rgb[0].cpu()
        emit(on_event, "video", i + 1, len(cameras), "rendering video frames")
        yield frame
