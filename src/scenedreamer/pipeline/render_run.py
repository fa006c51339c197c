"""Render a finished run's scene along any camera path, or as a 360-degree panorama.

The library side of `scenedreamer render` (docs/usage/render.md). Frames (docs/conventions.md):
every camera is in the run's world (OpenCV axes, the run's first camera at its trajectory pose,
world up = -y). Sources:
- "scene_ply": RUN/scene.ply, the Gaussians users take away, rendered with the reference 3DGS
  viewer's conventions (fast; what a splat viewer shows);
- "checkpoint": RUN/scene.pt, the representation the run fitted (a NeRF renders slowly on CPU).

Paths: the run's own trajectory interpolated (default), any trajectory preset started at the
run's first camera, a transforms.json file in the run's world, or "scene-orbit", a 360-degree
orbit around the scene's content. Frames are rendered one at a time (memory bounded by one
frame) with a "render" progress event each.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
from torch import Tensor

from ..atomic import check_writable_destination, is_temp_file, temp_name_pattern
from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras, fov_from_intrinsics, intrinsics_from_fov, look_at
from ..geometry.trajectory import TRAJECTORY_PRESETS, interpolated_cameras, make_trajectory, path_frame_count
from ..representation.base import SceneRepresentation

Source = Literal["scene_ply", "checkpoint"]
What = Literal["rgb", "depth", "rgbd"]

SCENE_ORBIT = "scene-orbit"
"""The path preset that circles the scene's content (besides the trajectory presets)."""
SCENE_ORBIT_ELEVATION_DEG = 20.0
"""Height of the scene orbit above the content's centre, as an angle seen from the centre."""
SCENE_ORBIT_RADIUS_FACTOR = 1.6
"""Orbit radius = this x the content's 90th-percentile distance from its centre (keeps most of
the content inside a 60-degree view)."""
MAX_FRAMES = 10_000
"""Refuse longer renders (a typo such as --frames 6000000 would run for days)."""
DEPTH_PERCENTILES = (2.0, 98.0)
"""Inverse-depth percentiles of the first frame that span the depth colour map (fixed for the
whole video so colours do not flicker)."""


@dataclass(frozen=True)
class RenderInputs:
    """What a render of one run needs, loaded: the scene, the run's trajectory cameras, its fps."""

    scene: SceneRepresentation
    run_cameras: Cameras
    fps: int
    video_frames_per_view: int


def source_file(source: Source) -> str:
    """The run file a source renders from."""
    if source not in ("scene_ply", "checkpoint"):
        raise UserInputError(f"--source {source!r}: choose scene-ply or checkpoint")
    return "scene.ply" if source == "scene_ply" else "scene.pt"


def load_render_inputs(root: Path, source: Source, device: torch.device | str = "cpu") -> RenderInputs:
    """Load a finished run (already checked with ``run_contract.require_finished_run``)."""
    from ..config_io import load_config
    from ..export.ply import read_gaussians_ply
    from ..geometry.trajectory_io import read_transforms_json
    from ..representation.checkpoint import load_checkpoint
    from ..representation.distill import standard_viewer_config
    from .config import GenerateConfig

    config = load_config(GenerateConfig, root / "config.json")
    if not (root / "trajectory.json").exists():
        raise UserInputError(f"{root}: run lacks trajectory.json (the run's camera path)")
    cameras = read_transforms_json(root / "trajectory.json").cameras
    if source == "scene_ply":
        scene = read_gaussians_ply(root / "scene.ply", standard_viewer_config(), device=device)
    else:
        scene = load_checkpoint(root / source_file(source), device=device).representation
    scene.eval()
    return RenderInputs(scene, cameras, config.export.fps, config.export.video_frames_per_view)


def _with_size(cameras: Cameras, resolution: tuple[int, int] | None) -> Cameras:
    return cameras if resolution is None else cameras.scaled(*resolution)


def run_path_cameras(run_cameras: Cameras, frames: int | None, frames_per_view: int) -> Cameras:
    """The run's own path interpolated to ``frames`` cameras (default: as the run's video)."""
    n = frames if frames is not None else path_frame_count(len(run_cameras), frames_per_view)
    return interpolated_cameras(run_cameras, n)


