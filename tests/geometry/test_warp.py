"""Forward / soft / backward warps: twin agreement, identity, round trip, no rubber sheets, gradients."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov, look_at
from scenedreamer.geometry.warp import (ForwardWarpConfig, SoftWarpConfig, backward_warp, forward_warp,
                                        soft_forward_warp)
from scenedreamer.geometry.warp_reference import forward_warp_reference

F64 = torch.float64


def make_cams(eyes, targets, W, H, fov=60.0, dtype=F64) -> Cameras:
    c2w = look_at(torch.tensor(eyes, dtype=dtype), torch.tensor(targets, dtype=dtype))
    if c2w.ndim == 2:
        c2w = c2w[None]
    K = intrinsics_from_fov(fov, W, H, dtype=dtype).expand(c2w.shape[0], 3, 3).clone()
    return Cameras(K, c2w, W, H)


def identity_cams(B, W, H, dtype=F64) -> Cameras:
    return make_cams([[0.0, 0.0, 0.0]] * B, [[0.0, 0.0, 1.0]] * B, W, H, dtype=dtype)


def random_view(B, H, W, seed, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(B, H, W, 3, generator=g, dtype=dtype)
    depth = 2.0 + torch.rand(B, H, W, generator=g, dtype=dtype)
    depth[:, :, W // 2:] += 2.0                                       # a depth edge down the middle
    return rgb, depth


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("cfg", [ForwardWarpConfig(), ForwardWarpConfig(fill_cracks=False),
                                 ForwardWarpConfig(drop_depth_edges=True), ForwardWarpConfig(sight_clearance=2.0),
                                 ForwardWarpConfig(sight_clearance=0.5)])
def test_forward_warp_matches_per_pixel_loop_twin(seed, cfg):
    H, W = 9, 12
    rgb, depth = random_view(2, H, W, seed)
    g = torch.Generator().manual_seed(50 + seed)
    eyes = (torch.rand(2, 3, generator=g, dtype=F64) - 0.5) * 0.6
    targets = torch.tensor([[0.3, 0.1, 3.0], [-0.4, 0.05, 3.0]], dtype=F64)
    src = identity_cams(2, W, H)
    dst = make_cams(eyes.tolist(), targets.tolist(), 14, 10, fov=55.0)   # another size and FOV
    valid = torch.rand(2, H, W, generator=g) > 0.1
    fast = forward_warp(rgb, depth, src, dst, valid=valid, config=cfg)
    slow = forward_warp_reference(rgb, depth, src, dst, valid=valid, config=cfg)
    assert fast.valid.any()
    assert torch.equal(fast.valid, slow.valid)
    assert torch.allclose(fast.rgb, slow.rgb, atol=1e-12)
    assert torch.allclose(fast.depth, slow.depth, atol=1e-9)


def test_identity_warp_returns_the_image():
    rgb, depth = random_view(2, 16, 20, seed=0, dtype=torch.float32)
    cams = identity_cams(2, 20, 16, dtype=torch.float32)
    out = forward_warp(rgb, depth, cams, cams)
    assert out.valid.all()
    assert torch.equal(out.rgb, rgb)
    assert torch.allclose(out.depth, depth, rtol=1e-6)
    soft = soft_forward_warp(rgb, depth, cams, cams)
    assert soft.valid.all()
    assert torch.allclose(soft.rgb, rgb, atol=1e-4)
    assert torch.allclose(soft.depth, depth, rtol=1e-4)
    back = backward_warp(rgb, depth, cams, cams)
    assert back.valid.all() and torch.allclose(back.rgb, rgb, atol=1e-5)


def test_invalid_source_pixels_are_not_splatted():
    rgb, depth = random_view(1, 8, 8, seed=1)
    cams = identity_cams(1, 8, 8)
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[0, 2:6, 2:6] = False
    out = forward_warp(rgb, depth, cams, cams, valid=valid)
    assert torch.equal(out.valid, valid)
    assert (out.rgb[~out.valid] == 0).all() and (out.depth[~out.valid] == 0).all()


def test_warp_then_warp_back_recovers_visible_pixels():
    H, W = 40, 48
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(1, H, W, 3, generator=g, dtype=F64)
    y = torch.linspace(-1, 1, H, dtype=F64)[:, None]
    depth = (3.0 + 0.3 * y + 0.2 * torch.sin(torch.linspace(0, 3, W, dtype=F64))[None]).expand(H, W)[None].clone()
    src = identity_cams(1, W, H)
    dst = make_cams([[0.15, -0.05, 0.1]], [[0.25, 0.0, 3.0]], W, H)
    there = forward_warp(rgb, depth, src, dst)
    back = forward_warp(there.rgb, there.depth, dst, src, valid=there.valid)
    both = back.valid
    assert both.float().mean() > 0.6                     # most of the image survives the round trip
    err = (back.rgb - rgb).abs().amax(-1)[both]
    # nearest-pixel splatting may move a pixel by one; a clear majority lands exactly home
    assert (err < 1e-12).float().mean() > 0.5
    assert torch.allclose(back.depth[both], depth[both], rtol=0.02)
    # backward warp with the true target depth also recovers the source colours
    bw = backward_warp(there.rgb, depth, dst, src, dst_valid=None, src_depth=None)
    assert bw.valid.float().mean() > 0.6


def test_depth_edge_leaves_a_hole_not_a_rubber_sheet():
    H, W = 24, 32
    rgb = torch.zeros(1, H, W, 3, dtype=F64)
    rgb[..., :W // 2, 0] = 1.0                            # near half red
    rgb[..., W // 2:, 2] = 1.0                            # far half blue
    depth = torch.full((1, H, W), 8.0, dtype=F64)
    depth[..., :W // 2] = 2.0
    src = identity_cams(1, W, H)
    dst = make_cams([[0.4, 0.0, 0.0]], [[0.4, 0.0, 1.0]], W, H)   # step right: background disoccluded
    # without the line-of-sight rule (the default; tested below), which would also open the leading edge
    out = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(sight_clearance=None))
    row = out.valid[0, H // 2]
    # near content shifts left by f*b/z ~ 5.5 px, far content by ~1.4 px: a gap of ~4 px opens
    holes = (~row).nonzero().flatten()
    holes = holes[holes < W - 3]                          # the right border has simply no content
    assert len(holes) >= 3
    assert holes.max() - holes.min() + 1 == len(holes)    # one contiguous hole at the edge...
    assert W // 2 - 8 <= int(holes.min()) and int(holes.max()) <= W // 2 + 2
    # ...and nothing in it: no colour mixing across the edge, every valid pixel is pure red or blue
    colours = out.rgb[out.valid]
    assert ((colours[:, 0] == 1) ^ (colours[:, 2] == 1)).all()


@pytest.mark.parametrize("clearance", [1.0, 2.0, 4.0])
def test_far_backdrop_is_not_carried_over_space_the_source_never_saw(clearance):
    # A sideways step beside a far wall (the sky of a walk): the target's leading edge sees the
    # wall through space that lay outside the source's view. With a sideways shift b the point at
    # z-depth z on target column u lands in the source at u + f b / z, so the wall (z = 50) is in
    # the source's image for u + f b / 50 < W, and its line of sight from z = clearance for
    # u + f b / clearance < W: the columns between carry a wall that something nearer may hide.
    H, W, b, far = 8, 64, 0.3, 50.0
    rgb = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    depth = torch.full((1, H, W), far, dtype=F64)
    src = identity_cams(1, W, H)
    dst = make_cams([[b, 0.0, 0.0]], [[b, 0.0, 1.0]], W, H)
    f = float(src.K[0, 0, 0])
    centres = torch.arange(W, dtype=F64) + 0.5
    wall_seen = centres + f * b / far < W
    sight_seen = centres + f * b / clearance < W
    assert (wall_seen & ~sight_seen).sum() >= 3                   # the rule has columns to drop
    plain = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(sight_clearance=None))
    ruled = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(sight_clearance=clearance))
    assert torch.equal(plain.valid[0].all(0), wall_seen)         # the plain warp carries the wall there
    assert torch.equal(ruled.valid[0].all(0), sight_seen)
    assert not ruled.valid[0, :, ~sight_seen].any()
    kept = ruled.valid
    assert torch.equal(ruled.rgb[kept], plain.rgb[kept]) and torch.equal(ruled.depth[kept], plain.depth[kept])
    assert (ruled.rgb[~kept] == 0).all() and (ruled.depth[~kept] == 0).all()


def test_line_of_sight_rule_keeps_everything_when_the_camera_only_turns_or_steps_forward():
    # Turning in place: every ray starts at the source's own centre, so a surface the source saw is
    # seen along its whole line of sight. Stepping forward along the axis: the target's rays all
    # start inside the source's view and stay in it.
    H, W = 12, 16
    rgb, depth = random_view(1, H, W, seed=7)
    src = identity_cams(1, W, H)
    turned = make_cams([[0.0, 0.0, 0.0]], [[0.3, 0.1, 1.0]], W, H)
    forward = make_cams([[0.0, 0.0, 0.5]], [[0.0, 0.0, 2.0]], W, H)
    for dst in (turned, forward):
        plain = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(sight_clearance=None))
        ruled = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(sight_clearance=0.5))   # depth 2-5
        assert plain.valid.any()
        assert torch.equal(plain.valid, ruled.valid)


def test_magnification_cracks_are_filled():
    H, W = 30, 30
    rgb, _ = random_view(1, H, W, seed=4)
    depth = torch.full((1, H, W), 3.0, dtype=F64)
    src = identity_cams(1, W, H)
    dst = make_cams([[0.0, 0.0, 0.6]], [[0.0, 0.0, 3.0]], W, H)   # move closer: 1.25x magnification
    raw = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(fill_cracks=False))
    filled = forward_warp(rgb, depth, src, dst)
    inner = (slice(None), slice(3, -3), slice(3, -3))
    assert not raw.valid[inner].all()                     # splatting alone leaves cracks
    assert filled.valid[inner].all()                      # one fill pass closes them
    assert torch.allclose(filled.depth[inner], torch.full_like(filled.depth[inner], 2.4), atol=1e-9)


def test_soft_warp_gradients_reach_colour_and_depth():
    H, W = 10, 12
    rgb, depth = random_view(1, H, W, seed=5, dtype=torch.float32)
    rgb.requires_grad_(True)
    depth.requires_grad_(True)
    src = identity_cams(1, W, H, dtype=torch.float32)
    dst = make_cams([[0.1, 0.02, 0.0]], [[0.2, 0.0, 3.0]], W, H, dtype=torch.float32)
    out = soft_forward_warp(rgb, depth, src, dst)
    assert out.valid.float().mean() > 0.5
    loss = (out.rgb * torch.linspace(0, 1, 3)).sum() + out.depth.sum()
    loss.backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0
    assert depth.grad is not None and depth.grad.abs().sum() > 0
    assert torch.isfinite(rgb.grad).all() and torch.isfinite(depth.grad).all()


def test_soft_warp_depth_gradient_matches_finite_differences():
    H, W = 6, 7
    rgb, depth = random_view(1, H, W, seed=6)
    src = identity_cams(1, W, H)
    dst = make_cams([[0.07, 0.03, 0.05]], [[0.1, 0.0, 3.0]], W, H)
    cfg = SoftWarpConfig(depth_sharpness=5.0)
    weights = torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(1), dtype=F64)

    def f(d):
        out = soft_forward_warp(rgb, d, src, dst, config=cfg)
        return (out.rgb * weights).sum() + out.depth.sum()

    d = depth.clone().requires_grad_(True)
    f(d).backward()
    i, j, eps = 2, 1, 1e-6                                # a near-side pixel
    dp, dm = depth.clone(), depth.clone()
    dp[0, i, j] += eps
    dm[0, i, j] -= eps
    numeric = (f(dp) - f(dm)) / (2 * eps)
    assert abs(float(d.grad[0, i, j]) - float(numeric)) < 1e-4 * max(1.0, abs(float(numeric)))


def test_soft_warp_prefers_the_nearer_surface():
    # two source pixels landing on one target pixel: the near one dominates the mix
    H, W = 8, 16
    rgb = torch.zeros(1, H, W, 3, dtype=F64)
    rgb[..., :W // 2, 0] = 1.0
    rgb[..., W // 2:, 2] = 1.0
    depth = torch.full((1, H, W), 8.0, dtype=F64)
    depth[..., :W // 2] = 2.0
    src = identity_cams(1, W, H)
    dst = make_cams([[-0.3, 0.0, 0.0]], [[-0.3, 0.0, 1.0]], W, H)   # near part slides over the far part
    out = soft_forward_warp(rgb, depth, src, dst)
    mixed = out.valid & (out.rgb[..., 0] > 0) & (out.rgb[..., 2] > 0)
    red = out.rgb[..., 0][mixed]
    assert (red > 0.9).all()


def test_backward_warp_marks_occluded_and_outside_pixels_invalid():
    H, W = 12, 16
    rgb, depth = random_view(1, H, W, seed=7)
    src = identity_cams(1, W, H)
    dst = make_cams([[2.0, 0.0, 0.0]], [[2.0, 0.0, 1.0]], W, H)     # far to the right: mostly outside src
    out = backward_warp(rgb, torch.full((1, H, W), 3.0, dtype=F64), src, dst)
    assert not out.valid.all() and out.valid.any()
    assert (out.rgb[~out.valid] == 0).all()
    # occlusion: target surface at 10 behind a source surface at 3 is hidden
    occl = backward_warp(rgb, torch.full((1, H, W), 10.0, dtype=F64), src, src, src_depth=torch.full((1, H, W), 3.0, dtype=F64))
    assert not occl.valid.any()


def test_bad_shapes_raise():
    rgb, depth = random_view(1, 8, 8, seed=0)
    cams = identity_cams(1, 8, 8)
    with pytest.raises(ValueError):
        forward_warp(rgb, depth[:, :4], cams, cams)
    with pytest.raises(ValueError):
        forward_warp(rgb, depth, cams, cams, valid=torch.ones(1, 8, 8))      # not bool


@pytest.mark.parametrize("seed", range(3))
def test_twin_agrees_when_magnification_opens_cracks(seed):
    H, W = 12, 12
    rgb, depth = random_view(1, H, W, seed)
    depth = 3.0 + 0.1 * (depth - 2.0)                         # mostly one surface, slightly rough
    src = identity_cams(1, W, H)
    dst = make_cams([[0.02 * seed, 0.01, 0.8]], [[0.05, 0.02, 3.0]], W, H)
    raw = forward_warp(rgb, depth, src, dst, config=ForwardWarpConfig(fill_cracks=False))
    fast = forward_warp(rgb, depth, src, dst)
    slow = forward_warp_reference(rgb, depth, src, dst)
    assert fast.valid.sum() > raw.valid.sum()                 # the fill did something here
    assert torch.equal(fast.valid, slow.valid)
    assert torch.allclose(fast.rgb, slow.rgb, atol=1e-12) and torch.allclose(fast.depth, slow.depth, atol=1e-9)
