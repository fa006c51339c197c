"""The tile rasterizer against its brute-force twin (values and gradients), the EWA projection
against an independent finite-difference Jacobian, and backend selection."""

from __future__ import annotations

import warnings

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.geometry.projection import project_points
from scenedreamer.representation.rasterize import (RasterConfig, covariance_3d, eval_sh, project_gaussians,
                                                   rasterize, rasterize_reference, rasterize_torch,
                                                   rgb_to_sh0, select_backend)
from scenedreamer.representation.rasterize import backends as backends_module


def random_scene(n: int, seed: int, channels: int = 4, spread: float = 0.5, max_opacity: float = 0.95):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * spread + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.2 + 0.02
    opac = torch.rand(n, generator=g) * (max_opacity - 0.05) + 0.05
    values = torch.rand(1, n, channels, generator=g)
    return means, quats, scales, opac, values


def camera(width: int, height: int, c2w: torch.Tensor | None = None) -> Cameras:
    return Cameras(intrinsics_from_fov(60.0, width, height), torch.eye(4) if c2w is None else c2w, width, height)


def render_with_grads(fn, params, cams, config):
    leaves = [p.clone().requires_grad_() for p in params]
    out = fn(*leaves, cams, config)
    w = torch.linspace(0.2, 1.0, out.values.shape[-1])
    loss = (out.values * w).sum() + 0.3 * out.depth.sum() + (out.alpha ** 2).sum()
    loss.backward()
    return out, [p.grad for p in leaves]


@pytest.mark.parametrize("seed,tile_size,chunk", [(0, 16, 64), (1, 8, 4), (2, 8, 7)])
def test_tile_rasterizer_matches_brute_force_values_and_gradients(seed, tile_size, chunk):
    params = random_scene(50, seed)
    cams = camera(32, 24)
    config = RasterConfig(tile_size=tile_size, depth_chunk=chunk)
    fast, g_fast = render_with_grads(rasterize_torch, params, cams, config)
    slow, g_slow = render_with_grads(rasterize_reference, params, cams, config)
    assert fast.alpha.max() > 0.5                          # the scene is actually visible
    torch.testing.assert_close(fast.values, slow.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.depth, slow.depth, atol=1e-5 * 5, rtol=0)  # z ~ 3: 1e-5 relative
    torch.testing.assert_close(fast.alpha, slow.alpha, atol=1e-5, rtol=0)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "values"], g_fast, g_slow):
        scale = b.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() / scale < 1e-4, name


def test_early_termination_matches_reference_on_opaque_stack():
    # 40 nearly opaque, large Gaussians on top of each other: pixels saturate after a few.
    n = 40
    g = torch.Generator().manual_seed(3)
    means = torch.randn(n, 3, generator=g) * 0.05 + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.full((n, 3), 1.5)
    opac = torch.full((n,), 0.97)
    values = torch.rand(1, n, 3, generator=g)
    config = RasterConfig(depth_chunk=4)
    fast, g_fast = render_with_grads(rasterize_torch, (means, quats, scales, opac, values), camera(32, 24), config)
    slow, g_slow = render_with_grads(rasterize_reference, (means, quats, scales, opac, values), camera(32, 24), config)
    assert fast.alpha[0, 8:16, 12:20].min() > 0.999              # saturated centre
    torch.testing.assert_close(fast.values, slow.values, atol=1e-5, rtol=0)
    for a, b in zip(g_fast, g_slow):
        assert (a - b).abs().max() / b.abs().max().clamp_min(1.0) < 1e-4


def test_multi_camera_batch_and_means2d_gradient():
    params = random_scene(30, 4)
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, 0, 3] = 0.2
    cams = Cameras(intrinsics_from_fov(60.0, 32, 24).repeat(2, 1, 1), c2w, 32, 24)
    leaves = [p.clone().requires_grad_() for p in params[:4]] + [params[4].repeat(2, 1, 1).requires_grad_()]
    out = rasterize(*leaves, cams, RasterConfig())
    out.means2d.retain_grad()
    out.values.sum().backward()
    assert out.values.shape == (2, 24, 32, 4) and out.means2d.shape == (2, 30, 2)
    assert out.means2d.grad is not None and out.means2d.grad[out.visible].abs().sum() > 0
    single = rasterize_torch(*[p.detach() for p in params], cams[1], RasterConfig())
    torch.testing.assert_close(out.values[1:].detach(), single.values)


