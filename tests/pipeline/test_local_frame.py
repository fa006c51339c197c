"""Pipeline building blocks: depth for new content, occlusion dropping, multi-view z-buffer."""

import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.geometry.depth_align import AlignConfig, SeamConfig
from scenedreamer.pipeline.local_frame import drop_occluding_points, metric_depth_for_new_view, warp_views_into
from scenedreamer.priors.base import DepthKind, DepthPrediction
from scenedreamer.support.records import Provenance, ViewRecord

H, W = 24, 32
K = intrinsics_from_fov(60, W, H)
CAM = Cameras(K, torch.eye(4), W, H)


def true_depth():
    """A slanted floor-like depth map, 2..6 units."""
    return torch.linspace(2.0, 6.0, H)[:, None].expand(H, W).clone()


class FakeEstimator:
    label = "fake"

    def __init__(self, fn, kind):
        self.fn, self.kind = fn, kind

    def estimate(self, image, camera=None):
        return DepthPrediction(self.fn(true_depth()), self.kind)


def test_relative_and_disparity_predictions_are_aligned_to_known_depth():
    known = torch.zeros(H, W, dtype=torch.bool)
    known[:, : W // 2] = True
    known_depth = torch.where(known, true_depth(), torch.zeros(()))
    image = torch.zeros(H, W, 3)
    for fn, kind in [(lambda d: 0.5 * d + 2.0, DepthKind.RELATIVE), (lambda d: 3.0 / d + 1.0, DepthKind.DISPARITY),
                     (lambda d: 1.1 * d, DepthKind.METRIC)]:
        out = metric_depth_for_new_view(image, CAM, known_depth, known, FakeEstimator(fn, kind), AlignConfig(),
                                        SeamConfig(), fallback_median_depth=4.0)
        assert torch.equal(out[known], known_depth[known])                 # known pixels untouched
        rel = ((out[~known] - true_depth()[~known]).abs() / true_depth()[~known]).max()
        assert rel < 0.01, (kind, float(rel))


def test_first_view_without_known_depth():
    none = torch.zeros(H, W, dtype=torch.bool)
    zeros = torch.zeros(H, W)
    metric = metric_depth_for_new_view(torch.zeros(H, W, 3), CAM, zeros, none,
                                       FakeEstimator(lambda d: d, DepthKind.METRIC), AlignConfig(), SeamConfig(), 4.0)
    assert torch.equal(metric, true_depth())
    relative = metric_depth_for_new_view(torch.zeros(H, W, 3), CAM, zeros, none,
                                         FakeEstimator(lambda d: 7 * d, DepthKind.RELATIVE), AlignConfig(), SeamConfig(), 4.0)
    assert abs(float(relative.median()) - 4.0) < 1e-5


def _view(depth, c2w=torch.eye(4), colour=(1.0, 0.0, 0.0)):
    rgb = torch.tensor(colour).expand(H, W, 3).clone()
    return ViewRecord(rgb=rgb, depth=depth, valid=torch.ones(H, W, dtype=torch.bool),
                      inpainted=torch.zeros(H, W, dtype=torch.bool), K=K, c2w=c2w,
                      provenance=Provenance.INITIAL, step=0, prompt="")


def test_new_points_in_front_of_what_an_earlier_view_saw_are_dropped():
    earlier = _view(torch.full((H, W), 5.0))               # saw a wall at z = 5
    new = torch.ones(H, W, dtype=torch.bool)
    in_front = drop_occluding_points(torch.full((H, W), 2.0), new, CAM, [earlier], margin=0.05)
    behind = drop_occluding_points(torch.full((H, W), 6.0), new, CAM, [earlier], margin=0.05)
    assert bool(in_front.all()) and not bool(behind.any())
    only_some = new.clone()
    only_some[:, :10] = False                              # pixels that are not new are never dropped
    assert not bool(drop_occluding_points(torch.full((H, W), 2.0), only_some, CAM, [earlier], 0.05)[:, :10].any())


def test_multi_view_z_buffer_keeps_the_nearest_surface():
    near, far = _view(torch.full((H, W), 2.0), colour=(1.0, 0.0, 0.0)), _view(torch.full((H, W), 8.0), colour=(0.0, 0.0, 1.0))
    from scenedreamer.geometry.warp import ForwardWarpConfig

    for order in ([near, far], [far, near]):
        rgb, depth, known = warp_views_into(order, CAM, ForwardWarpConfig())
        assert bool(known.all())
        assert torch.allclose(depth, torch.full((H, W), 2.0)) and torch.equal(rgb[..., 0], torch.ones(H, W))
