"""GaussianScene: initialisation from views, rendering contract, densify/prune with a consistent
optimizer, growth from a new view, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from scenedreamer.errors import InternalError, UserInputError
from scenedreamer.representation.densify import DensifyConfig, densify_step
from scenedreamer.representation.gaussians import PARAM_NAMES, GaussianConfig, GaussianScene
from representation.scenes import default_scene, orbit_cameras, render_scene


@pytest.fixture(scope="module")
def two_views():
    cams = orbit_cameras([0.0, 20.0], 48, 32)
    return cams, render_scene(default_scene(), cams)


def psnr(a, b, mask):
    return float(-10 * torch.log10(((a - b)[mask] ** 2).mean()))


def test_from_views_reproduces_the_view(two_views):
    cams, r = two_views
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], GaussianConfig())
    assert scene.num_gaussians == int((r.hit[0] & (r.depth[0] > 0)).sum())
    with torch.no_grad():
        out = scene.render(cams[0])
    mask = r.hit[:1]
    assert psnr(out.rgb, r.rgb[:1], mask) > 24.0
    rel = ((out.depth - r.depth[:1]).abs() / r.depth[:1])[mask]
    assert float(rel.median()) < 0.05
    assert float(out.opacity[mask].mean()) > 0.97


def test_from_views_stride_and_invalid_pixels(two_views):
    cams, r = two_views
    valid = r.hit.clone()
    valid[:, :, :24] = False                                  # left half unknown
    scene = GaussianScene.from_views(r.rgb, r.depth, valid, cams, GaussianConfig(init_stride=2))
    assert scene.num_gaussians == int((valid & (r.depth > 0))[:, ::2, ::2].sum()) > 0
    with pytest.raises(InternalError, match="expected rgb"):
        GaussianScene.from_views(r.rgb[:1], r.depth, r.hit, cams, GaussianConfig())
    with pytest.raises(UserInputError, match="sh_degree"):
        GaussianConfig(sh_degree=4)


def test_render_contract_background_features_and_depth(two_views):
    cams, r = two_views
    cfg = GaussianConfig(feature_dim=5, sh_degree=2)
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], cfg)
    with torch.no_grad():
        scene.features.copy_(torch.arange(5.0).expand(scene.num_gaussians, 5))
        scene.opacity_logits[: scene.num_gaussians // 2] = -20.0       # half the scene transparent
        out = scene.render(cams, background=torch.tensor([0.0, 1.0, 0.0]))
        black = scene.render(cams)
    assert out.rgb.shape == (2, 32, 48, 3) and out.features.shape == (2, 32, 48, 5)
    assert out.depth.shape == out.opacity.shape == (2, 32, 48)
    expected_bg = (1 - out.opacity) * 1.0
    torch.testing.assert_close(out.rgb[..., 1] - black.rgb[..., 1], expected_bg, atol=1e-6, rtol=0)
    seen = out.opacity > 0.5
    torch.testing.assert_close(out.features[seen] / out.opacity[seen, None],
                               torch.arange(5.0).expand(int(seen.sum()), 5), atol=1e-4, rtol=0)
    assert (out.depth[out.opacity < cfg.depth_opacity_eps] == 0).all()
    assert (out.rgb >= 0).all() and (out.rgb <= 1 + 1e-6).all()


def test_fitting_steps_reduce_the_loss(two_views):
    cams, r = two_views
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], GaussianConfig(init_stride=2))
    opt = torch.optim.Adam(scene.param_groups())
    losses = []
    for _ in range(15):
        out = scene.render(cams[0])
        loss = (out.rgb - r.rgb[:1]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0]
    assert {g["name"] for g in opt.param_groups} == set(PARAM_NAMES)


def _scene_with_optimizer(n=6):
    cfg = GaussianConfig(densify=DensifyConfig(start_step=0, every=1, grad_threshold=1e-3,
                                               grow_scale_relative=0.1, prune_opacity=0.05,
                                               reset_opacity_every=0))
    means = torch.tensor([[float(i), 0.0, 5.0] for i in range(n)])
    scales = torch.tensor([0.05, 0.05, 2.0, 2.0, 0.05, 0.05])[:n]     # extent = 1.1 * 2.5 = 2.75
    opac = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.01, 0.5])[:n]
    scene = GaussianScene.from_points(means, torch.rand(n, 3), scales, cfg, opacities=opac)
    opt = torch.optim.Adam(scene.param_groups())
    for p in scene.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return scene, opt


def test_densify_duplicates_splits_prunes_and_keeps_the_optimizer_consistent():
    scene, opt = _scene_with_optimizer()
    # Gaussian 0 (small) and 2 (big) had large screen gradients; 4 is nearly transparent.
    scene.densify_state.grad2d_sum = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    scene.densify_state.count = torch.ones(6)
    old_big_scale = float(scene.scales[2, 0].detach())
    report = densify_step(scene, PARAM_NAMES, opt, scene.densify_state, scene.config.densify, step=1,
                          scene_extent=float(scene.scene_extent))
    assert (report.duplicated, report.split, report.pruned) == (1, 1, 1)
    assert scene.num_gaussians == 6 + 1 + 1 - 1
    # every optimizer group holds the module's current parameter, with state of matching shape
    params = {n: getattr(scene, n) for n in PARAM_NAMES}
    for group in opt.param_groups:
        p = group["params"][0]
        assert p is params[group["name"]]
        state = opt.state[p]
        assert state["exp_avg"].shape == p.shape and state["exp_avg_sq"].shape == p.shape
    # children of the split have scales / 1.6; new rows start with zero Adam moments
    assert torch.isclose(scene.scales[:, 0], torch.tensor(old_big_scale / 1.6)).sum() == 2
    assert (opt.state[scene.means]["exp_avg"].abs().sum(-1) == 0).sum() == 3
    assert scene.densify_state.grad2d_sum.shape == (7,)
    for p in scene.parameters():
        p.grad = torch.ones_like(p)
    opt.step()                                                          # still runs


def test_post_step_accumulates_render_gradients_and_follows_the_schedule(two_views):
    cams, r = two_views
    cfg = GaussianConfig(init_stride=4, densify=DensifyConfig(start_step=2, every=2, grad_threshold=0.0,
                                                                reset_opacity_every=0))
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], cfg)
    scene.train()
    opt = torch.optim.Adam(scene.param_groups())
    counts = []
    for step in range(3):
        out = scene.render(cams[0])
        loss = (out.rgb - r.rgb[:1]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        n_before = scene.num_gaussians
        scene.post_step(step, opt)
        counts.append((n_before, scene.num_gaussians))
    assert counts[0][0] == counts[0][1] and counts[1][0] == counts[1][1]     # before start_step
    grown = scene.last_densify.duplicated + scene.last_densify.split
    assert grown > 0 and counts[2][1] == counts[2][0] + grown - scene.last_densify.pruned
    out = scene.render(cams[0])                                         # renders after growth
    out.rgb.sum().backward()
    opt.step()


def test_reset_opacity_clamps_and_zeroes_its_state():
    scene, opt = _scene_with_optimizer()
    cfg = DensifyConfig(start_step=0, every=1000, reset_opacity_every=5, reset_opacity_value=0.01)
    report = densify_step(scene, PARAM_NAMES, opt, scene.densify_state, cfg, step=5,
                          scene_extent=float(scene.scene_extent))
    assert report.reset_opacity
    assert scene.opacities.max() <= 0.01 + 1e-6
    assert opt.state[scene.opacity_logits]["exp_avg"].abs().sum() == 0


def test_add_from_view_appends_new_pixels_and_grows_the_optimizer(two_views):
    cams, r = two_views
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], GaussianConfig(init_stride=2))
    opt = torch.optim.Adam(scene.param_groups())
    for p in scene.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    n0 = scene.num_gaussians
    new = torch.zeros(32, 48, dtype=torch.bool)
    new[:, 40:] = True
    added = scene.add_from_view(r.rgb[1], r.depth[1], new, cams[1], optimizer=opt)
    assert added == int((new[::2, ::2] & (r.depth[1][::2, ::2] > 0)).sum()) and scene.num_gaussians == n0 + added
    assert opt.state[scene.means]["exp_avg"].shape == (n0 + added, 3)
    assert opt.param_groups[0]["params"][0] is scene.means
    assert scene.add_from_view(r.rgb[1], r.depth[1], torch.zeros_like(new), cams[1]) == 0


def test_state_dict_round_trip_through_from_config(two_views):
    cams, r = two_views
    cfg = GaussianConfig(sh_degree=1, feature_dim=2, init_stride=3)
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], cfg)
    fresh = GaussianScene.from_config(cfg)
    assert fresh.num_gaussians == 0 and fresh.kind == "gaussians" and GaussianScene.config_class is GaussianConfig
    fresh.load_state_dict(scene.state_dict())
    for name in PARAM_NAMES:
        assert torch.equal(getattr(fresh, name), getattr(scene, name))
    assert math.isclose(float(fresh.scene_extent), float(scene.scene_extent))
    with torch.no_grad():
        torch.testing.assert_close(fresh.render(cams).rgb, scene.render(cams).rgb)


def test_empty_scene_renders_background_only():
    scene = GaussianScene.from_config(GaussianConfig(feature_dim=2))
    cams = orbit_cameras([0.0], 16, 12)
    out = scene.render(cams, background=torch.tensor([0.2, 0.3, 0.4]))
    assert out.rgb.shape == (1, 12, 16, 3) and out.features.shape == (1, 12, 16, 2)
    torch.testing.assert_close(out.rgb, torch.tensor([0.2, 0.3, 0.4]).expand(1, 12, 16, 3))
    assert out.opacity.abs().max() == 0 and out.depth.abs().max() == 0


def test_degree_0_colours_are_the_direction_formula_for_every_camera(two_views):
    """Degree 0 takes a shortcut (one colour per Gaussian, broadcast to the cameras): it must
    equal the general SH evaluation at each camera's view directions, gradients included."""
    from scenedreamer.representation.rasterize import eval_sh

    cams, r = two_views
    scene = GaussianScene.from_views(r.rgb[:1], r.depth[:1], r.hit[:1], cams[0], GaussianConfig(init_stride=4))
    assert scene.sh_coeffs.shape[-2] == 1
    fast = scene.colours(cams)
    dirs = torch.nn.functional.normalize(scene.means.unsqueeze(0) - cams.centers[:, None, :], dim=-1)
    general = eval_sh(scene.sh_coeffs.unsqueeze(0).expand(len(cams), -1, -1, -1), dirs).clamp(0.0, 1.0)
    assert fast.shape == general.shape == (len(cams), scene.num_gaussians, 3)
    torch.testing.assert_close(fast, general, atol=0, rtol=0)
    w = torch.rand(fast.shape, generator=torch.Generator().manual_seed(0))
    params = [p for p in scene.parameters() if p.requires_grad]
    g_fast = torch.autograd.grad((fast * w).sum(), params, allow_unused=True)
    g_general = torch.autograd.grad((general * w).sum(), params, allow_unused=True)
    assert any(g is not None for g in g_fast)
    for a, b in zip(g_fast, g_general):         # (unused: the means, through directions degree 0 ignores)
        a = torch.zeros_like(b) if a is None and b is not None else a
        b = torch.zeros_like(a) if b is None and a is not None else b
        if a is not None:
            torch.testing.assert_close(a, b)
