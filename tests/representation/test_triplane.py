"""Tri-plane NeRF: volume rendering vs numerical integrals, sampling, contraction, field twins."""

from __future__ import annotations

import math

import pytest
import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.representation.config import SamplingConfig
from scenedreamer.representation.sampling import (contract, depth_band_edges, importance_edges,
                                                  spacing_forward, spacing_inverse, stratified_edges)
from scenedreamer.representation.triplane import TriplaneConfig, TriplaneNeRF, bounds_from_views
from scenedreamer.representation.volume_rendering import (compositing_weights, distortion_loss,
                                                          distortion_loss_bruteforce, render_rays)

from .scenes import default_scene, make_views, orbit_cameras

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# ---------------------------------------------------------------- volume rendering vs integrals
def blob_field(center: torch.Tensor, amplitude: float, sigma: float):
    """Analytic Gaussian-blob density with a colour that varies along z."""
    def field(points: torch.Tensor):
        d2 = (points - center.to(points)).square().sum(-1)
        density = amplitude * torch.exp(-d2 / (2 * sigma * sigma))
        colour = torch.stack([torch.sigmoid(points[:, 2] - 2.0), torch.full_like(d2, 0.3),
                              0.5 + 0.4 * torch.sin(points[:, 0])], dim=-1)
        return density, colour, points[:, :2]  # features: the x, y coordinates
    return field


def reference_integral(field, origin, direction, near, far, steps=40_000):
    """Direct quadrature of C = int T(t) sigma(t) c(t) |d| dt, T = exp(-int sigma |d|), in float64."""
    t = torch.linspace(near, far, steps + 1, dtype=torch.float64)
    pts = origin.double()[None] + t[:, None] * direction.double()[None]
    density, colour, feats = field(pts)
    speed = float(direction.double().norm())
    dt = (far - near) / steps
    sig = density * speed
    tau = torch.cat([torch.zeros(1, dtype=torch.float64),
                     torch.cumsum(0.5 * (sig[1:] + sig[:-1]) * dt, 0)])
    w = torch.exp(-tau) * sig * dt                       # weight density times dt (rectangle rule)
    w[0] *= 0.5
    w[-1] *= 0.5
    opacity = 1 - math.exp(-float(tau[-1]))
    return (w[:, None] * colour).sum(0), float((w * t).sum() / opacity), opacity, (w[:, None] * feats).sum(0)


def test_volume_rendering_matches_direct_integral_on_gaussian_blob():
    center = torch.tensor([0.2, -0.1, 3.0])
    field = blob_field(center, amplitude=3.0, sigma=0.4)
    origins = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    directions = torch.tensor([[0.05, -0.02, 1.0], [0.0, 0.1, 1.0]])   # camera z = 1 convention
    config = SamplingConfig(near=0.5, far=6.0, linear_range=100.0, stratified_bins=2048, guided_edges=0)
    out = render_rays(origins.double(), directions.double(), field, config, scene_radius=1.0)
    for r in range(2):
        rgb, depth, opacity, feats = reference_integral(field, origins[r], directions[r], 0.5, 6.0)
        assert 0.3 < opacity < 0.999  # a partially transparent blob: a meaningful check
        assert out.opacity[r].item() == pytest.approx(opacity, abs=2e-4)
        torch.testing.assert_close(out.rgb[r], rgb, atol=2e-4, rtol=0)
        assert out.depth[r].item() == pytest.approx(depth, abs=2e-3)
        torch.testing.assert_close(out.features[r], feats, atol=2e-4, rtol=0)


def test_constant_slab_opacity_is_beer_lambert():
    sigma, length = 0.7, 1.3
    density = torch.full((1, 10), sigma)
    lengths = torch.full((1, 10), length / 10)
    w = compositing_weights(density, lengths)
    assert w.sum().item() == pytest.approx(1 - math.exp(-sigma * length), rel=1e-6)
    # Transmittance before bin k is exp(-sigma * k * dl): the weights form a geometric sequence.
    ratios = w[0, 1:] / w[0, :-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, math.exp(-sigma * length / 10)))


