"""How much disk and memory a generation run needs, from its config alone (nothing is loaded).

``generate --dry-run`` prints the estimate and warns when it exceeds the free disk space at
--out or the available memory (pipeline/plan.py); ``run_generation`` refuses a new run whose
disk estimate exceeds the free space before anything is written (``check_disk_space``), rather
than failing hours later with "disk full" after step N.

Every figure is an upper bound computed from what the run actually writes (the file layouts
are named beside each term), so a run never needs more than the estimate, barring the files
listed as not counted:
- support views: one file per view (support/storage.py ``write_view_file``): rgb (H, W, 3) in
  ``support.rgb_storage_dtype``, depth (H, W) float32, valid and inpainted (H, W) bool, each an
  .npy blob (header + raw data), plus its SQLite row;
- checkpoints: the representation's parameters (its kind's size hook, representation/registry.py)
  and Adam's two moments (3 x the parameters)
  for the KEEP_CHECKPOINTS step checkpoints kept plus the one being written, and scene.pt
  (the parameters alone);
- scene.ply: one row of float32 properties per exported Gaussian (export/ply.py), the count
  bounded from the config (one Gaussian per ``init_stride``-th pixel of every view, grown at
  most 2x per densification event the fitting schedule allows, capped by ``max_gaussians``);
- video.mp4: yuv420p's raw 1.5 bytes per pixel and frame;
- the nerfstudio dataset: raw sizes of its 8-bit RGB, 16-bit depth and 8-bit mask PNGs, its
  float32 .npy depths and points3D.ply (15 bytes a point, at most support.export_points).

Memory is estimated per stage of the run (the representation kind's MemoryStages: fitting, and
for a kind that bakes, its no-grad renders and the scene.ply distillation); the stages run one
after another, so the run's peak is the largest stage, not their sum (pipeline/plan.py
``peak_rss_bytes`` adds the process itself).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..atomic import check_writable_destination
from ..errors import UserInputError
from ..export.ply_layout import gaussian_ply_property_names
from ..geometry.trajectory_presets import path_frame_count
from ..representation.kind import MemoryStage, RunShape, pixels_at_stride
from ..representation.registry import kind_of_config
from ..support.config import CORE_ARRAYS
from .config import GenerateConfig
from .run_folder import KEEP_CHECKPOINTS

SQLITE_BYTES_PER_VIEW = 16 * 2**10
"""SQLite bytes per support view: a 4-view run's support.sqlite measured 20 KB (~5 KB a view,
4 KB pages of rows and indexes); 16 KB leaves room for the write-ahead log during a run."""
SQLITE_FIXED_BYTES = 64 * 2**10
"""SQLite bytes independent of the view count (schema pages, journal)."""
RUN_FILES_FIXED_BYTES = 2**20
"""config.json, trajectory.json, progress.json, scene.json and the markers: ~15 KB measured in
a tiny run; 1 MiB bounds them for any trajectory file a run accepts."""
RUN_FILES_BYTES_PER_VIEW = 4 * 2**10
"""events.jsonl and transforms.json grow per view: ~1.6 KB a view measured (4 views: 2.7 KB of
events, 3.6 KB of transforms.json); 4 KB is the bound."""
VIDEO_BYTES_PER_PIXEL = 1.5
"""H.264 video bytes per pixel and frame: yuv420p's raw size (12 bits a pixel). x264 at the
writer's CRF on pure noise, the hardest input, measured 0.9 (256x256, 10 frames)."""
VIDEO_FIXED_BYTES = 64 * 2**10
"""MP4 container overhead (index, headers) besides the frames: a 3-frame 48x32 noise video
measured 6 KB, 1.3 bytes a pixel and frame."""
PNG_FIXED_BYTES = 2**10
"""Per PNG file of the nerfstudio dataset: header, chunks and zlib's worst-case expansion of a
small image (zlib adds 5 bytes per 16 KB block stored uncompressed)."""
PNG_EXPANSION = 1.01
"""zlib's worst case for incompressible data: stored blocks, under 0.1 % larger; 1 % is the bound."""
NPY_HEADER_BYTES = 128
"""An .npy v1.0 header is padded to a multiple of 64 bytes; for our 2-3 dimensional arrays it is
128 (numpy.lib.format), the size every view file shows (a 48x32 view: 27648 + 4 x 128 bytes)."""
MEMORY_VIEW_BYTES_PER_PIXEL = 4 * 3 + 4 + 1 + 1
"""A support view in memory (the fitting loop's cache): float32 rgb, float32 depth, two bool masks."""
TRAINING_COPIES = 4
"""Training holds each representation parameter 4 times: the value, its gradient, Adam's two moments."""
CHECKPOINT_COPIES = 3
"""A step checkpoint holds each parameter 3 times: the value and Adam's two moments (a tiny run:
step checkpoint 195 KB, scene.pt 66 KB)."""


