"""3D Gaussian splatting as a SceneRepresentation (kind "gaussians").

Parameters (first dimension N, all ``nn.Parameter``, stored pre-activation as in 3DGS):
    means (N, 3)            world centres (our OpenCV-style world frame, +y down)
    log_scales (N, 3)       log standard deviations along the Gaussian's own axes (scene units)
    quats (N, 4)            rotation quaternions (w, x, y, z), any norm
    opacity_logits (N,)     logit of the opacity
    sh0 (N, 1, 3)           DC spherical-harmonic colour coefficient
    shN (N, K-1, 3)         higher SH coefficients, K = (sh_degree + 1)^2 (K-1 may be 0)
    features (N, F)         optional feature vector composited like colour (F may be 0)
Rendering: per camera, colour = clamp(eval_sh(view direction), 0, 1); [colour, features] are
rasterized (see rasterize/); depth is the expected z-depth sum w z / opacity (0 where nothing).
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor, nn

from ..errors import InternalError
from ..geometry.cameras import Cameras
from ..geometry.projection import unproject_depth
from .base import RenderOutput, SceneRepresentation
from .densify import (DensifyReport, DensifyState, accumulate_gradients, densify_step,
                      duplicate, update_parameters)
from .rasterize import eval_sh, num_sh_bases, rasterize, rgb_to_sh0, sh0_to_rgb
from .config import GaussianConfig

# At most this many renders' screen-space gradients wait for the next post_step (a fitting step
# renders once or a few times; more pending renders means nobody calls post_step).
_MAX_PENDING_RENDERS = 16

# Scales are stored as logs and opacities as logits: inputs are kept this far from 0 (and 1)
# so the stored values stay finite.
_MIN_SCALE = 1e-12
_OPACITY_MARGIN = 1e-6

PARAM_NAMES = ["means", "log_scales", "quats", "opacity_logits", "sh0", "shN", "features"]


class GaussianScene(SceneRepresentation):
    """A set of 3D Gaussians that renders colour, z-depth, opacity and features."""

    kind = "gaussians"
    config_class = GaussianConfig

    def __init__(self, config: GaussianConfig, device: torch.device | str | None = None,
                 num: int = 0, dtype: torch.dtype = torch.float32):
        """An empty-ish scene of ``num`` Gaussians at the origin (fill it with from_points)."""
        super().__init__()
        self.config = config
        self.feature_dim = config.feature_dim
        K = num_sh_bases(config.sh_degree)
        z = lambda *s: nn.Parameter(torch.zeros(*s, device=device, dtype=dtype))  # noqa: E731
        self.means = z(num, 3)
        self.log_scales = z(num, 3)
        self.quats = nn.Parameter(torch.tensor([1.0, 0, 0, 0], device=device, dtype=dtype).repeat(num, 1))
        self.opacity_logits = z(num)
        self.sh0 = z(num, 1, 3)
        self.shN = z(num, K - 1, 3)
        self.features = z(num, config.feature_dim)
        self.register_buffer("scene_extent", torch.ones((), device=device, dtype=dtype))
        self.densify_state = DensifyState.empty(num, device)
        self.last_densify = DensifyReport()
        self.sample_generator: torch.Generator | None = None   # the fitting loop may set this
        # renders since the last post_step whose projected-centre grads feed densification;
        # bounded so renders in train mode without a post_step cannot pile up graphs
        self._grad_sources: deque[tuple[Tensor, Tensor, int, int]] = deque(maxlen=_MAX_PENDING_RENDERS)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: GaussianConfig, device: torch.device | str | None = None) -> "GaussianScene":
        """An empty scene (0 Gaussians); ``load_state_dict`` resizes it to a checkpoint."""
        return cls(config, device=device)

    @classmethod
    def from_points(cls, means: Tensor, rgb: Tensor, scales: Tensor, config: GaussianConfig,
                    device: torch.device | str | None = None, opacities: Tensor | None = None,
                    features: Tensor | None = None, quats: Tensor | None = None) -> "GaussianScene":
        """Gaussians at world points.

        means (N, 3) world; rgb (N, 3) in [0, 1]; scales (N,) or (N, 3) std-devs (scene units,
        > 0) along the Gaussian's axes; opacities (N,) in (0, 1) (default config.init_opacity);
        features (N, F) or None (0); quats (N, 4) wxyz or None (identity: axis-aligned).
        """
        n = means.shape[0]
        if rgb.shape != (n, 3):
            raise InternalError(f"from_points: rgb must be ({n}, 3), got {tuple(rgb.shape)}")
        scene = cls(config, device=device, num=n)
        with torch.no_grad():
            scene.means.copy_(means)
            scales = scales.reshape(n, -1).expand(n, 3)
            scene.log_scales.copy_(torch.log(scales.clamp_min(_MIN_SCALE)))
            scene.sh0.copy_(rgb_to_sh0(rgb.clamp(0, 1)).unsqueeze(1))
            opac = opacities if opacities is not None else torch.full((n,), config.init_opacity)
            scene.opacity_logits.copy_(torch.logit(opac.to(scene.means).clamp(_OPACITY_MARGIN, 1 - _OPACITY_MARGIN)))
            if quats is not None:
                scene.quats.copy_(quats)
            if features is not None and config.feature_dim > 0:
                scene.features.copy_(features)
            scene.scene_extent.fill_(points_extent(scene.means))
        return scene

    @classmethod
    def from_views(cls, rgb: Tensor, depth: Tensor, valid: Tensor, cameras: Cameras,
                   config: GaussianConfig, device: torch.device | str | None = None) -> "GaussianScene":
        """One Gaussian per valid pixel (every config.init_stride-th per axis) of the views.

        rgb (N, H, W, 3) in [0, 1]; depth (N, H, W) z-depth (0 = unknown, skipped); valid
        (N, H, W) bool; cameras: N cameras at (H, W). Each Gaussian is a flat disc on the depth
        map's local surface, sized init_scale_factor x stride x its pixel footprint (depth /
        focal), with its pixel's colour (see surfels_from_depth).
        """
        means, colours, scales, quats = _lift_pixels(rgb, depth, valid, cameras, config)
        return cls.from_points(means, colours, scales, config, device=device, quats=quats)

    def add_from_view(self, rgb: Tensor, depth: Tensor, new: Tensor, camera: Cameras,
                      optimizer: torch.optim.Optimizer | None = None) -> int:
        """Grow the scene with Gaussians for a new view's new pixels. Returns how many were added.

        rgb (H, W, 3) or (1, H, W, 3); depth (H, W) z-depth; new (H, W) bool: the pixels whose
        content is not in the scene yet (e.g. inpainted ones); camera: 1 camera at (H, W).
        ``optimizer``: if given, its state grows in place (new Adam moments are zero).
        """
        if len(camera) != 1:
            raise InternalError(f"add_from_view: expected 1 camera, got {len(camera)}")
        H, W = camera.height, camera.width
        if rgb.numel() != H * W * 3 or depth.numel() != H * W or new.numel() != H * W:
            raise InternalError(f"add_from_view: expected rgb ({H},{W},3), depth and new ({H},{W}) for the "
                                 f"camera; got {tuple(rgb.shape)}, {tuple(depth.shape)}, {tuple(new.shape)}")
        rgb = rgb.reshape(1, camera.height, camera.width, 3)
        depth = depth.reshape(1, camera.height, camera.width)
        new = new.reshape(1, camera.height, camera.width)
        means, colours, scales, quats = _lift_pixels(rgb, depth, new, camera, self.config)
        n = means.shape[0]
        if n == 0:
            return 0
        fresh = GaussianScene.from_points(means.to(self.means), colours.to(self.means),
                                          scales.to(self.means), self.config, device=self.means.device,
                                          quats=quats.to(self.means))
        update_parameters(self, PARAM_NAMES, optimizer,
                          lambda name, p: torch.cat([p, getattr(fresh, name).detach()]),
                          lambda _, v: torch.cat([v, v.new_zeros((n,) + tuple(v.shape[1:]))]))
        self.densify_state.reset(self.num_gaussians)
        with torch.no_grad():   # a growing scene may reach farther (densify thresholds use this)
            self.scene_extent.fill_(max(float(self.scene_extent), points_extent(self.means)))
        return n

    # ---------------------------------------------------------------- properties
    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_coeffs(self) -> Tensor:
        """(N, K, 3) all SH coefficients (DC first)."""
        return torch.cat([self.sh0, self.shN], dim=1)

    @property
    def scales(self) -> Tensor:
        """(N, 3) std-devs in scene units."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:
        """(N,) opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    # ---------------------------------------------------------------- rendering
    def colours(self, cameras: Cameras) -> Tensor:
        """(B, N, 3) colour of every Gaussian seen from each camera (SH at the view direction)."""
        if self.sh_coeffs.shape[-2] == 1:
            # degree 0 does not depend on the direction: one (N, 3) colour, broadcast to the
            # cameras (a fitting step's 8 patch cameras each held their own copy and its graph)
            return sh0_to_rgb(self.sh_coeffs[:, 0]).clamp(0.0, 1.0).unsqueeze(0).expand(len(cameras), -1, -1)
        dirs = self.means.unsqueeze(0) - cameras.centers[:, None, :].to(self.means)       # (B, N, 3)
        dirs = torch.nn.functional.normalize(dirs, dim=-1)
        coeffs = self.sh_coeffs.unsqueeze(0).expand(len(cameras), -1, -1, -1)            # (B, N, K, 3)
        return eval_sh(coeffs, dirs).clamp(0.0, 1.0)

    def render(self, cameras: Cameras, background: Tensor | None = None,
               depth_hint: Tensor | None = None) -> RenderOutput:
        """Render B cameras at (H, W) (see SceneRepresentation.render; depth_hint is ignored).

        rgb (B,H,W,3) composited over ``background`` (3,) (default black); depth (B,H,W)
        expected z-depth, 0 where opacity < config.depth_opacity_eps; opacity (B,H,W);
        features (B,H,W,F) (not composited over any background).
        """
        cameras = cameras.to(device=self.means.device, dtype=self.means.dtype)
        B = len(cameras)
        values = self.colours(cameras)
        if self.feature_dim > 0:
            values = torch.cat([values, self.features.unsqueeze(0).expand(B, -1, -1)], dim=-1)
        out = rasterize(self.means, self.quats, self.scales, self.opacities, values, cameras,
                        self.config.raster)
        if self.training and out.means2d.requires_grad:
            out.means2d.retain_grad()                       # read by post_step for densification
            self._grad_sources.append((out.means2d, out.visible, cameras.width, cameras.height))
        rgb = out.values[..., :3]
        if background is not None:
            rgb = rgb + (1.0 - out.alpha).unsqueeze(-1) * background.to(rgb)
        eps = self.config.depth_opacity_eps
        depth = torch.where(out.alpha > eps, out.depth / out.alpha.clamp_min(eps), torch.zeros_like(out.depth))
        return RenderOutput(rgb=rgb, depth=depth, opacity=out.alpha, features=out.values[..., 3:])

    # ---------------------------------------------------------------- optimisation
    def param_groups(self) -> list[dict]:
        """One Adam group per parameter tensor (named like the attribute), 3DGS learning rates."""
        c = self.config
        extent = float(self.scene_extent)
        lrs = {"means": c.lr_means * extent, "log_scales": c.lr_log_scales, "quats": c.lr_quats,
               "opacity_logits": c.lr_opacity_logits, "sh0": c.lr_sh0, "shN": c.lr_shN,
               "features": c.lr_features}
        return [{"params": [getattr(self, n)], "lr": lrs[n], "name": n} for n in PARAM_NAMES]

    def post_step(self, step: int, optimizer: torch.optim.Optimizer, steps_left: int | None = None) -> None:
        """Accumulate screen-space gradients of the renders since the last call, then apply the
        densify/prune schedule (updating ``optimizer`` in place; an opacity reset only with
        ``steps_left`` enough to recover, densify.densify_step). The report is in last_densify."""
        if self.densify_state.grad2d_sum.shape[0] != self.num_gaussians:
            self.densify_state.reset(self.num_gaussians)
        for means2d, visible, width, height in self._grad_sources:
            if means2d.grad is not None and means2d.shape[1] == self.num_gaussians:
                accumulate_gradients(self.densify_state, means2d.grad.detach(), visible, width, height)
        self._grad_sources.clear()
        self.last_densify = densify_step(self, PARAM_NAMES, optimizer, self.densify_state,
                                         self.config.densify, step, float(self.scene_extent),
                                         self.sample_generator, steps_left=steps_left)

    def duplicate(self, mask: Tensor, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Append copies of the Gaussians in ``mask`` (N,) bool (optimizer state grows in place)."""
        n = duplicate(self, PARAM_NAMES, optimizer, mask)
        self.densify_state.reset(self.num_gaussians)
        return n

    # ---------------------------------------------------------------- checkpoints
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # The Gaussian count is data, not architecture: resize the parameters to the checkpoint's
        # before the usual copy (from_config builds an empty scene).
        for name in PARAM_NAMES:
            saved = state_dict.get(prefix + name)
            current = getattr(self, name)
            if saved is not None and saved.shape != current.shape:
                setattr(self, name, nn.Parameter(current.new_empty(saved.shape)))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self.densify_state.reset(self.num_gaussians)


