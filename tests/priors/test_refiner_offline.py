"""OfflineRefiner: the deterministic stand-in (render where trusted, local frame elsewhere, smooth seam)."""

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.priors.filters import box_mean_clipped, box_mean_clipped_reference
from scenedreamer.priors.offline_refiner import OfflineRefiner, OfflineRefinerConfig, guided_filter
from scenedreamer.priors.refiner import Refiner, RefinerInput

H, W = 32, 48


def make_view(local_depth=None):
    """Left third opaque (red), middle third half-transparent, right third empty; local frame blue."""
    opacity = torch.zeros(H, W)
    opacity[:, :16] = 1.0
    opacity[:, 16:32] = 0.5
    colour = torch.zeros(H, W, 3)
    colour[..., 0] = 1.0
    depth = torch.where(opacity > 0, torch.full((H, W), 3.0), torch.zeros(()))
    local = torch.zeros(H, W, 3)
    local[..., 2] = 1.0
    known = torch.zeros(H, W, dtype=torch.bool)
    known[:, :24] = True
    return RefinerInput(rendered_rgb=colour * opacity[..., None], rendered_depth=depth, opacity=opacity,
                        features=torch.zeros(H, W, 0), local_rgb=local, local_known=known,
                        local_depth=local_depth)


COMPOSITE_ONLY = {"consistency_weight": 0.0, "unknown_render_trust": 1.0}
"""The compositing stage alone: no pull toward the local frame, the render trusted everywhere
(the defaults, what the pipeline runs, are checked by the tests that name those fields)."""


def refine(view, **changes):
    config = OfflineRefinerConfig(**{**COMPOSITE_ONLY, **changes})
    return OfflineRefiner(config).refine(view, "any", torch.Generator().manual_seed(0))


def test_is_a_labelled_refiner():
    refiner = OfflineRefiner()
    # runtime_checkable checks every member the pipeline uses (adapter, training_state, ...)
    assert isinstance(refiner, Refiner)
    assert "offline" in refiner.label and "not generative" in refiner.label
    assert refiner.adapter is None and refiner.training_state() is None
    with pytest.raises(UserInputError, match="no adapter"):
        refiner.load_training_state({"adapter": {}})


def test_opaque_render_kept_empty_render_takes_local_frame():
    view = make_view()
    out = refine(view)
    assert out.shape == (H, W, 3) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out[:, :16], view.rendered_rgb[:, :16])         # opacity 1 >= keep_threshold
    assert torch.equal(out[:, 40:], view.local_rgb[:, 40:])            # empty, far from the seam
    # half-transparent render (0.5 < opacity_high) is partly trusted: a mix of red and blue
    middle = out[:, 22:26].mean(dim=(0, 1))
    assert 0.0 < float(middle[0]) < 1.0 and 0.0 < float(middle[2]) < 1.0
    assert torch.equal(out, refine(view))                               # deterministic


def test_floaters_take_the_local_frame():
    # the warp says the left part is at depth 10, the render says 3: floaters there
    local_depth = torch.where(torch.arange(W)[None, :].expand(H, W) < 24, torch.full((H, W), 10.0),
                              torch.zeros(()))
    out = refine(make_view(local_depth=local_depth))
    assert torch.equal(out[:, :10], make_view().local_rgb[:, :10])
    # depths that agree keep the render
    agree = torch.where(torch.arange(W)[None, :].expand(H, W) < 24, torch.full((H, W), 3.1), torch.zeros(()))
    assert torch.equal(refine(make_view(local_depth=agree))[:, :16], make_view().rendered_rgb[:, :16])


