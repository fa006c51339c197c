"""scene.ply is faithful: the analytic scene is baked, distilled (representation/distill.py),
written to PLY, read back (plyfile and an independent numpy reader), and rendered with the
reference 3DGS conventions (cull z <= 0.2, 0.3 px^2 dilation, black background) at the support
cameras and between them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scenedreamer.export.ply import read_gaussians_ply, write_gaussians_ply
from scenedreamer.geometry.cameras import Cameras, camera_rays, intrinsics_from_fov
from scenedreamer.representation.bake import BakeConfig, bake_to_gaussians
from scenedreamer.representation.distill import (DistillConfig, ViewList, distill_to_gaussians, shell_radius,
                                                 sky_points, standard_viewer_config)
from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene
from scenedreamer.support.records import Provenance, ViewRecord
from representation.scenes import default_scene, look_at, make_views, orbit_cameras
from representation.test_bake import AnalyticRepresentation

ANGLES = [-20.0, -10.0, 0.0, 10.0, 20.0]
SIZE = (48, 32)


def read_ply_numpy(path) -> dict[str, np.ndarray]:
    """Minimal binary little-endian PLY reader (vertex element of float properties only),
    independent of plyfile: parse the ASCII header, then view the body as a structured array."""
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0"
    count, names = 0, []
    for line in header:
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            count = int(parts[2])
        elif parts and parts[0] == "property":
            assert parts[1] == "float", line
            names.append(parts[2])
    body = np.frombuffer(data, dtype=np.dtype([(n, "<f4") for n in names]), count=count, offset=end)
    return {n: body[n] for n in names}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean().clamp_min(1e-10)))


def _fixture():
    rep = AnalyticRepresentation()
    cams = orbit_cameras(ANGLES, *SIZE)
    views = make_views(default_scene(), cams)          # sky: valid, backdrop, depth 0
    baked = bake_to_gaussians(rep, cams, BakeConfig())
    return rep, cams, views, baked


@pytest.mark.slow
def test_distilled_scene_ply_is_faithful_and_reads_back(tmp_path):
    rep, cams, views, baked = _fixture()
    # 120 steps (was 150: 20 % less of the suite's longest test). Measured (seed 0, torch CPU,
    # 2026-12-06): 150 steps support mean 28.20 / worst 27.08 / between worst 27.96 dB; 120 steps
    # 27.11 / 26.23 / 26.89 dB (>= 3 dB over every bound below); 100 steps 26.35 / 25.58 / 26.10;
    # bake alone 10.56 dB mean.
    config = DistillConfig(steps=120)
    with torch.no_grad():
        bake_only = [psnr(baked.render(cams[i]).rgb[0], views[i].rgb) for i in range(len(views))]
    scene = distill_to_gaussians(baked, ViewList(views), rep, config, torch.Generator().manual_seed(0))
    path = tmp_path / "scene.ply"
    write_gaussians_ply(path, scene)

    # read back: plyfile (through our reader) and the independent numpy reader agree
    eval_scene = read_gaussians_ply(path, standard_viewer_config())
    raw = read_ply_numpy(path)
    assert len(raw["x"]) == eval_scene.num_gaussians == scene.num_gaussians
    np.testing.assert_allclose(raw["opacity"], eval_scene.opacity_logits.detach().numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(np.stack([raw["x"], raw["y"], raw["z"]], 1), eval_scene.means.detach().numpy())
    # opacity was learned: no longer the bake's single value
    assert np.unique(np.round(raw["opacity"], 3)).size > 10

    assert eval_scene.config.raster.near_plane == 0.2 and eval_scene.config.raster.blur_2d == 0.3
    with torch.no_grad():
        support = [psnr(eval_scene.render(cams[i]).rgb[0], views[i].rgb) for i in range(len(views))]
        mid_cams = orbit_cameras([-15.0, -5.0, 5.0, 15.0], *SIZE)
        truth = make_views(default_scene(), mid_cams)
        between = [psnr(eval_scene.render(mid_cams[i]).rgb[0], truth[i].rgb) for i in range(len(mid_cams))]
    # Targets of issue 9 (mean >= 27, worst >= 24 at support views; >= 25 between), scaled to a
    # 48x32 scene fitted 150 steps (now 120, still above the unscaled targets): 3 dB below each
    # (tiny images have relatively more edge pixels).
    assert np.mean(support) >= 24.0, support
    assert min(support) >= 21.0, support
    assert min(between) >= 22.0, between
    # distillation must help, not just keep the bake (which has no sky and fixed discs)
    assert np.mean(support) > np.mean(bake_only) + 3.0, (support, bake_only)


@pytest.mark.parametrize("sky_depth", [None, 100.0])
def test_sky_shell_covers_backdrop_pixels_far_away(sky_depth):
    # the sky is the backdrop mask whatever depth it carries (none, or a far plane at 100 as the
    # offline world stores it); the shell's radius scales the farthest depth that is not backdrop
    views = make_views(default_scene(), orbit_cameras([0.0], *SIZE), sky_depth=sky_depth)
    sky = views[0].valid & views[0].backdrop
    assert bool(sky.any())                                      # the analytic scene shows sky
    config = DistillConfig(sky_stride=2)
    pts, rgb, size = sky_points(views, config)
    far = float(views[0].depth[~views[0].backdrop].max())
    assert far < 50.0                                           # the far plane is not the scene
    centre = views[0].c2w[:3, 3]
    radius = (pts - centre).norm(dim=-1)
    # one point per sky pixel of the stride-2 grid, all on the shell (radius factor x farthest depth)
    assert pts.shape[0] == int(sky[1::2, 1::2].sum())
    assert torch.allclose(radius, torch.full_like(radius, config.sky_radius_factor * far), rtol=1e-4)
    assert (size > 0).all() and rgb.min() >= 0 and rgb.max() <= 1


def directional_sky(directions: torch.Tensor) -> torch.Tensor:
    """(..., 3) colours of a sky that depends on direction only (unit (..., 3), OpenCV world,
    +y down): a gradient with elevation and across the view, and a bright disc (a sun) whose
    edges show any sliding of the shell."""
    up, across = -directions[..., 1], directions[..., 0]
    sun = torch.nn.functional.normalize(torch.tensor([0.1, -0.3, 1.0]), dim=0)
    disc = ((directions * sun).sum(-1) > 0.995).float()
    return torch.stack([0.5 + 0.3 * up + 0.4 * disc, 0.6 + 0.2 * across + 0.3 * disc,
                        0.8 - 0.2 * up], -1).clamp(0, 1)


def sky_walk_views(xs: list[float], yaws_deg: list[float] | None = None, size=(40, 30)) -> list[ViewRecord]:
    """Views that see only sky (every pixel backdrop, at the offline world's stand-in depth 100)
    from cameras at (x, 0, 0) looking along +z (turned by yaw about the vertical) and a little
    up: a walk along x."""
    W, H = size
    K = intrinsics_from_fov(60.0, W, H)
    views = []
    for i, x in enumerate(xs):
        yaw = math.radians(yaws_deg[i]) if yaws_deg else 0.0
        c2w = look_at(torch.tensor([x, 0.0, 0.0]), torch.tensor([x + math.sin(yaw), -0.3, math.cos(yaw)]))
        _, dirs = camera_rays(Cameras(K[None], c2w[None], W, H))
        rgb = directional_sky(torch.nn.functional.normalize(dirs[0], dim=-1))
        everything = torch.ones(H, W, dtype=torch.bool)
        views.append(ViewRecord(rgb=rgb, depth=torch.full((H, W), 100.0), valid=everything,
                                inpainted=torch.zeros_like(everything), K=K, c2w=c2w,
                                provenance=Provenance.INITIAL, step=i, prompt="sky walk", view_id=i,
                                backdrop=everything))
    return views


def test_sky_shell_is_far_enough_that_cameras_spread_along_a_walk_see_it_in_place():
    # the sky is infinitely far. A shell point made from one camera must lie, seen from any other
    # support camera, within sky_parallax_pixels of the direction it was made for; at 4x the far
    # depth (the radius before, 4 units here: no depth that is not backdrop) a 20-unit walk saw
    # the shell slide by tens of pixels
    views = sky_walk_views([-10.0, -5.0, 0.0, 5.0, 10.0])
    config = DistillConfig(sky_stride=2, sky_parallax_pixels=1.0)
    pts, rgb, _ = sky_points(views, config)
    focal = float(views[0].K[0, 0])
    assert shell_radius(views, config) >= 2 * 10.0 * focal        # spread 20 units, 1 px
    origins = torch.stack([v.c2w[:3, 3] for v in views])
    rays = torch.nn.functional.normalize(pts[None] - origins[:, None], dim=-1)     # (cameras, M, 3)
    # every pair of cameras sees each shell point within the tolerance of the other (+5 %: the
    # bound uses the radius, a camera off-centre is up to `spread` nearer)
    turn = torch.einsum("amk,bmk->abm", rays, rays).clamp(max=1).acos()
    assert float(turn.max()) * focal <= 1.05 * config.sky_parallax_pixels
    # and its colour is the sky's in that direction, from any of them
    assert torch.allclose(directional_sky(rays[0]), rgb, atol=0.05)


def test_sky_shell_holds_one_gaussian_per_sky_cell_however_many_views_see_it():
    # the same view twice, a walk (the same sky directions from other places) and a turn (views
    # sharing part of their sky): the shell gets a point per stride cell of sky once, not once
    # per view (before, 100 views of a walk stacked 100 layers of Gaussians on one patch of sky)
    config = DistillConfig(sky_stride=2, sky_parallax_pixels=1.0)     # a walk sees the same directions
    one = sky_walk_views([0.0])
    single, _, _ = sky_points(one, config)
    twice, _, _ = sky_points(one + one, config)
    assert twice.shape[0] == single.shape[0] == 20 * 15
    walk, _, _ = sky_points(sky_walk_views([0.0, 1.0, 2.0, 3.0]), config)
    assert walk.shape[0] == single.shape[0]
    # a 15 degree turn of a 60 degree view shows about a quarter new sky
    turn, _, _ = sky_points(sky_walk_views([0.0, 0.0], [0.0, 15.0]), config)
    assert 1.15 * single.shape[0] < turn.shape[0] < 1.4 * single.shape[0]


def test_distilled_sky_matches_a_directional_sky_from_every_camera_of_a_walk(tmp_path):
    # scene.ply's sky, read back and rendered with the reference conventions at every support
    # camera of a 20-unit walk, reproduces a sky that depends on direction only
    views = sky_walk_views([-10.0, -5.0, 0.0, 5.0, 10.0])
    # nothing but the sky: the scene to polish is one Gaussian behind every camera
    behind = GaussianScene.from_points(torch.tensor([[0.0, 0.0, -50.0]]), torch.ones(1, 3), torch.ones(1),
                                       GaussianConfig())
    scene = distill_to_gaussians(behind, ViewList(views), None,
                                 DistillConfig(steps=60, sky_stride=2, sky_parallax_pixels=1.0),
                                 torch.Generator().manual_seed(0))
    write_gaussians_ply(tmp_path / "scene.ply", scene)
    back = read_gaussians_ply(tmp_path / "scene.ply", standard_viewer_config())
    back.eval()
    with torch.no_grad():
        scores = [psnr(back.render(v.camera).rgb[0], v.rgb) for v in views]
    # measured: 28.3-28.9 dB with the shell far enough; at 4x the far depth (the radius before:
    # 4 units, the walk's end cameras outside the shell) 28.8 dB at the middle camera and 7-9 dB
    # at the others. The threshold sits between them, 3 dB under the worst view measured
    assert min(scores) >= 25.0, scores


def test_every_camera_of_a_walk_is_inside_the_sky_shell_by_default():
    # content near the cameras (no depth that is not backdrop here: far = 1) and a 20-unit
    # walk: the shell at 4x the far depth alone (4 units) left the end cameras outside it
    views = sky_walk_views([-10.0, -5.0, 0.0, 5.0, 10.0])
    config = DistillConfig(sky_stride=2)
    assert config.sky_parallax_pixels is None                       # the default
    assert shell_radius(views, config) == pytest.approx(config.sky_radius_factor * 10.0)
    pts, _, _ = sky_points(views, config)
    origins = torch.stack([v.c2w[:3, 3] for v in views])
    # every shell point lies beyond every camera: the radius less the cameras' reach at least
    assert float((pts[None] - origins[:, None]).norm(dim=-1).min()) >= (config.sky_radius_factor - 1) * 10.0


def test_distillation_runs_at_least_steps_per_view_for_every_support_view():
    """A step fits a few patches of random views, so a larger world gets more steps
    (DistillConfig.steps_per_view): 5 views x 3 steps each outnumber the 2 steps asked for."""
    views = sky_walk_views([-2.0, -1.0, 0.0, 1.0, 2.0])
    behind = GaussianScene.from_points(torch.tensor([[0.0, 0.0, -50.0]]), torch.ones(1, 3), torch.ones(1),
                                       GaussianConfig())
    fit_events = []
    sink = lambda event: fit_events.append(event) if event.stage == "fit" else None   # noqa: E731
    config = DistillConfig(steps=2, steps_per_view=3.0, sky_stride=8)
    distill_to_gaussians(behind, ViewList(views), None, config, torch.Generator().manual_seed(0), on_event=sink)
    assert config.steps_for(len(views)) == 15
    assert fit_events[-1].step == fit_events[-1].total == 15
    assert DistillConfig(steps=300, steps_per_view=5.0).steps_for(12) == 300      # the fixed count when larger
    assert DistillConfig(steps=60, steps_per_view=5.0).steps_for(302) == 1510
    assert DistillConfig(steps=0, steps_per_view=5.0).steps_for(302) == 0          # 0: the bake as is


@pytest.mark.parametrize("densify", [False, True])
def test_the_distillation_densifies_only_when_asked(densify):
    """DistillConfig.densify: off (the default) the distillation keeps the seed's Gaussians and
    its sky shell, adds and removes none, whatever the seed's own densify schedule; on, the seed's
    schedule applies (here from step 2, every 2 steps, a threshold every Gaussian passes)."""
    from dataclasses import replace as dc_replace

    from scenedreamer.representation.config import DensifyConfig

    views = sky_walk_views([-2.0, -1.0, 0.0, 1.0, 2.0])
    eager = DensifyConfig(start_step=2, every=2, grad_threshold=0.0, prune_opacity=0.0)
    seed_config = dc_replace(GaussianConfig(), densify=eager)
    behind = GaussianScene.from_points(torch.tensor([[0.0, 0.0, -50.0]]), torch.ones(1, 3), torch.ones(1),
                                       seed_config)
    config = DistillConfig(steps=6, steps_per_view=0.0, sky_stride=8, densify=densify)
    assert DistillConfig().densify is False                           # the default
    seeded = 1 + sky_points(views, config)[0].shape[0]
    scene = distill_to_gaussians(behind, ViewList(views), None, config, torch.Generator().manual_seed(0))
    if densify:
        assert scene.num_gaussians > seeded
    else:
        assert scene.num_gaussians == seeded