def test_empty_and_invisible_scenes_render_nothing():
    cams = camera(20, 12)
    empty = rasterize_torch(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
                            torch.zeros(1, 0, 3), cams, RasterConfig())
    assert empty.values.shape == (1, 12, 20, 3) and empty.alpha.abs().max() == 0
    behind = random_scene(10, 5)
    behind = (behind[0] - torch.tensor([0.0, 0.0, 10.0]),) + behind[1:]
    out = rasterize_torch(*behind, cams, RasterConfig())
    assert out.alpha.abs().max() == 0 and not out.visible.any()


def test_ewa_covariance_matches_finite_difference_jacobian():
    # Independent formula: cov2d = J_fd Sigma J_fd^T + blur, J_fd = d pixel / d world point by
    # central differences of the plain pinhole projection (geometry.project_points).
    torch.manual_seed(0)
    n = 6
    means = (torch.randn(n, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])).double()
    quats, scales = torch.randn(n, 4).double(), (torch.rand(n, 3) * 0.1 + 0.05).double()
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 3] = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    cams = Cameras(intrinsics_from_fov(50.0, 40, 30, dtype=torch.float64), c2w, 40, 30)
    config = RasterConfig(blur_2d=0.3)
    proj = project_gaussians(means, quats, scales, torch.full((n,), 0.9, dtype=torch.float64), cams.K[0],
                             cams.w2c[0], 40, 30, config)
    h = 1e-6
    J = torch.zeros(n, 2, 3, dtype=torch.float64)
    for k in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[k] = h
        up, _ = project_points(means + d, cams)
        dn, _ = project_points(means - d, cams)
        J[:, :, k] = (up[0] - dn[0]) / (2 * h)
    cov = J @ covariance_3d(quats, scales) @ J.transpose(1, 2) + 0.3 * torch.eye(2, dtype=torch.float64)
    expected = torch.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]], -1)
    torch.testing.assert_close(proj.cov2d, expected, rtol=1e-6, atol=1e-8)
    uv, z = project_points(means, cams)
    torch.testing.assert_close(proj.means2d, uv[0])
    torch.testing.assert_close(proj.depths, z[0])
    conic = torch.linalg.inv(cov)
    torch.testing.assert_close(proj.conics, torch.stack([conic[:, 0, 0], conic[:, 0, 1], conic[:, 1, 1]], -1),
                               rtol=1e-6, atol=1e-8)


def test_projection_gradients_pass_gradcheck():
    torch.manual_seed(1)
    n = 4
    means = (torch.randn(n, 3) * 0.3 + torch.tensor([0.0, 0.0, 3.0])).double().requires_grad_()
    quats = torch.randn(n, 4).double().requires_grad_()
    scales = (torch.rand(n, 3) * 0.1 + 0.05).double().requires_grad_()
    K = intrinsics_from_fov(50.0, 40, 30, dtype=torch.float64)
    w2c = torch.eye(4, dtype=torch.float64)

    def f(m, q, s):
        p = project_gaussians(m, q, s, torch.full((n,), 0.9, dtype=torch.float64), K, w2c, 40, 30, RasterConfig())
        return p.means2d, p.conics, p.depths

    assert torch.autograd.gradcheck(f, (means, quats, scales))


def test_extent_box_contains_every_pixel_above_alpha_min():
    # The tile lists are built from the extents: a pixel outside the box must have alpha < alpha_min.
    params = random_scene(30, 6)
    cfg = RasterConfig()
    cams = camera(32, 24)
    proj = project_gaussians(*params[:4], cams.K[0], cams.w2c[0], 32, 24, cfg)
    grid = torch.stack(torch.meshgrid(torch.arange(-40, 40) + 0.5, torch.arange(-40, 40) + 0.5, indexing="xy"), -1)
    for i in proj.visible.nonzero().squeeze(1).tolist():
        d = grid.reshape(-1, 2)
        a, b, c = proj.conics[i]
        q = a * d[:, 0] ** 2 + 2 * b * d[:, 0] * d[:, 1] + c * d[:, 1] ** 2
        alpha = params[3][i] * torch.exp(-0.5 * q)
        outside = (d[:, 0].abs() > proj.extents[i, 0] + 1e-4) | (d[:, 1].abs() > proj.extents[i, 1] + 1e-4)
        assert (alpha[outside] < cfg.alpha_min).all()