def test_opaque_wall_gives_its_depth_and_background_behind_nothing():
    def wall(points):  # dense slab at z in [2, 2.05]
        inside = ((points[:, 2] > 2.0) & (points[:, 2] < 2.05)).to(points.dtype)
        return inside * 2000.0, torch.ones_like(points) * 0.25, torch.zeros(points.shape[0], 0)
    o = torch.zeros(2, 3)
    d = torch.tensor([[0.0, 0.0, 1.0], [0.3, 0.2, 1.0]])
    cfg = SamplingConfig(near=0.1, far=10.0, linear_range=100.0, stratified_bins=64, guided_edges=32)
    out = render_rays(o, d, wall, cfg, 1.0, depth_hint=torch.tensor([2.02, 2.02]),
                      background=torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(out.opacity, torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.depth, torch.full((2,), 2.0), atol=0.03, rtol=0)
    torch.testing.assert_close(out.rgb, torch.full((2, 3), 0.25), atol=1e-3, rtol=0)
    empty = render_rays(o, d, lambda p: (torch.zeros(p.shape[0]), torch.zeros_like(p), torch.zeros(p.shape[0], 0)),
                        cfg, 1.0, background=torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(empty.rgb, torch.tensor([[1.0, 0.0, 0.0]] * 2))
    assert (empty.depth == 0).all() and (empty.opacity == 0).all()


def test_fast_distortion_loss_matches_bruteforce():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(5, 12, generator=g) / 12
    edges = torch.sort(torch.rand(5, 13, generator=g), dim=-1).values
    torch.testing.assert_close(distortion_loss(w, edges), distortion_loss_bruteforce(w, edges))


# ---------------------------------------------------------------- contraction and spacing
def test_contraction_properties():
    g = torch.Generator().manual_seed(1)
    inner = (torch.rand(200, 3, generator=g) * 2 - 1) * 0.99
    inner = inner / inner.abs().amax(-1, keepdim=True).clamp_min(1.0)
    for norm in ("inf", "l2"):
        x = inner if norm == "inf" else inner / inner.norm(dim=-1, keepdim=True).clamp_min(1.0)
        torch.testing.assert_close(contract(x, norm), x)                       # identity inside
        far = torch.randn(500, 3, generator=g) * 1e4
        c = contract(far, norm)
        mag = c.abs().amax(-1) if norm == "inf" else c.norm(dim=-1)
        assert (mag < 2.0).all() and (mag > 1.99).all()                        # infinity -> radius 2
        # Monotone and continuous along a ray from the origin.
        direction = torch.randn(3, generator=g)
        s = torch.linspace(0.0, 50.0, 5001)[:, None] * direction
        cm = contract(s, norm)
        r = cm.abs().amax(-1) if norm == "inf" else cm.norm(dim=-1)
        assert (r[1:] >= r[:-1] - 1e-6).all()
        assert (cm[1:] - cm[:-1]).norm(dim=-1).max() < 0.05


def test_spacing_round_trip_and_stratified_edges_cover_range():
    t = torch.tensor([0.01, 0.5, 1.0, 3.0, 100.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(spacing_inverse(spacing_forward(t, 2.0), 2.0), t)
    g = torch.Generator().manual_seed(0)
    e = stratified_edges(7, 16, 0.1, 500.0, 2.0, g, torch.device("cpu"), torch.float32, jitter=True)
    assert e.shape == (7, 17)
    assert (e[:, 1:] >= e[:, :-1]).all()
    torch.testing.assert_close(e[:, 0], torch.full((7,), 0.1))
    torch.testing.assert_close(e[:, -1], torch.full((7,), 500.0), rtol=1e-4, atol=0)
    # Linear-then-disparity spacing: at least half the edges lie within the linear range.
    assert ((e <= 2.0).float().mean() > 0.4)


def test_depth_guided_sampling_concentrates_near_hint():
    hint = torch.tensor([1.5, 4.0, 9.0, 0.0])
    cfg = SamplingConfig(near=0.05, far=100.0, stratified_bins=16, guided_edges=32, guide_relative_width=0.04)
    from scenedreamer.representation.volume_rendering import place_edges
    field = lambda p: (torch.zeros(p.shape[0]), torch.zeros_like(p), torch.zeros(p.shape[0], 0))  # noqa: E731
    g = torch.Generator().manual_seed(0)
    o = torch.zeros(4, 3)
    d = torch.tensor([[0.0, 0.0, 1.0]] * 4)
    edges = place_edges(o, d, hint, field, cfg, scene_radius=1.0, generator=g, jitter=True)
    for r in range(3):
        near_surface = ((edges[r] - hint[r]).abs() <= 0.1 * hint[r]).float().mean()
        assert near_surface > 0.6, f"ray {r}: only {near_surface:.2f} of edges near the hint"
    band = depth_band_edges(hint[:3], 16, 0.04, 0.0, 0.0, 100.0, g, jitter=True)
    assert ((band - hint[:3, None]).abs() <= 0.04 * hint[:3, None] + 1e-6).all()


def test_importance_sampling_follows_weights():
    edges = torch.linspace(0, 10, 11).expand(2, -1).contiguous()
    w = torch.zeros(2, 10)
    w[0, 3] = 1.0
    w[1, 7] = 0.5
    g = torch.Generator().manual_seed(0)
    new = importance_edges(edges, w, 64, g, jitter=True, blur_floor=0.0)
    assert ((new[0] >= 3) & (new[0] <= 4)).all()
    assert ((new[1] >= 7) & (new[1] <= 8)).all()
    assert (new[:, 1:] >= new[:, :-1]).all()


# ---------------------------------------------------------------- the field and render()
@pytest.mark.parametrize("combine", ["sum", "concat"])
def test_fused_plane_sampling_matches_reference(combine):
    model = TriplaneNeRF(TriplaneConfig(resolution=9, channels=3, combine=combine), seed=3)
    coords = torch.rand(300, 3, generator=torch.Generator().manual_seed(0)) * 2.2 - 1.1  # incl. border
    fast = model.field.plane_features(coords)
    slow = model.field.plane_features_reference(coords)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)
    gf, = torch.autograd.grad(fast.square().sum(), model.field.planes)
    gs, = torch.autograd.grad(slow.square().sum(), model.field.planes)
    torch.testing.assert_close(gf, gs, atol=1e-5, rtol=1e-4)


def test_render_shapes_chunking_and_determinism():
    cfg = TriplaneConfig(resolution=16, channels=4, feature_dim=5)
    model = TriplaneNeRF(cfg, seed=0).eval()
    K = intrinsics_from_fov(60, 12, 10)
    cams = Cameras(K.expand(2, 3, 3), torch.eye(4).expand(2, 4, 4).clone(), 12, 10)
    with torch.no_grad():
        a = model.render(cams)
        small = TriplaneNeRF(cfg.__class__(**{**cfg.__dict__,
                                              "sampling": SamplingConfig(render_chunk_rays=37)}), seed=0).eval()
        b = small.render(cams)
    assert a.rgb.shape == (2, 10, 12, 3) and a.depth.shape == (2, 10, 12)
    assert a.opacity.shape == (2, 10, 12) and a.features.shape == (2, 10, 12, 5)
    torch.testing.assert_close(a.rgb, b.rgb)
    torch.testing.assert_close(a.depth, b.depth)
    assert ((a.rgb >= 0) & (a.rgb <= 1)).all() and ((a.opacity >= 0) & (a.opacity <= 1 + 1e-6)).all()


def test_render_is_differentiable_and_param_groups_cover_all_parameters():
    model = TriplaneNeRF(TriplaneConfig(resolution=8, channels=2, feature_dim=2))
    cams = Cameras(intrinsics_from_fov(60, 6, 6), torch.eye(4), 6, 6)
    out = model.render(cams, depth_hint=torch.full((1, 6, 6), 1.0))
    (out.rgb.sum() + out.depth.sum() + out.features.sum()).backward()
    assert model.field.planes.grad.abs().sum() > 0
    grouped = {id(p) for g in model.param_groups() for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}


def test_bounds_from_views_cover_the_content():
    views = make_views(default_scene(), orbit_cameras([0, 90, 180, 270], 16, 16))
    b = bounds_from_views(views)
    center = torch.tensor(b.center)
    assert (center - torch.tensor([0.0, 0.5, 4.0])).norm() < 1.5
    assert 1.0 < b.radius < 10.0


@CUDA
def test_cuda_render_matches_cpu():
    cfg = TriplaneConfig(resolution=16, channels=4, feature_dim=3)
    cpu = TriplaneNeRF(cfg, seed=0).eval()
    gpu = TriplaneNeRF(cfg, device="cuda", seed=0).eval()
    cams = orbit_cameras([0.0], 8, 8)
    with torch.no_grad():
        a, b = cpu.render(cams), gpu.render(cams.to("cuda"))
    torch.testing.assert_close(b.rgb.cpu(), a.rgb, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(b.depth.cpu(), a.depth, atol=1e-3, rtol=1e-4)
