"""Distil a scene into faithful 3D Gaussians for export (scene.ply).

The bake (bake.py) only *places* Gaussians on rendered surfaces: fixed opacity, fixed disc size.
This module then *fits* them with the ordinary fitting loop (fitting.fit, unchanged) to

* the support views themselves (what the run generated: the reference for faithfulness), and
* renders of the source representation (e.g. the NeRF) at extra cameras half-way between the
  support cameras, so the splats also hold between the views a user flies through,

with opacity, size, orientation and colour all learned. The sky (the valid pixels of the support
views' ``backdrop`` mask, ViewRecord.backdrop: the one definition of sky) becomes a shell of far
Gaussians on a sphere around the cameras, so a standard viewer shows the sky, not black.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..geometry.projection import project_points
from ..geometry.trajectory import cameras_between
from ..support.records import Provenance, ViewRecord
from .base import SceneRepresentation
from .fitting import SupportViews, fit
from .gaussians import GaussianConfig, GaussianScene
from .config import DistillConfig


class ViewList:
    """An in-memory SupportViews (the protocol fitting.fit reads): a fixed list of ViewRecords,
    replay drawn uniformly."""

    def __init__(self, views: list[ViewRecord]) -> None:
        self.views = {i: v for i, v in enumerate(views)}

    def get(self, view_id: int) -> ViewRecord:
        return self.views[view_id]

    def ids(self) -> list[int]:
        return list(self.views)

    def __len__(self) -> int:
        return len(self.views)

    def sample_replay(self, n: int, generator: torch.Generator) -> list[int]:
        picks = torch.randint(0, len(self.views), (n,), generator=generator, device=generator.device)
        return [int(i) for i in picks]


def midpoint_cameras(cameras: Cameras, per_gap: int) -> Cameras:
    """``per_gap`` cameras between each consecutive pair (poses slerp + spline interpolated);
    (len-1)*per_gap cameras; an empty batch when there are fewer than 2."""
    return cameras_between(cameras, per_gap)


def render_views(source: SceneRepresentation, cameras: Cameras, device: torch.device,
                 min_opacity: float = 0.5) -> list[ViewRecord]:
    """Render ``source`` at ``cameras`` (on ``device``) into ViewRecords: valid (trained on) only
    where the render is opaque, since a NeRF composites its sky on black and that black must
    not pull the sky shell dark; depth there, 0 elsewhere."""
    views = []
    for i in range(len(cameras)):
        cam = cameras[i]
        with torch.no_grad():
            out = source.render(cam.to(device))
        opaque = out.opacity[0] >= min_opacity
        depth = torch.where(opaque, out.depth[0], torch.zeros_like(out.depth[0]))
        H, W = out.rgb.shape[1:3]
        views.append(ViewRecord(rgb=out.rgb[0].clamp(0, 1).float().cpu(), depth=depth.float().cpu(),
                                valid=opaque.cpu(),
                                inpainted=torch.zeros(H, W, dtype=torch.bool), K=cam.K[0].float().cpu(),
                                c2w=cam.c2w[0].float().cpu(), provenance=Provenance.REFINED, step=-1,
                                prompt="render of the source representation"))
    return views


def sky_points(views: list[ViewRecord], config: DistillConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Points on a sky sphere for the sky pixels (valid and ViewRecord.backdrop) of ``views``.

    Returns world points (M, 3), colours (M, 3), std-devs (M,) in scene units. The sphere is
    centred on the mean camera centre; its radius is ``shell_radius``. One point per
    sky_stride x sky_stride cell of sky pixels, in view order: a cell that a point already kept
    (from an earlier view) projects into gets none, so views that share sky directions (a walk,
    a look-around) do not stack layer upon layer of Gaussians on the same patch of sky.
    """
    centres = torch.stack([v.c2w[:3, 3].float() for v in views])
    centre = centres.mean(0)
    radius = shell_radius(views, config)
    s = config.sky_stride
    pts, cols, sizes = [], [], []
    for v in views:
        sky = (v.valid & v.backdrop)[s // 2::s, s // 2::s]
        if pts:
            sky = sky & ~_cells_holding(torch.cat(pts), v, s, sky.shape)
        if not bool(sky.any()):
            continue
        H, W = v.depth.shape
        rows = torch.arange(s // 2, H, s)[: sky.shape[0]]
        cols_ = torch.arange(s // 2, W, s)[: sky.shape[1]]
        ii, jj = torch.meshgrid(rows, cols_, indexing="ij")
        uv1 = torch.stack([jj + 0.5, ii + 0.5, torch.ones_like(ii, dtype=torch.float32)], -1).float()
        dirs_cam = uv1 @ torch.linalg.inv(v.K.float()).T
        dirs = torch.nn.functional.normalize(dirs_cam @ v.c2w[:3, :3].float().T, dim=-1)[sky]
        origin = v.c2w[:3, 3].float()
        # ray-sphere intersection from inside the sphere: t = -b + sqrt(b^2 - c)
        oc = origin - centre
        b = dirs @ oc
        c = float(oc @ oc) - radius * radius
        t = -b + torch.sqrt((b * b - c).clamp_min(0))
        pts.append(origin + t[:, None] * dirs)
        cols.append(v.rgb[s // 2::s, s // 2::s][sky].float())
        focal = float(torch.sqrt(v.K[0, 0] * v.K[1, 1]))
        sizes.append(config.sky_scale_factor * s * t / focal)
    if not pts:
        z = torch.zeros(0, 3)
        return z, z, torch.zeros(0)
    return torch.cat(pts), torch.cat(cols), torch.cat(sizes)


def shell_radius(views: list[ViewRecord], config: DistillConfig) -> float:
    """Radius (scene units) of the sky shell of ``views``, centred on their mean camera centre.

    sky_radius_factor x the larger of the farthest depth that is not backdrop (the backdrop's
    own depth is a stand-in: the offline world's far plane) and the cameras' largest distance
    from their centre: every camera sits well inside the shell, as the content does (a long walk
    whose content is near once put its end cameras outside the shell, which then showed them
    its back). With ``sky_parallax_pixels`` set, also what a sky infinitely far needs: a shell
    point made from one camera is turned by up to b / R radians for a camera b units from it, so
    R >= b x focal / sky_parallax_pixels, with b up to twice the cameras' largest distance from
    their centre, at the views' largest focal length.
    """
    centres = torch.stack([v.c2w[:3, 3].float() for v in views])
    reach = float((centres - centres.mean(0)).norm(dim=-1).max())
    far = max([float(v.depth[~v.backdrop].max()) for v in views if bool((~v.backdrop).any())] + [1.0])
    radius = config.sky_radius_factor * max(far, reach)
    if config.sky_parallax_pixels is not None:
        focal = max(float(torch.sqrt(v.K[0, 0] * v.K[1, 1])) for v in views)
        radius = max(radius, 2.0 * reach * focal / config.sky_parallax_pixels)
    return radius


def _cells_holding(points: Tensor, view: ViewRecord, stride: int, shape: tuple[int, int]) -> Tensor:
    """(rows, cols) bool over the stride x stride cells of ``view``'s image (``shape`` cells):
    which cells world ``points`` (M, 3) in front of the camera project into."""
    uv, z = project_points(points, view.camera)
    ahead = z[0] > 0
    row, col = (uv[0, ahead, 1] // stride).long(), (uv[0, ahead, 0] // stride).long()
    inside = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
    held = torch.zeros(shape, dtype=torch.bool)
    held[row[inside], col[inside]] = True
    return held


def add_sky(scene: GaussianScene, views: list[ViewRecord], config: DistillConfig) -> GaussianScene:
    """``scene`` plus a sky shell (camera-facing isotropic Gaussians, init opacity)."""
    pts, rgb, size = sky_points(views, config)
    if pts.shape[0] == 0:
        return scene
    device = scene.means.device
    sky = GaussianScene.from_points(pts.to(device), rgb.to(device), size.to(device), scene.config, device=device,
                                    features=torch.zeros(pts.shape[0], scene.feature_dim, device=device)
                                    if scene.feature_dim > 0 else None)
    return concat_scenes(scene, sky)


def concat_scenes(a: GaussianScene, b: GaussianScene) -> GaussianScene:
    """One scene holding the Gaussians of ``a`` then ``b`` (same config; ``a``'s scene extent)."""
    out = GaussianScene(a.config, device=a.means.device, num=a.num_gaussians + b.num_gaussians)
    with torch.no_grad():
        for name in ["means", "log_scales", "quats", "opacity_logits", "sh0", "shN", "features"]:
            getattr(out, name).copy_(torch.cat([getattr(a, name), getattr(b, name)]))
        out.scene_extent.copy_(a.scene_extent)
    return out


def distill_to_gaussians(baked: GaussianScene, support: SupportViews, source: SceneRepresentation | None,
                         config: DistillConfig, generator: torch.Generator,
                         on_event: EventSink | None = None) -> GaussianScene:
    """Fit ``baked`` (from bake_to_gaussians, or a GaussianScene to polish) to the support views
    and to renders of ``source`` between the support cameras, plus a sky shell.

    support: the run's support database (read through the SupportViews protocol). source: the
    representation the Gaussians stand for (None: no extra views). Returns a GaussianScene in
    eval mode on ``baked``'s device (``baked`` itself may be modified and returned).
    """
    views = [support.get(i) for i in support.ids()]
    scene = add_sky(baked, views, config) if config.sky else baked
    train = list(views)
    if source is not None and config.extra_views_per_gap > 0 and len(views) >= 2:
        cams = Cameras.cat([v.camera for v in views])
        extra = midpoint_cameras(cams, config.extra_views_per_gap)
        emit(on_event, "export", message=f"rendering {len(extra)} extra views to distil")
        train += render_views(source, extra, scene.means.device)
    if not config.densify:       # polish what the seed holds (DistillConfig.densify says why)
        scene.config = replace(scene.config, densify=replace(scene.config.densify, enabled=False))
    steps = config.steps_for(len(views))
    if steps > 0:
        fit(scene, ViewList(train), config.fit, steps=steps, generator=generator, on_event=on_event)
    scene.eval()
    emit(on_event, "export", message=f"distilled {scene.num_gaussians} Gaussians")
    return scene


# The reference 3DGS renderer's conventions (graphdeco diff-gaussian-rasterization, and viewers
# built like it): Gaussians with camera z <= 0.2 culled, 0.3 px^2 added to every 2D covariance,
# composited on black. Faithfulness of scene.ply is measured with exactly these.
STANDARD_NEAR_PLANE = 0.2
STANDARD_BLUR_2D = 0.3


def standard_viewer_config(config: GaussianConfig | None = None) -> GaussianConfig:
    """``config`` (default GaussianConfig()) with the reference renderer's raster conventions."""
    from dataclasses import replace
    config = config or GaussianConfig()
    return replace(config, raster=replace(config.raster, near_plane=STANDARD_NEAR_PLANE,
                                          blur_2d=STANDARD_BLUR_2D))