def test_sh_degree0_gives_stored_colour_and_higher_degrees_vary_with_direction():
    rgb = torch.tensor([[0.2, 0.5, 0.9]])
    coeffs = torch.zeros(1, 16, 3)
    coeffs[:, 0] = rgb_to_sh0(rgb)
    dirs = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    torch.testing.assert_close(eval_sh(coeffs[:, :1].expand(5, -1, -1), dirs), rgb.expand(5, 3))
    coeffs[:, 1:] = 0.1
    out = eval_sh(coeffs.expand(5, -1, -1), dirs)
    assert (out - rgb).abs().max() > 1e-3
    # degree-1 term is linear in the direction: f(d) + f(-d) = 2 * DC colour
    c1 = coeffs[:, :4].expand(5, -1, -1)
    torch.testing.assert_close(eval_sh(c1, dirs) + eval_sh(c1, -dirs), 2 * rgb.expand(5, 3))


def test_backend_selection(monkeypatch):
    assert select_backend("auto", torch.device("cpu")) == "torch"
    assert select_backend("torch", torch.device("cuda")) == "torch"
    with pytest.raises(UserInputError, match="CUDA"):
        select_backend("gsplat", torch.device("cpu"))
    with pytest.raises(UserInputError, match="unknown"):
        select_backend("vulkan", torch.device("cpu"))
    monkeypatch.setattr(backends_module, "gsplat_available", lambda: False)
    monkeypatch.setattr(backends_module, "_warned_missing_gsplat", False)
    with pytest.warns(RuntimeWarning, match="gsplat is not installed"):
        assert select_backend("auto", torch.device("cuda")) == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # warned once only
        assert select_backend("auto", torch.device("cuda")) == "torch"
    monkeypatch.setattr(backends_module, "gsplat_available", lambda: True)
    assert select_backend("auto", torch.device("cuda")) == "gsplat"


def _gsplat_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    from scenedreamer.representation.rasterize.gsplat_backend import gsplat_available
    return gsplat_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _gsplat_ready(), reason="needs CUDA and gsplat")
def test_gsplat_matches_torch_backend():
    device = torch.device("cuda")
    params = [p.to(device) for p in random_scene(200, 7, channels=3)]
    cams = camera(64, 48).to(device)
    ours = rasterize_torch(*params, cams, RasterConfig(backend="torch"))
    theirs = rasterize(*params, cams, RasterConfig(backend="gsplat"))
    # gsplat bounds tiles by its own (3-sigma / opacity-aware) radius, so a few faint fringe
    # pixels differ; the images agree closely everywhere.
    assert (ours.values - theirs.values).abs().mean() < 2e-3
    assert (ours.alpha - theirs.alpha).abs().mean() < 2e-3
    assert (ours.depth - theirs.depth).abs().mean() < 1e-2