def content_points(scene: SceneRepresentation, run_cameras: Cameras) -> Tensor:
    """(N, 3) world points of the scene's content: opaque Gaussians (or, for other representations,
    nothing: callers fall back to the cameras), without the far sky shell.

    The sky shell sits at several times the farthest known depth (representation/distill.py), so
    points beyond 3x the median distance from the mean camera centre are dropped.
    """
    means = getattr(scene, "means", None)
    opacity = getattr(scene, "opacities", None)
    if means is None or not isinstance(means, Tensor) or means.numel() == 0:
        return torch.zeros(0, 3)
    pts = means.detach().float().cpu()
    if isinstance(opacity, Tensor) and opacity.shape[0] == pts.shape[0]:
        pts = pts[opacity.detach().float().cpu().reshape(-1) > 0.3]
    if pts.shape[0] == 0:
        return pts
    d = (pts - run_cameras.centers.float().mean(0)).norm(dim=-1)
    return pts[d <= 3.0 * d.median()]


def scene_orbit_cameras(scene: SceneRepresentation, run_cameras: Cameras, frames: int, width: int,
                        height: int, fov_x_deg: float) -> Cameras:
    """A closed 360-degree orbit around the content's centre (median point), looking at it, at
    ``SCENE_ORBIT_ELEVATION_DEG`` above it; radius from the content's extent. (frames,) cameras."""
    pts = content_points(scene, run_cameras)
    if pts.shape[0] >= 10:
        centre = pts.median(dim=0).values
        extent = float(torch.quantile((pts - centre).norm(dim=-1), 0.9))
    else:       # no Gaussians to measure (a NeRF checkpoint): circle the cameras' centre
        centre = run_cameras.centers.float().mean(0)
        extent = max(1.0, float((run_cameras.centers.float() - centre).norm(dim=-1).max()))
    radius = SCENE_ORBIT_RADIUS_FACTOR * max(extent, 1e-3)
    theta = 2.0 * math.pi * torch.arange(frames, dtype=torch.float32) / frames
    elev = math.radians(SCENE_ORBIT_ELEVATION_DEG)
    offset = torch.stack([radius * math.cos(elev) * torch.sin(theta),
                          torch.full_like(theta, -radius * math.sin(elev)),       # up is -y
                          -radius * math.cos(elev) * torch.cos(theta)], -1)
    c2w = look_at(centre + offset, centre.expand_as(offset))
    K = intrinsics_from_fov(fov_x_deg, width, height)
    return Cameras(K.expand(frames, 3, 3).contiguous(), c2w, width, height)


def path_cameras(inputs: RenderInputs, trajectory: str, frames: int | None,
                 resolution: tuple[int, int] | None) -> Cameras:
    """The cameras of a render request.

    trajectory: "" (the run's own path, interpolated), a trajectory preset name (started at the
    run's first camera, with the run's field of view), ``SCENE_ORBIT``, or a transforms.json file
    (cameras in the run's world). frames: camera count (default: the run video's count for the
    run's path, 60 otherwise; a file's own count). resolution: (W, H) or None (the run's).
    """
    run = inputs.run_cameras
    if frames is not None and not 2 <= frames <= MAX_FRAMES:
        raise UserInputError(f"--frames {frames}: must be between 2 and {MAX_FRAMES}")
    width, height = resolution or (run.width, run.height)
    fov_x = float(fov_from_intrinsics(run.K[:1], run.width, run.height)[0].reshape(-1)[0])       # degrees
    if not trajectory:
        return _with_size(run_path_cameras(run, frames, inputs.video_frames_per_view), resolution)
    n = frames if frames is not None else 60
    if trajectory == SCENE_ORBIT:
        return scene_orbit_cameras(inputs.scene, run, n, width, height, fov_x)
    if trajectory in TRAJECTORY_PRESETS:
        preset = make_trajectory(trajectory, n, width, height, fov_x).cameras
        c2w = run.c2w[:1].to(preset.c2w) @ preset.c2w          # start at the run's first camera
        return Cameras(preset.K, c2w, width, height)
    path = Path(trajectory)
    if path.suffix.lower() == ".json" or path.exists():
        from ..geometry.trajectory_io import read_transforms_json

        cams = read_transforms_json(path).cameras
        if frames is not None:
            cams = interpolated_cameras(cams, frames)
        return _with_size(cams, resolution)
    raise UserInputError(f"--trajectory {trajectory!r}: not a preset ({', '.join([*TRAJECTORY_PRESETS, SCENE_ORBIT])}) "
                         f"nor an existing transforms.json file")


def _turbo_lut() -> Tensor:
    import matplotlib

    return torch.tensor(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, 256))[:, :3], dtype=torch.float32)