def _lift_pixels(rgb: Tensor, depth: Tensor, valid: Tensor, cameras: Cameras,
                 config: GaussianConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flat Gaussians (surfels) for the valid strided pixels with depth > 0.

    rgb (N,H,W,3); depth (N,H,W); valid (N,H,W) bool -> means (M,3), rgb (M,3), scales (M,3),
    quats (M,4). Each surfel lies on the depth map's local surface (camera-facing where the
    normal is unknown) and covers its pixel footprint x init_stride x init_scale_factor.
    """
    N, H, W = len(cameras), cameras.height, cameras.width
    if rgb.shape != (N, H, W, 3) or depth.shape != (N, H, W) or valid.shape != (N, H, W):
        raise InternalError(f"Gaussians from views: expected rgb ({N},{H},{W},3), depth and valid "
                             f"({N},{H},{W}); got {tuple(rgb.shape)}, {tuple(depth.shape)}, {tuple(valid.shape)}")
    depth = depth.float()
    cameras = cameras.to(device=depth.device, dtype=torch.float32)
    known = (depth > 0) & torch.isfinite(depth)
    take = valid.bool() & known
    stride_mask = torch.zeros(H, W, dtype=torch.bool, device=depth.device)
    stride_mask[::config.init_stride, ::config.init_stride] = True
    take = take & stride_mask
    points, quats, scales = surfels_from_depth(depth, known, cameras, take,
                                               config.init_scale_factor * config.init_stride, config)
    return points, rgb.float()[take], scales, quats


def surfels_from_depth(depth: Tensor, known: Tensor, cameras: Cameras, take: Tensor, size_pixels: float,
                       config: GaussianConfig) -> tuple[Tensor, Tensor, Tensor]:
    """World points, quats (M,4) and scales (M,3) of flat Gaussians at the ``take`` pixels.

    depth (B,H,W) z-depth; known (B,H,W) bool where depth is meaningful (for normals);
    take (B,H,W) bool; size_pixels: the in-image std-dev of a surfel, in pixels.
    """
    points = unproject_depth(depth, cameras)                               # (B, H, W, 3)
    focal = torch.sqrt(cameras.K[:, 0, 0] * cameras.K[:, 1, 1])            # (B,) pixels
    footprint = depth / focal[:, None, None]                               # one pixel, scene units
    normals, ok = depth_normals(points, known, footprint, config.init_max_jump_pixels)
    view = torch.nn.functional.normalize(points - cameras.centers[:, None, None, :], dim=-1)
    normals = torch.where(ok.unsqueeze(-1), normals, view)                 # camera-facing fallback
    quats, scales = surfel_shape(normals[take], view[take], footprint[take] * size_pixels,
                                 config.init_flatness, config.init_min_cos)
    return points[take], quats, scales


def points_extent(means: Tensor) -> float:
    """Scene size used to scale learning rates and thresholds: 1.1 x the largest distance of a
    point from the centroid (3DGS uses the camera spread; points are what we always have)."""
    if means.shape[0] == 0:
        return 1.0
    centre = means.mean(0)
    return max(1.1 * float((means - centre).norm(dim=-1).max()), 1e-6)



def depth_normals(points: Tensor, known: Tensor, footprint: Tensor, max_jump_pixels: float) -> tuple[Tensor, Tensor]:
    """Surface normals of depth-map points by central differences.

    points (B, H, W, 3) world points of every pixel; known (B, H, W) bool; footprint (B, H, W)
    one pixel's size at that depth (depth / focal). Returns normals (B, H, W, 3) (unit,
    arbitrary sign) and ok (B, H, W) bool: all four neighbours known and none farther than
    max_jump_pixels footprints (a depth edge, not a surface).
    """
    ok = torch.zeros_like(known)
    normals = torch.zeros_like(points)
    if points.shape[1] < 3 or points.shape[2] < 3:
        return normals, ok
    dx = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]                     # (B, H-2, W-2, 3)
    dy = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    n = torch.linalg.cross(dx, dy)
    inner = known[:, 1:-1, 1:-1] & known[:, 1:-1, 2:] & known[:, 1:-1, :-2] & known[:, 2:, 1:-1] & known[:, :-2, 1:-1]
    limit = max_jump_pixels * footprint[:, 1:-1, 1:-1]
    smooth = (dx.norm(dim=-1) < limit) & (dy.norm(dim=-1) < limit)
    ok[:, 1:-1, 1:-1] = inner & smooth & (n.norm(dim=-1) > 0)
    normals[:, 1:-1, 1:-1] = torch.nn.functional.normalize(n, dim=-1)
    return normals, ok


def rotmat_to_quat(R: Tensor) -> Tensor:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z), w >= 0 (Shepperd's
    method: divide by the largest of the four candidate components for stability)."""
    m = R
    t = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cand = torch.stack([1 + t, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                        1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1)
    k = cand.argmax(-1)
    big = torch.sqrt(cand.gather(1, k[:, None]).clamp_min(1e-12))[:, 0]          # 2 x |component k|
    s_yz, s_zx, s_xy = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    a_xy, a_xz, a_yz = m[:, 1, 0] + m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 2, 1] + m[:, 1, 2]
    rows = torch.stack([
        torch.stack([big * big, s_yz, s_zx, s_xy], -1),          # k = 0 (w largest)
        torch.stack([s_yz, big * big, a_xy, a_xz], -1),          # k = 1 (x largest)
        torch.stack([s_zx, a_xy, big * big, a_yz], -1),          # k = 2 (y largest)
        torch.stack([s_xy, a_xz, a_yz, big * big], -1),          # k = 3 (z largest)
    ], 1)                                                         # (N, 4 cases, 4)
    q = rows[torch.arange(R.shape[0]), k] / (2 * big[:, None])
    q = torch.nn.functional.normalize(q, dim=-1)
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0)