@pytest.mark.parametrize("radii_shape", ["per_axis", "scalar"])
def test_gsplat_backend_maps_arguments_and_outputs(monkeypatch, radii_shape):
    # gsplat is CUDA-only. A stand-in records what our wrapper passes and returns distinctive
    # tensors in gsplat's output layout ("RGB+D": colours with the accumulated depth appended,
    # alphas (C,H,W,1), info["radii"] (C,N,2) in gsplat >= 1.4, (C,N) before); the wrapper must
    # pass world-to-camera matrices and our settings and map every output back to its field.
    import sys
    import types

    from scenedreamer.representation.rasterize.gsplat_backend import rasterize_gsplat

    params = random_scene(30, 8, channels=5)
    cams = camera(32, 24)
    B, N, H, W, C = len(cams), 30, 24, 32, 5
    gen = torch.Generator().manual_seed(3)
    colours = torch.rand(B, H, W, C + 1, generator=gen)
    alphas = torch.rand(B, H, W, 1, generator=gen)
    means2d = torch.rand(B, N, 2, generator=gen)
    on = torch.randint(0, 2, (B, N), generator=gen) * 2                 # about half the Gaussians have a radius
    radii = torch.stack([on, torch.zeros_like(on)], -1)                  # gsplat >= 1.4: (C, N, 2)
    if radii_shape == "scalar":
        radii = radii[..., 0]
    seen = {}

    def stand_in(**kwargs):
        seen.update(kwargs)
        return colours, alphas, {"means2d": means2d, "radii": radii}

    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=stand_in))
    config = RasterConfig()
    out = rasterize_gsplat(*params, cams, config)
    torch.testing.assert_close(seen["viewmats"], cams.w2c)
    torch.testing.assert_close(seen["Ks"], cams.K)
    assert (seen["width"], seen["height"]) == (W, H)
    assert seen["render_mode"] == "RGB+D" and seen["packed"] is False and seen["sh_degree"] is None
    assert seen["eps2d"] == config.blur_2d and seen["near_plane"] == config.near_plane
    assert seen["colors"] is params[4]
    assert torch.equal(out.values, colours[..., :C]) and torch.equal(out.depth, colours[..., C])
    assert torch.equal(out.alpha, alphas[..., 0]) and out.means2d is means2d
    expected_visible = (radii.reshape(B, N, -1) > 0).any(-1)
    assert torch.equal(out.visible, expected_visible) and 0 < int(expected_visible.sum()) < B * N


def _patch_cameras() -> Cameras:
    """Three small 'patch' cameras looking at different parts of a wide scene (as a fitting
    step's patches do), so each sees only some of the Gaussians and some are behind them."""
    c2ws = []
    for yaw in (-0.6, 0.0, 0.9):
        c, s = torch.cos(torch.tensor(yaw)), torch.sin(torch.tensor(yaw))
        c2w = torch.eye(4)
        c2w[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        c2ws.append(c2w)
    return Cameras(intrinsics_from_fov(25.0, 12, 10).expand(3, 3, 3).clone(), torch.stack(c2ws), 12, 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_projecting_only_the_visible_gaussians_matches_projecting_all(seed):
    """The fast path (autograd only for the Gaussians a camera sees) against its slow twin:
    the same images, the same densification centres and visibility, the same gradients."""
    from scenedreamer.representation.rasterize.torch_backend import rasterize_with
    from scenedreamer.representation.rasterize.tiles import composite_tiles

    means, quats, scales, opac, values = random_scene(300, seed, spread=2.0)
    values = values.expand(3, -1, -1).contiguous()
    cams = _patch_cameras()
    config = RasterConfig()

    def run(project_all):
        leaves = [p.clone().requires_grad_() for p in (means, quats, scales, opac, values)]
        out = rasterize_with(composite_tiles, *leaves, cams, config, project_all=project_all)
        out.means2d.retain_grad()
        w = torch.linspace(0.2, 1.0, out.values.shape[-1])
        ((out.values * w).sum() + 0.3 * out.depth.sum() + (out.alpha ** 2).sum()
         + 0.01 * out.means2d[out.visible].sum()).backward()
        return out, [p.grad for p in leaves]

    fast, g_fast = run(False)
    slow, g_slow = run(True)
    seen = fast.visible.sum(dim=1)
    assert (seen > 0).all() and (seen < 300).all(), seen          # each camera sees some, not all
    assert torch.equal(fast.visible, slow.visible)
    torch.testing.assert_close(fast.values, slow.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.depth, slow.depth, atol=5e-5, rtol=0)
    torch.testing.assert_close(fast.alpha, slow.alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.means2d, slow.means2d, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast.means2d.grad, slow.means2d.grad, atol=1e-5, rtol=0)
    for name, a, b in zip(["means", "quats", "scales", "opacities", "values"], g_fast, g_slow):
        scale = b.abs().max().clamp_min(1.0)
        assert (a - b).abs().max() / scale < 1e-4, name
