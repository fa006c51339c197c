"""Evaluate finished runs: render each scene along its own path and at held-out cameras, and
compute the paper's metrics (docs/method.md "Evaluation", docs/usage/eval.md).

Per run, from RUN/scene.ply (what users take away) rendered with the reference 3DGS viewer's
conventions (``representation.distill.standard_viewer_config``):
- along the run's path interpolated to ``frames`` cameras: NIQE, BRISQUE, CLIP score per frame;
  depth-reprojection error and flow-warping error between consecutive frames;
- at the run's support cameras: PSNR of scene.ply against the support views;
- on procedural-world runs, at the cameras half-way between trajectory cameras: PSNR, SSIM,
  FLIP and median relative depth error against the world's exact image and depth;
- per path frame the empty fraction (opacity below ``empty_opacity``); for path frames that
  return to an earlier pose (revisits) PSNR and flow-warping error against the earlier frame;
- with ``worldscore``: WorldScore-style camera control, 3D and photometric consistency
  (eval/worldscore.py) on the path frames.
Frames are rendered one at a time and support views read one at a time (memory bounded by one
frame, plus uint8 copies of the frames a revisit needs again and, with ``worldscore``, of every
path frame: 3 bytes a pixel); each metric records its
direction, unit, and per-frame values; an unavailable metric carries the reason, never a number.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

from ..errors import UserInputError
from ..events import EventSink, emit
from ..priors.loading import ModelLoadConfig
from .metrics import (depth_reprojection_error, empty_fraction, flip_error, flow_warping_error,
                      median_relative_depth_error, psnr, revisit_pairs)

Direction = Literal["lower", "higher"]

# the files a run must hold for `eval` (each named in the refusal when absent) and why
REQUIRED_FILES = {"scene.ply": "the scene every metric renders",
                  "trajectory.json": "the camera path the frames follow",
                  "support": "the support views scene.ply is compared with"}


@dataclass(frozen=True)
class EvalConfig:
    """Settings of an evaluation (all recorded in metrics.json)."""

    frames: int = 30
    """Cameras along each run's own path (poses interpolated through the trajectory cameras)."""
    clip_model: str = "auto"
    """CLIP weights for the CLIP score: preset name, hub id or local folder (downloaded when
    absent, unless offline); "auto" = the ``clip-vit-b32`` preset only if it is already cached
    (never the network); "" turns it off."""
    device: str = "cpu"
    """torch device for rendering and CLIP."""
    offline: bool = False
    """Never contact the model hub for the CLIP weights (also HF_HUB_OFFLINE=1)."""
    max_frames: int = 2000
    """Refuse more frames than this (a typo such as --frames 600000 would run for days)."""
    resolution: tuple[int, int] | None = None
    """(width, height) in pixels of the path and held-out renders; None = each run's own. The
    scene is 3D, so any resolution can be rendered (NIQE needs at least 192x192); support views
    are always compared at their own resolution."""
    max_side: int = 8192
    """Refuse a render side above this many pixels."""
    path: str = ""
    """Camera path of the path frames: "" = the run's own trajectory interpolated to ``frames``;
    else a trajectory preset name (``geometry.trajectory.TRAJECTORY_PRESETS``: orbit,
    back_and_forth, ...) made with ``frames`` cameras, the run's field of view, starting at the
    run's first camera (to evaluate a scene away from the path it was made on)."""
    worldscore: bool = False
    """Add WorldScore-style camera control, 3D and photometric consistency (eval/worldscore.py;
    needs pycolmap). Keeps the path frames as uint8 until the end (3 bytes a pixel a frame)."""
    empty_opacity: float = 0.5
    """A pixel is empty (no content) where the rendered accumulated opacity is below this: half
    covered or less is mostly background colour, not scene."""
    revisit_rotation_deg: float = 5.0
    """Two path poses within this angle (and revisit_distance) count as a revisit."""
    revisit_distance: float = 0.05
    """... and within this fraction of the path's extent (largest distance of a camera centre
    from the path's mean centre; scene units for a pure rotation path: 0.05)."""
    revisit_min_gap: int = 3
    """Frames between the two visits at least (neighbouring frames are not a revisit)."""

    def __post_init__(self) -> None:
        if not 2 <= self.frames <= self.max_frames:
            raise UserInputError(f"--frames {self.frames}: must be between 2 and {self.max_frames}")
        if self.path:
            from ..geometry.trajectory import TRAJECTORY_PRESETS
            if self.path not in TRAJECTORY_PRESETS:
                raise UserInputError(f"--path {self.path}: not a trajectory preset (one of "
                                     f"{', '.join(sorted(TRAJECTORY_PRESETS))})")
        if not 0 < self.empty_opacity <= 1:
            raise UserInputError(f"empty_opacity {self.empty_opacity}: must be in (0, 1]")
        if self.revisit_rotation_deg < 0 or self.revisit_distance < 0 or self.revisit_min_gap < 1:
            raise UserInputError("revisit thresholds: angle and distance must be >= 0 and the gap >= 1")
        if self.resolution is not None and not all(16 <= v <= self.max_side for v in self.resolution):
            raise UserInputError(f"--resolution {self.resolution[0]}x{self.resolution[1]}: each side must be "
                                 f"between 16 and {self.max_side} pixels")