def test_seam_is_smooth_without_keep():
    """With nothing pasted back, the change from render to local frame is spread over a few pixels."""
    out = refine(make_view(), keep_threshold=2.0, seam_radius_px=4)
    red = out[H // 2, :, 0]
    steps = (red[1:] - red[:-1]).abs()
    assert float(steps.max()) < 0.6                         # no hard cut from 1 to 0
    assert float(red[0]) > 0.95 and float(red[-1]) < 0.05


def test_seam_stays_sharp_along_a_scene_edge():
    """Where the local frame has an edge at the render's border, the switch follows it sharply."""
    view = make_view()
    local = view.local_rgb.clone()
    local[:, 32:] = torch.tensor([0.0, 1.0, 0.0])           # a scene edge exactly where the render ends
    edged = RefinerInput(view.rendered_rgb, view.rendered_depth, view.opacity, view.features, local,
                         view.local_known)
    smooth = refine(make_view(), keep_threshold=2.0, seam_radius_px=4)
    sharp = refine(edged, keep_threshold=2.0, seam_radius_px=4)
    # red (the half-transparent render's share) in the last columns before the border: the flat
    # guide blurs the trust with the empty side; the edged guide keeps it up to the edge
    assert float(sharp[:, 31, 0].mean()) > 1.5 * float(smooth[:, 31, 0].mean())
    assert float((sharp[:, 26:32, 0].max(dim=1).values - sharp[:, 26:32, 0].min(dim=1).values).max()) < 0.01


def test_train_save_load_are_harmless(tmp_path):
    refiner = OfflineRefiner()
    assert refiner.train_adapter([(make_view(), torch.rand(H, W, 3))], steps=5,
                                 generator=torch.Generator()) == {}
    path = tmp_path / "adapter.json"
    refiner.save_adapter(path)
    refiner.load_adapter(path)
    with pytest.raises(UserInputError, match="not found"):
        refiner.load_adapter(tmp_path / "missing.json")
    (tmp_path / "weights.safetensors").write_bytes(b"\x00\x01binary")
    with pytest.raises(UserInputError):
        refiner.load_adapter(tmp_path / "weights.safetensors")


def test_bad_config_is_a_user_error():
    with pytest.raises(UserInputError):
        OfflineRefinerConfig(opacity_low=0.9, opacity_high=0.3)


@pytest.mark.parametrize("radius", [0, 1, 3])
def test_box_mean_matches_loop_twin(radius):
    x = torch.rand(9, 13, generator=torch.Generator().manual_seed(radius))
    torch.testing.assert_close(box_mean_clipped(x, radius), box_mean_clipped_reference(x, radius), rtol=0, atol=1e-6)


def test_guided_filter_matches_twin_and_keeps_edges():
    g = torch.Generator().manual_seed(1)
    guide, source = torch.rand(12, 14, generator=g), torch.rand(12, 14, generator=g)
    torch.testing.assert_close(guided_filter(guide, source, 2, 1e-3),
                               guided_filter(guide, source, 2, 1e-3, box=box_mean_clipped_reference),
                               rtol=0, atol=1e-5)
    # a step in the source that follows a step in the guide stays sharp; with a flat guide it blurs
    step = torch.zeros(16, 16)
    step[:, 8:] = 1.0
    along_edge = guided_filter(step, step, 3, 1e-4)
    flat_guide = guided_filter(torch.full((16, 16), 0.5), step, 3, 1e-4)
    assert float((along_edge[:, 8] - along_edge[:, 7]).min()) > 0.95
    assert float((flat_guide[:, 8] - flat_guide[:, 7]).max()) < 0.5


def test_consistency_weight_pulls_known_pixels_to_the_local_frame():
    view = make_view()
    free = refine(view)
    half = refine(view, consistency_weight=0.5)
    full = refine(view, consistency_weight=1.0)
    known = view.local_known
    assert torch.equal(full[known], view.local_rgb[known])                   # weight 1: the warp wins
    assert torch.allclose(half[known], 0.5 * (free[known] + view.local_rgb[known]), atol=1e-6)
    assert torch.equal(full[~known], free[~known])                           # unknown pixels untouched
    with pytest.raises(UserInputError, match="consistency_weight"):
        OfflineRefinerConfig(consistency_weight=1.5)


def test_unknown_render_trust_zero_takes_the_local_frame_where_the_warp_is_blind():
    # an opaque red render everywhere (e.g. floaters in never-seen space); the warp knows the left half
    red, blue = torch.zeros(H, W, 3), torch.zeros(H, W, 3)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    known = torch.zeros(H, W, dtype=torch.bool)
    known[:, :24] = True
    view = RefinerInput(rendered_rgb=red, rendered_depth=torch.full((H, W), 3.0), opacity=torch.ones(H, W),
                        features=torch.zeros(H, W, 0), local_rgb=blue, local_known=known)
    trusting, blind = refine(view), refine(view, unknown_render_trust=0.0)
    assert torch.equal(trusting, red)                                  # opaque render kept everywhere
    assert torch.equal(blind[:, :24], red[:, :24])                     # known + opaque: still the render
    assert torch.equal(blind[:, 33:], blue[:, 33:])     # the warp is blind: local frame (past the 2 x 4 px seam filter)
    with pytest.raises(UserInputError, match="unknown_render_trust"):
        OfflineRefinerConfig(unknown_render_trust=-0.1)