@dataclass(frozen=True)
class StageMemory:
    """Memory of one stage of a run besides the process itself (bytes)."""

    name: str
    """the stage ("fit", "render", "distill")"""
    state: int
    """trained parameters x TRAINING_COPIES, plus the views it holds and the networks' weights
    in main memory"""
    workspace: int | None
    """activations counted from the code; None: a Gaussian rasteriser's, estimated from the
    state (plan.TRAINING_WORKSPACE_FACTOR)"""
    views: int = 0
    """support views (and renders) it holds"""

    @property
    def counted(self) -> int:
        """state plus the counted workspace (bytes; no factor)."""
        return self.state + (self.workspace or 0)


@dataclass(frozen=True)
class DiskEstimate:
    """Upper bounds (bytes) of what a run writes, by part, and what they were computed from."""

    views: int
    """support views (initial neighbours + trajectory cameras)"""
    view_bytes: int
    """one support view file"""
    parameters: int
    """the representation's parameters (float32), at the largest the run can grow them"""
    support: int
    """support/ (view files + SQLite)"""
    checkpoints: int
    """checkpoints/ at their peak + scene.pt"""
    gaussians: int
    """upper bound of the Gaussians in scene.ply"""
    ply: int
    """scene.ply"""
    video: int
    """video.mp4"""
    nerfstudio: int
    """images/, depths/, masks/, transforms.json"""
    other: int
    """config, trajectory, events, progress and markers"""
    memory: int
    """memory of the largest stage (by ``StageMemory.counted``): the representation with gradients
    and Adam state, the views it holds, its counted activations and, when the networks run on
    the CPU, their weights"""
    stages: tuple[StageMemory, ...] = ()
    """the memory of every stage of the run, in the order they run"""

    @property
    def total(self) -> int:
        """All disk parts together (bytes)."""
        return self.support + self.checkpoints + self.ply + self.video + self.nerfstudio + self.other


def view_file_bytes(width: int, height: int, rgb_storage_dtype: str) -> int:
    """Exact size in bytes of one support view file of a ``width`` x ``height`` view (see the
    module docstring): the CORE_ARRAYS as .npy blobs; the pipeline stores no extra arrays."""
    # the two storage dtypes SupportConfig accepts (numpy is not imported: --dry-run starts fast)
    itemsize = {"rgb": {"float32": 4, "float16": 2}[rgb_storage_dtype] * 3, "depth": 4, "valid": 1, "inpainted": 1,
                "backdrop": 1}
    return sum(NPY_HEADER_BYTES + width * height * itemsize[name] for name in CORE_ARRAYS)


def initial_view_count(config: GenerateConfig) -> int:
    """Support views made at initialisation: the first camera and its initial neighbours."""
    return 1 + len(config.init.neighbour_yaws_deg) + len(config.init.neighbour_pitches_deg)


def support_view_count(config: GenerateConfig, cameras: int) -> int:
    """Support views of a run along ``cameras`` trajectory cameras: the initial ones plus one
    per later camera."""
    return initial_view_count(config) + max(0, cameras - 1)


