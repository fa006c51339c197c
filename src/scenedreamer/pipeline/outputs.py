"""What a finished run writes for other tools: checkpoint, splats, video, nerfstudio dataset."""

from __future__ import annotations

import torch

from ..atomic import atomic_write_json
from ..events import EventSink, emit
from ..export.ply import write_gaussians_ply
from ..export.video import write_video
from ..geometry.cameras import Cameras
from ..geometry.trajectory import Trajectory, interpolated_cameras, path_frame_count
from ..representation.base import SceneRepresentation
from ..representation.checkpoint import save_checkpoint
from ..representation.distill import distill_to_gaussians
from ..representation.gaussians import GaussianScene
from ..representation.registry import kind_of
from ..support.database import SupportDatabase
from .config import GenerateConfig
from .priors_factory import Priors
from .run_folder import RunFolder


def export_outputs(config: GenerateConfig, run: RunFolder, trajectory: Trajectory, database: SupportDatabase,
                   representation: SceneRepresentation, priors: Priors, on_event: EventSink | None) -> None:
    """scene.pt, adapter.safetensors, transforms.json + images/ + depths/, scene.ply + scene.json
    (which representation produced scene.ply and how, which priors made the views and, for the
    offline stand-in, how it read the prompt), video.mp4 (rendered from the exported
    Gaussians unless export.video_source says "representation")."""
    exp = config.export
    emit(on_event, "export", 0, 4, "scene checkpoint")
    save_checkpoint(run.root / "scene.pt", representation)
    priors.save_refiner_state(run.adapter_path)
    if exp.nerfstudio:
        emit(on_event, "export", 1, 4, "nerfstudio dataset")
        database.export_nerfstudio(run.root)
    representation.eval()
    exported: GaussianScene | None = None
    if exp.ply:
        emit(on_event, "export", 2, 4, "3DGS splats")
        exported, provenance = as_gaussians(representation, database, config, on_event)
        provenance["priors"] = priors.describe()
        reading = priors.prompt_reading()
        if reading is not None:
            provenance["prompt_reading"] = reading
        write_gaussians_ply(run.root / "scene.ply", exported)
        atomic_write_json(run.root / "scene.json", provenance)
    if exp.video:
        emit(on_event, "export", 3, 4, "video")
        cameras = video_cameras(trajectory, exp.video_frames_per_view)
        source = exported if (exported is not None and exp.video_source == "scene_ply") else representation
        write_video(run.root / "video.mp4", render_path(source, cameras, on_event), fps=exp.fps)
    emit(on_event, "export", 4, 4, "done")


def as_gaussians(representation: SceneRepresentation, database: SupportDatabase, config: GenerateConfig,
                 on_event: EventSink | None) -> tuple[GaussianScene, dict]:
    """The scene as faithful 3D Gaussians, and its scene.json provenance (JSON-ready dict).

    The representation's kind seeds them (a copy of the fitted Gaussians, or baked from renders
    at every support camera); they are then fitted to the support views (+ renders of the
    representation between them, when the kind baked them) with a sky shell
    (representation/distill.py). The representation itself is not changed."""
    exp = config.export
    kind = kind_of(representation)
    generator = torch.Generator().manual_seed(config.seed)
    scene, source = kind.seed_gaussians(representation, database, exp.bake, on_event)
    exported = distill_to_gaussians(scene, database, source, exp.distill, generator, on_event=on_event)
    d = exp.distill
    provenance = {"representation": kind.name, "gaussians": exported.num_gaussians, "method": kind.export_method,
                  "distill": {"steps": d.steps, "extra_views_per_gap": d.extra_views_per_gap if source is not None
                              else 0, "sky_shell": d.sky},
                  "axes": "OpenCV world of the run (+y down)"}
    return exported, provenance


def video_cameras(trajectory: Trajectory, frames_per_view: int) -> Cameras:
    """The trajectory densified for video: poses interpolated (slerp + spline) between cameras."""
    cams = trajectory.cameras
    return interpolated_cameras(cams, path_frame_count(len(cams), frames_per_view))


def render_path(representation: SceneRepresentation, cameras: Cameras, on_event: EventSink | None = None):
    """Yield rendered colour frames (H, W, 3) one camera at a time (bounded memory), with a
    "video" progress event per frame."""
    device = next(representation.parameters()).device
    for i in range(len(cameras)):
        with torch.no_grad():
            frame = representation.render(cameras[i].to(device)).rgb[0].cpu()
        emit(on_event, "video", i + 1, len(cameras), "rendering video frames")
        yield frame