@dataclass
class MetricResult:
    """One metric of one run.

    value: the aggregate (mean over frames or pairs, nan-free); None when unavailable.
    worst: the worst frame's value (by ``direction``); None when unavailable.
    per_frame: the values per frame (path frames, support views, held-out cameras or
        consecutive pairs, see ``over``); nan where a pair had no overlap.
    reason: why the metric is unavailable ("" when it is available).
    """

    name: str
    direction: Direction
    unit: str
    over: str
    value: float | None = None
    worst: float | None = None
    per_frame: list[float] = field(default_factory=list)
    reason: str = ""
    note: str = ""
    """Shown beside an available figure (e.g. "7 of 10 frames registered")."""

    @property
    def available(self) -> bool:
        """Whether the metric has a number."""
        return self.value is not None

    def finish(self) -> "MetricResult":
        """Set value / worst from per_frame (finite values only)."""
        finite = [v for v in self.per_frame if math.isfinite(v)]
        if not finite:
            self.reason = self.reason or f"no {self.over} with a finite value"
            return self
        self.value = sum(finite) / len(finite)
        self.worst = max(finite) if self.direction == "lower" else min(finite)
        return self

    def to_json(self) -> dict:
        """The JSON form written to metrics.json."""
        out = {"direction": self.direction, "unit": self.unit, "over": self.over, "available": self.available}
        if self.available:
            out.update(value=self.value, worst=self.worst, per_frame=[None if not math.isfinite(v) else v
                                                                       for v in self.per_frame])
        else:
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class RunEvaluation:
    """All metrics of one run, plus what identifies the run."""

    run: str
    name: str
    prompt: str
    representation: str
    trajectory_sha256: str
    frames: int
    resolution: tuple[int, int]
    metrics: dict[str, MetricResult]
    switches_off: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The JSON form written to metrics.json."""
        return {"run": self.run, "name": self.name, "prompt": self.prompt, "representation": self.representation,
                "switches_off": self.switches_off, "trajectory_sha256": self.trajectory_sha256, "frames": self.frames,
                "resolution": list(self.resolution),
                "metrics": {k: m.to_json() for k, m in self.metrics.items()}}


# the metrics, in report order: name -> (direction, unit, what the per-frame values are over)
METRICS: dict[str, tuple[Direction, str, str]] = {
    "clip_score": ("higher", "0-100", "path frames"),
    "niqe": ("lower", "score", "path frames"),
    "brisque": ("lower", "score", "path frames"),
    "depth_reprojection_error": ("lower", "relative", "consecutive path frames"),
    "flow_warping_error": ("lower", "mean abs. RGB", "consecutive path frames"),
    "support_psnr": ("higher", "dB", "support views"),
    "gt_psnr": ("higher", "dB", "held-out cameras"),
    "gt_ssim": ("higher", "0-1", "held-out cameras"),
    "gt_depth_error": ("lower", "relative", "held-out cameras"),
    "gt_flip": ("lower", "0-1", "held-out cameras"),
    "empty_fraction": ("lower", "fraction", "path frames"),
    "revisit_psnr": ("higher", "dB", "revisit pairs"),
    "revisit_flow_error": ("lower", "mean abs. RGB", "revisit pairs"),
    "ws_camera_rotation_error": ("lower", "degrees", "registered path frames"),
    "ws_camera_translation_error": ("lower", "fraction of path extent", "registered path frames"),
    "ws_camera_control": ("higher", "0-100", "run"),
    "ws_reprojection_error": ("lower", "pixels", "run"),
    "ws_3d_consistency": ("higher", "0-100", "run"),
    "ws_flow_fb_error": ("lower", "pixels", "consecutive path frames"),
    "ws_photometric_consistency": ("higher", "0-100", "run"),
}
AUTO_CLIP = "auto"
AUTO_CLIP_PRESET = "clip-vit-b32"
"""What ``--clip-model auto`` (the default) uses when it is already cached."""
WORLDSCORE_METRICS = [m for m in METRICS if m.startswith("ws_")]
NO_REVISIT = "no revisit in this path"


def check_run(root: str | os.PathLike) -> Path:
    """The run folder as a Path after checking it is finished and holds every file eval needs;
    UserInputError naming the run and the missing file otherwise. Creates nothing."""
    from ..pipeline.run_contract import require_finished_run

    root = require_finished_run(root, "scene.ply")
    for name, why in REQUIRED_FILES.items():
        if not (root / name).exists():
            raise UserInputError(f"{root}: run lacks {name} ({why})")
    return root


def metric_settings(config: EvalConfig) -> dict:
    """Version and settings of every metric implementation (recorded in metrics.json)."""
    from .brisque import BRISQUE_VERSION
    from .niqe import NIQE_VERSION

    return {"frames": config.frames, "path": config.path or "each run's own trajectory", "resolution": list(config.resolution) if config.resolution else "each run's own",
            "niqe": NIQE_VERSION, "brisque": BRISQUE_VERSION,
            "clip_score": {"model": config.clip_model or None, "formula": "100 * max(cos(image, text), 0)"},
            "flow_warping_error": "OpenCV DIS optical flow (medium preset), B warped onto A, mean abs. error",
            "depth_reprojection_error": "median |z_A->B - z_B| / z_B over pixels landing inside B",
            "ssim": "skimage structural_similarity, 7x7 window, data_range 1, channel-wise mean",
            "gt_flip": "flip-evaluator (NVIDIA FLIP), LDR, 67 pixels per degree, mean over pixels",
            "empty_fraction": f"pixels with rendered opacity < {config.empty_opacity}",
            "revisits": {"max_rotation_deg": config.revisit_rotation_deg,
                         "max_distance_of_path_extent": config.revisit_distance,
                         "min_gap_frames": config.revisit_min_gap},
            "worldscore": _worldscore_settings() if config.worldscore else "off (--worldscore)",
            "renderer": "scene.ply with the reference 3DGS viewer conventions (standard_viewer_config)"}


def _worldscore_settings() -> dict:
    from dataclasses import asdict

    from .worldscore import WorldScoreConfig

    return {**asdict(WorldScoreConfig()), "sfm": "pycolmap incremental mapping, PINHOLE intrinsics fixed, sequential matching "
                                                  "with quadratic overlap (match_overlap; 0: exhaustive)",
            "flow": "OpenCV DIS (medium), forward-backward"}


def _path_cameras(trajectory, frames: int):
    from ..geometry.trajectory import interpolated_cameras

    return interpolated_cameras(trajectory.cameras, frames)


def _preset_path(trajectory, preset: str, frames: int):
    """``frames`` cameras of a trajectory preset with the run's intrinsics (its first camera's
    horizontal field of view), expressed so that its camera 0 is the run's camera 0."""
    from ..geometry.cameras import Cameras
    from ..geometry.trajectory import make_trajectory

    first = trajectory.cameras[0:1]
    W, H = first.width, first.height
    fov = math.degrees(2 * math.atan(W / 2 / float(first.K[0, 0, 0])))
    made = make_trajectory(preset, frames, W, H, fov, dtype=first.c2w.dtype).cameras
    c2w = first.c2w[0] @ made.c2w
    return Cameras(first.K.expand(frames, 3, 3).clone(), c2w, W, H)