class DepthColouring:
    """Inverse depth -> turbo colours (near = red, far = blue), range fixed by the first frame
    it sees (``DEPTH_PERCENTILES`` of its inverse depth); pixels with no depth are black."""

    def __init__(self) -> None:
        self.range: tuple[float, float] | None = None
        self._lut = _turbo_lut()

    def __call__(self, depth: Tensor) -> Tensor:
        """(H, W) z-depth (0 = none) -> (H, W, 3) colours in [0, 1]."""
        valid = depth > 0
        inv = torch.where(valid, 1.0 / depth.clamp_min(1e-8), torch.zeros_like(depth))
        if self.range is None:
            vals = inv[valid]
            if vals.numel() == 0:
                self.range = (0.0, 1.0)
            else:
                lo, hi = (float(torch.quantile(vals.float(), p / 100.0)) for p in DEPTH_PERCENTILES)
                self.range = (lo, hi if hi > lo else lo + 1e-6)
        lo, hi = self.range
        t = ((inv - lo) / (hi - lo)).clamp(0, 1)
        colours = self._lut[(t * 255).round().long()]
        return torch.where(valid[..., None], colours, torch.zeros_like(colours))


def compose(rgb: Tensor, depth: Tensor, what: What, colouring: DepthColouring) -> Tensor:
    """One output frame (H, W', 3) in [0, 1]: the colour, the coloured depth, or both side by side."""
    if what == "rgb":
        return rgb.clamp(0, 1)
    if what == "depth":
        return colouring(depth)
    return torch.cat([rgb.clamp(0, 1), colouring(depth)], dim=1)


def render_frames(scene: SceneRepresentation, cameras: Cameras, what: What = "rgb",
                  on_event: EventSink | None = None) -> Iterator[Tensor]:
    """Yield one (H, W', 3) float frame in [0, 1] per camera (W' = 2W for "rgbd"), rendering on
    the scene's device, one camera at a time; a "render" progress event per frame."""
    device = next(iter(scene.parameters())).device
    colouring = DepthColouring()
    for i in range(len(cameras)):
        with torch.no_grad():
            out = scene.render(cameras[i].to(device))
        emit(on_event, "render", i + 1, len(cameras), "rendering frames")
        yield compose(out.rgb[0].float().cpu(), out.depth[0].float().cpu(), what, colouring)


def parse_position(text: str) -> Tensor:
    """'X,Y,Z' (scene units, the run's world) -> (3,) float tensor; UserInputError otherwise."""
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) and abs(v) <= 1e6 for v in values):
        raise UserInputError(f"--at {text!r}: expected three finite numbers X,Y,Z (scene units, at most 1e6)")
    return torch.tensor(values, dtype=torch.float32)


def check_panorama_size(width: int, height: int, max_width: int = 8192) -> None:
    """An equirectangular panorama is exactly twice as wide as tall (UserInputError otherwise)."""
    if width != 2 * height:
        raise UserInputError(f"--resolution {width}x{height}: a panorama must be twice as wide as tall "
                             f"(e.g. 2048x1024)")
    if not 32 <= width <= max_width:
        raise UserInputError(f"--resolution {width}x{height}: panorama width must be between 32 and {max_width}")


def render_panorama(scene: SceneRepresentation, position: Tensor, width: int, height: int,
                    what: What = "rgb", on_event: EventSink | None = None) -> Tensor:
    """Equirectangular 360-degree panorama (height, width', 3) in [0, 1] seen from ``position``
    (3,) in the run's world (layout: geometry/panorama.py); depth is colour-mapped distance."""
    from ..geometry.panorama import cube_cameras, equirect_from_faces, face_size_for, ray_distance

    check_panorama_size(width, height)
    device = next(iter(scene.parameters())).device
    cams = cube_cameras(position, face_size_for(width))
    rgbs, dists = [], []
    for f in range(6):
        with torch.no_grad():
            out = scene.render(cams[f].to(device))
        rgbs.append(out.rgb[0].float().cpu())
        dists.append(ray_distance(out.depth.float().cpu(), cams[f])[0])
        emit(on_event, "render", f + 1, 6, "rendering cube faces")
    faces = torch.cat([torch.stack(rgbs), torch.stack(dists)[..., None]], dim=-1)
    pano = equirect_from_faces(faces, cams, width, height)
    return compose(pano[..., :3], pano[..., 3], what, DepthColouring())


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------

FRAMES_MANIFEST = "frames.json"
"""Written into a PNG frame folder at the end: which frames the finished render wrote."""
RENDER_MARKER = ".scenedreamer-render.json"
"""Written (atomically) into a PNG frame folder before its first frame: the folder is a render's
output, so a re-run after a kill, a full disk or an error may reuse it (files of ours only)."""
FRAME_NAME = re.compile(r"^frame_\d{5}\.png$")