def surfel_shape(normals: Tensor, view_dirs: Tensor, footprint: Tensor, flatness: float,
                 min_cos: float) -> tuple[Tensor, Tensor]:
    """Flat Gaussians lying on the surface: quats (N, 4) and scales (N, 3).

    normals (N, 3) unit; view_dirs (N, 3) unit rays from the camera; footprint (N,) the
    in-image std-dev wanted (scene units at the point's depth). The disc's axes: t (the view
    ray projected on the surface; scale footprint / cos(view angle), cos capped below by
    min_cos, so a grazing surface still covers its pixel), b = n x t (scale footprint), and n
    (scale flatness x footprint).
    """
    cos = (normals * view_dirs).sum(-1, keepdim=True)
    t = view_dirs - cos * normals
    fallback = torch.linalg.cross(normals, torch.where(normals[:, :1].abs() < 0.9,
                                                       normals.new_tensor([1.0, 0, 0]),
                                                       normals.new_tensor([0, 1.0, 0])).expand_as(normals))
    t = torch.where(t.norm(dim=-1, keepdim=True) > 1e-6, t, fallback)     # view along the normal
    t = torch.nn.functional.normalize(t, dim=-1)
    b = torch.linalg.cross(normals, t)
    R = torch.stack([t, b, normals], dim=-1)                              # columns = disc axes
    stretch = 1.0 / cos.abs().squeeze(-1).clamp_min(min_cos)
    scales = torch.stack([footprint * stretch, footprint, flatness * footprint], dim=-1)
    return rotmat_to_quat(R), scales