def _at(cameras, resolution: tuple[int, int] | None):
    return cameras if cameras is None or resolution is None else cameras.scaled(*resolution)


def _held_out_cameras(trajectory):
    from ..geometry.trajectory import cameras_between

    if len(trajectory.cameras) < 2:
        return None
    return cameras_between(trajectory.cameras, 1)


def _ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a.clamp(0, 1).numpy(), b.clamp(0, 1).numpy(), channel_axis=2,
                                       data_range=1.0, win_size=7))


def evaluate_run(root: Path, config: EvalConfig, clip_scorer=None, clip_reason: str = "",
                 on_event: EventSink | None = None,
                 frame_metrics: dict[str, Callable] | None = None) -> RunEvaluation:
    """Evaluate one finished run folder (already checked with ``check_run``).

    clip_scorer: an ``eval.clip_score.ClipScorer`` or None (then clip_score is unavailable
        with ``clip_reason``).
    frame_metrics: the no-reference metrics per path frame, name -> f((H, W, 3) in [0, 1]) ->
        float; default NIQE and BRISQUE (``eval.niqe.niqe``, ``eval.brisque.brisque``).
    Emits "eval" progress events (one per rendered frame).
    """
    from ..config_io import load_config
    from ..export.ply import read_gaussians_ply
    from ..geometry.trajectory_io import read_transforms_json
    from ..pipeline.config import GenerateConfig
    from ..pipeline.run_folder import file_sha256
    from ..representation.distill import standard_viewer_config
    from ..support.database import SupportDatabase

    if frame_metrics is None:
        from .brisque import brisque
        from .niqe import niqe
        frame_metrics = {"niqe": niqe, "brisque": brisque}
    gen = load_config(GenerateConfig, root / "config.json")
    trajectory = read_transforms_json(root / "trajectory.json")
    scene = read_gaussians_ply(root / "scene.ply", standard_viewer_config()).to(config.device)
    scene.eval()
    results = {name: MetricResult(name, *spec) for name, spec in METRICS.items()}
    for name in METRICS:
        if name in ("niqe", "brisque") and name not in frame_metrics:
            results[name].reason = "not requested"
        if name in WORLDSCORE_METRICS and not config.worldscore:
            results[name].reason = "not requested (--worldscore)"

    path = _at(_preset_path(trajectory, config.path, config.frames) if config.path
               else _path_cameras(trajectory, config.frames), config.resolution)
    with SupportDatabase.open(root / "support", create=False) as db:
        support_ids = db.ids()                  # views are read one at a time below
    held_out = _at(_held_out_cameras(trajectory), config.resolution) \
        if gen.procedural_world_run else None
    total = len(path) + len(support_ids) + (len(held_out) if held_out is not None else 0)
    done = 0

    def render(camera):
        nonlocal done
        with torch.no_grad():
            out = scene.render(camera.to(config.device))
        done += 1
        emit(on_event, "eval", done, total, f"{root.name}: rendering and measuring")
        if track_empty:                          # path frames only (the empty_fraction metric)
            results["empty_fraction"].per_frame.append(empty_fraction(out.opacity[0].cpu(), config.empty_opacity))
        return out.rgb[0].clamp(0, 1).cpu(), out.depth[0].cpu()

    # frames a later metric needs again, as uint8 (H, W, 3): revisited ones, or all for WorldScore
    c2w = path.c2w.cpu()
    centres = c2w[:, :3, 3]
    extent = float((centres - centres.mean(0)).norm(dim=-1).max())
    pairs = revisit_pairs(c2w, config.revisit_rotation_deg,
                          config.revisit_distance * extent if extent > 1e-9 else config.revisit_distance,
                          config.revisit_min_gap)
    keep = set(range(len(path))) if config.worldscore else {i for i, _ in pairs}
    kept: dict[int, torch.Tensor] = {}
    revisit_of = {j: i for i, j in pairs}

    previous = None
    clip_frames = []
    track_empty = True
    for i in range(len(path)):
        rgb, depth = render(path[i])
        if i in revisit_of:
            earlier = kept[revisit_of[i]].float() / 255
            results["revisit_psnr"].per_frame.append(psnr(rgb, earlier))
            results["revisit_flow_error"].per_frame.append(flow_warping_error(earlier, rgb))
        if i in keep:
            kept[i] = (rgb * 255).round().to(torch.uint8)
        for name, fn in frame_metrics.items():
            if results[name].reason:
                continue
            try:
                results[name].per_frame.append(float(fn(rgb)))
            except ValueError as err:            # e.g. frames smaller than NIQE's patches
                results[name].reason = str(err)
                results[name].per_frame = []
        if previous is not None:
            prev_rgb, prev_depth = previous
            results["depth_reprojection_error"].per_frame.append(
                depth_reprojection_error(prev_depth, path[i - 1], depth, path[i]))
            results["flow_warping_error"].per_frame.append(flow_warping_error(prev_rgb, rgb))
        previous = (rgb, depth)
        if clip_scorer is not None:
            clip_frames.append(rgb)
            if len(clip_frames) == 16 or i == len(path) - 1:
                results["clip_score"].per_frame.extend(clip_scorer.scores(torch.stack(clip_frames), gen.prompt))
                clip_frames = []
    if clip_scorer is None:
        results["clip_score"].reason = clip_reason or "no CLIP model"
    if not pairs:
        results["revisit_psnr"].reason = results["revisit_flow_error"].reason = NO_REVISIT
    if config.worldscore:
        _worldscore(results, [kept[i].numpy() for i in range(len(path))], path)
    kept.clear()
    track_empty = False

    with SupportDatabase.open(root / "support", create=False) as db:
        for view_id in support_ids:
            view = db.get(view_id)
            rgb, _ = render(view.camera)
            results["support_psnr"].per_frame.append(psnr(rgb, view.rgb))
            del view

    if held_out is None:
        why = "not a procedural-world run (no ground truth)" if not gen.procedural_world_run \
            else "the trajectory has one camera (no camera half-way between two)"
        for name in ("gt_psnr", "gt_ssim", "gt_depth_error", "gt_flip"):
            results[name].reason = why
    else:
        from ..priors.offline import build_offline_priors

        world = build_offline_priors(gen.prompt, gen.seed, gen.priors.world).world
        for i in range(len(held_out)):
            rgb, depth = render(held_out[i])
            truth = world.render(held_out[i])
            results["gt_psnr"].per_frame.append(psnr(rgb, truth.rgb[0]))
            results["gt_ssim"].per_frame.append(_ssim(rgb, truth.rgb[0]))
            results["gt_depth_error"].per_frame.append(median_relative_depth_error(depth, truth.depth[0]))
            results["gt_flip"].per_frame.append(flip_error(rgb, truth.rgb[0]))

    for m in results.values():
        if not m.reason:
            m.finish()
    from ..representation.registry import kind_of_config

    switches_off = [name for name, on in vars(gen.ablation).items() if on is False]
    return RunEvaluation(run=str(root), name=root.name, prompt=gen.prompt,
                         representation=kind_of_config(gen.representation).name,
                         trajectory_sha256=file_sha256(root / "trajectory.json"), frames=config.frames,
                         resolution=(path.width, path.height), metrics=results, switches_off=switches_off)