def _is_ours(name: str) -> bool:
    """Whether a frame folder's entry has a name a render writes (frames, markers, their temps)."""
    return (FRAME_NAME.match(name) is not None or name in (FRAMES_MANIFEST, RENDER_MARKER)
            or any(temp_name_pattern(n).match(name) for n in (FRAMES_MANIFEST, RENDER_MARKER))
            or re.match(r"^\.frame_\d{5}\.png\.[a-z0-9_]{8}\.png$", name) is not None)


def _owned_by_render(out: Path) -> bool:
    """Whether the frame folder ``out`` was made by a render: our marker, or (renders of the
    previous release, which wrote no marker) a frames.json of ours."""
    import json

    if (out / RENDER_MARKER).is_file():
        return True
    try:
        data = json.loads((out / FRAMES_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("written_by") == "scenedreamer render"


def output_kind(out: Path, panorama: bool) -> Literal["mp4", "png", "folder"]:
    """What ``--out`` asks for, by its suffix: an .mp4 video, a .png (panorama) or a PNG folder."""
    suffix = out.suffix.lower()
    if panorama:
        if suffix != ".png":
            raise UserInputError(f"--out {out}: a panorama is written as a .png file")
        return "png"
    if suffix == ".mp4":
        return "mp4"
    if suffix == "":
        return "folder"
    raise UserInputError(f"--out {out}: expected FILE.mp4 (a video) or a folder (PNG frames); "
                         f"a .png is for --panorama")


def check_output(out: Path, kind: str, force: bool) -> None:
    """Refuse an output we may not write (before any rendering); creates nothing.

    A file output that exists needs ``force``. A frame folder that is not empty must be one a
    render made (its marker) holding only names a render writes; where it holds frames, it
    needs ``force`` (a folder with only our marker and temp files, left by a render killed
    before its first frame, is reused as is). A run's own files are refused by the caller
    (run_contract.ensure_not_run_file).
    """
    if str(out) in ("", "."):
        raise UserInputError("--out: give a file or a new folder")
    check_writable_destination(out, folder=False)
    if kind in ("mp4", "png"):
        if out.is_dir():
            raise UserInputError(f"--out {out}: is a folder")
        if out.exists() and not force:
            raise UserInputError(f"--out {out}: already exists (use --force to replace it)")
        return
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder")
    if not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    foreign = [n for n in names if not _is_ours(n)]
    if foreign or not _owned_by_render(out):
        shown = (foreign or names)[0]
        raise UserInputError(f"--out {out}: holds files this program did not write ({shown}, ...); "
                             f"choose another folder")
    if any(FRAME_NAME.match(n) for n in names) and not force:
        raise UserInputError(f"--out {out}: holds an earlier render's frames (use --force to replace them)")


def remove_stale_temp_files(out: Path) -> None:
    """Delete temp files an earlier write of ``out`` left (a killed or failed render): beside a
    file output, the temps of its name; inside a frame folder of ours, every temp of ours."""
    if out.is_dir():
        if not _owned_by_render(out):
            return
        for entry in os.scandir(out):
            if entry.is_file(follow_symlinks=False) and is_temp_file(entry.name) and _is_ours(entry.name):
                os.unlink(entry.path)
        return
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        return
    pattern = temp_name_pattern(out.name)
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and pattern.match(entry.name):
            os.unlink(entry.path)


def write_png(path: Path, image: Tensor) -> None:
    """(H, W, 3) float in [0, 1] -> an 8-bit RGB PNG at ``path``, atomically."""
    from PIL import Image

    from ..atomic import atomic_path
    from ..export.video import to_uint8

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


def write_frame_folder(out: Path, frames: Iterator[Tensor]) -> int:
    """frame_00000.png ... into ``out`` (created), owned from the first byte: the render marker
    is written before the first frame; at the end frames.json lists them and frames an earlier
    render left beyond the new count are removed (the folder is ours, see ``check_output``)."""
    from ..atomic import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    if not (out / RENDER_MARKER).is_file():
        atomic_write_json(out / RENDER_MARKER, {"written_by": "scenedreamer render"})
    remove_stale_temp_files(out)
    names = []
    for i, frame in enumerate(frames):
        name = f"frame_{i:05d}.png"
        write_png(out / name, frame)
        names.append(name)
    for entry in os.scandir(out):
        if FRAME_NAME.match(entry.name) and entry.name not in names and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
    atomic_write_json(out / FRAMES_MANIFEST, {"written_by": "scenedreamer render", "files": names})
    return len(names)