def estimate_run(config: GenerateConfig, cameras: int, weight_bytes_on_cpu: int = 0) -> DiskEstimate:
    """Upper bounds of the disk (and memory) a run of ``config`` along ``cameras`` trajectory
    cameras needs, in bytes (see the module docstring for each part). ``weight_bytes_on_cpu``:
    network weights held in main memory (0 when they run on a GPU)."""
    w, h = config.width, config.height
    views = support_view_count(config, cameras)
    view_bytes = view_file_bytes(w, h, config.support.rgb_storage_dtype)
    support = views * (view_bytes + SQLITE_BYTES_PER_VIEW) + SQLITE_FIXED_BYTES

    exp = config.export
    fit_steps = config.init.fit_steps + config.progressive.fit_steps_per_view * (cameras - 1)
    sky = views * pixels_at_stride(w, h, exp.distill.sky_stride) if exp.distill.sky else 0
    patch = min(config.fit.patch_size, w, h)                                # fitting.sample_patches
    cached_views = min(views, config.fit.max_cached_views)
    shape = RunShape(width=w, height=h, views=views, fit_steps=fit_steps, bake=exp.bake,
                     distill_densify_steps=exp.distill.steps_for(views) if exp.distill.densify else 0,
                     sky_gaussians=sky,
                     rays_per_step=config.fit.patches_per_step * patch * patch, cached_views=cached_views,
                     distill_extra_views=(views - 1) * exp.distill.extra_views_per_gap if exp.ply else 0)
    size = kind_of_config(config.representation).size(config.representation, shape)
    param_bytes, gaussians = size.parameter_bytes, size.exported_gaussians
    checkpoints = (KEEP_CHECKPOINTS + 1) * CHECKPOINT_COPIES * param_bytes + param_bytes
    ply = (4 * gaussians * len(gaussian_ply_property_names(size.ply_sh_degree, size.ply_feature_dim)) + 2**10) \
        if exp.ply else 0

    video = 0
    if exp.video:
        frames = path_frame_count(cameras, exp.video_frames_per_view)       # outputs.video_cameras
        even = (w + w % 2) * (h + h % 2)                                     # the writer pads to even sizes
        video = int(frames * even * VIDEO_BYTES_PER_PIXEL) + VIDEO_FIXED_BYTES
    nerfstudio = 0
    if exp.nerfstudio:
        per_pixel = 3 + 2 + (1 if config.support.export_masks else 0)       # RGB8, depth16, mask8
        files = 3 if config.support.export_masks else 2
        nerfstudio = views * (int(w * h * per_pixel * PNG_EXPANSION) + files * PNG_FIXED_BYTES)
        nerfstudio += views * (w * h * 4 + NPY_HEADER_BYTES)               # float32 depth .npy
        # points3D.ply: x y z float32 + rgb uchar a point, plus a header under 1 KB
        nerfstudio += min(config.support.export_points, views * w * h) * 15 + PNG_FIXED_BYTES
    other = RUN_FILES_FIXED_BYTES + views * RUN_FILES_BYTES_PER_VIEW

    fitting = MemoryStage("fit", param_bytes, cached_views)
    # pipeline/outputs.py: the distillation (and the bake's renders) only for scene.ply; renders
    # of the representation itself for the video too
    skipped = set() if exp.ply else {"distill"} | (set() if exp.video else {"render"})
    kind_stages = tuple(st for st in size.stages or (fitting,) if st.name not in skipped) or (fitting,)
    stages = tuple(StageMemory(st.name, TRAINING_COPIES * st.trained_bytes + st.views * w * h * MEMORY_VIEW_BYTES_PER_PIXEL
                               + weight_bytes_on_cpu, st.workspace_bytes, st.views) for st in kind_stages)
    memory = max(st.counted for st in stages)
    return DiskEstimate(views=views, view_bytes=view_bytes, parameters=param_bytes, support=support,
                        checkpoints=checkpoints,
                        gaussians=gaussians, ply=ply, video=video, nerfstudio=nerfstudio, other=other,
                        memory=memory, stages=stages)


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` or its nearest ancestor that exists (where its files would be written)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_disk_bytes(path: str | os.PathLike) -> tuple[Path, int]:
    """(the nearest existing folder of ``path``, free bytes there for this user)."""
    where = nearest_existing(path)
    return where, shutil.disk_usage(where).free


def available_memory_bytes() -> int | None:
    """Memory available to a new process without swapping (Linux MemAvailable), in bytes;
    None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024          # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n: int | float) -> str:
    """Bytes in words: "812 KB", "4.2 MB", "28.8 TB" (powers of 1000, as df -H)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if n < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{int(n)} bytes"


def _folder_bytes(root: Path) -> int:
    """Total size of the files under ``root`` (symbolic links not followed)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def check_disk_space(config: GenerateConfig, out: str | os.PathLike, *, resume: bool = False,
                     overwrite: bool = False, cameras: int | None = None) -> None:
    """Refuse (one UserInputError line) a new run whose disk estimate exceeds the free space at
    ``out`` (its nearest existing folder), before anything is written. A resumed run is not
    checked (what it already wrote counts toward the estimate); with ``overwrite`` the old run's
    files, which are removed first, count as free. ``cameras``: the trajectory's camera count
    when the caller has loaded it (None: loaded here)."""
    if resume:
        return
    if cameras is None:
        from .scene_cameras import load_trajectory

        cameras = len(load_trajectory(config).cameras)
    # a folder that cannot be written at all is that, not "0 bytes free" (/proc, read-only mounts)
    check_writable_destination(out, folder=True)
    estimate = estimate_run(config, cameras)
    where, free = free_disk_bytes(out)
    if overwrite and Path(out).is_dir():
        free += _folder_bytes(Path(out))
    if estimate.total > free:
        raise UserInputError(
            f"--out {out}: the run needs up to {size_text(estimate.total)} of disk ({estimate.views} support views "
            f"{size_text(estimate.support)}, checkpoints {size_text(estimate.checkpoints)}, exports "
            f"{size_text(estimate.ply + estimate.video + estimate.nerfstudio)}) but {where} has "
            f"{size_text(free)} free; free space, lower --resolution or --frames, or choose another --out")