def _worldscore(results: dict[str, MetricResult], frames: list, path) -> None:
    """Fill the ws_* metrics from the path frames (uint8 (H, W, 3)) and their cameras."""
    from .worldscore import worldscore_figures

    fig = worldscore_figures(frames, path.c2w.cpu().double().numpy(), path.K[0].cpu().double().numpy())
    results["ws_flow_fb_error"].per_frame = fig.flow_fb_err_px
    if fig.photometric is not None:
        results["ws_photometric_consistency"].per_frame = [fig.photometric]
    if fig.camera_reason:
        for name in ("ws_camera_rotation_error", "ws_camera_translation_error", "ws_camera_control",
                     "ws_reprojection_error", "ws_3d_consistency"):
            results[name].reason = fig.camera_reason
        return
    note = "" if fig.registered == fig.total else f"{fig.registered} of {fig.total} frames registered"
    results["ws_camera_rotation_error"].per_frame = fig.rotation_err_deg
    results["ws_camera_translation_error"].per_frame = fig.translation_err
    results["ws_camera_control"].per_frame = [fig.camera_control]
    results["ws_reprojection_error"].per_frame = [fig.reprojection_err_px]
    results["ws_3d_consistency"].per_frame = [fig.consistency_3d]
    for name in ("ws_camera_rotation_error", "ws_camera_translation_error", "ws_camera_control",
                 "ws_reprojection_error", "ws_3d_consistency"):
        results[name].note = note


def evaluate_runs(roots: list[str | os.PathLike], config: EvalConfig,
                  on_event: EventSink | None = None) -> list[RunEvaluation]:
    """Check every run first (nothing is rendered if one is unusable), load CLIP once, then
    evaluate each run in order."""
    from .clip_score import load_clip_scorer

    checked = [check_run(r) for r in roots]
    if len({p.resolve() for p in checked}) != len(checked):
        raise UserInputError("the same run is given twice")
    if config.worldscore:
        from .worldscore import _require_pycolmap
        _require_pycolmap()                     # before any rendering: one line saying how to install
    scorer, reason = (None, "turned off (--clip-model '')")
    if config.clip_model == AUTO_CLIP:
        # cached weights only: eval never touches the network unless a model is asked for
        scorer, reason = load_clip_scorer(AUTO_CLIP_PRESET, ModelLoadConfig(device=config.device, offline=True))
        if scorer is None:
            reason = (f"{AUTO_CLIP_PRESET} is not cached ({reason}); eval does not download it unless asked: "
                      f"--clip-model {AUTO_CLIP_PRESET}")
    elif config.clip_model:
        scorer, reason = load_clip_scorer(config.clip_model, ModelLoadConfig(device=config.device,
                                                                             offline=config.offline))
    evaluations = [evaluate_run(root, config, scorer, reason, on_event) for root in checked]
    names = [e.name for e in evaluations]
    for e in evaluations:                       # x/run and y/run: name them by their parent too
        if names.count(e.name) > 1:
            e.name = f"{Path(e.run).parent.name}/{e.name}"
    return evaluations
