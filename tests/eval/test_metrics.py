import math

import torch

from scenedreamer.eval.metrics import (depth_reprojection_error, flow_warping_error,
                                       median_relative_depth_error, psnr)
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov


def test_psnr_known_value_and_mask():
    a = torch.zeros(4, 4, 3)
    b = torch.full((4, 4, 3), 0.1)
    assert abs(psnr(a, b) - 20.0) < 1e-4          # mse 0.01 -> 20 dB
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 0] = True
    b2 = b.clone()
    b2[0, 0] = 0
    assert math.isinf(psnr(a, b2, mask))


def test_median_relative_depth_error():
    gt = torch.full((3, 3), 2.0)
    pred = gt * 1.1
    assert abs(median_relative_depth_error(pred, gt) - 0.1) < 1e-6
    gt[0, 0] = 0  # unknown pixels are ignored
    assert abs(median_relative_depth_error(pred, gt) - 0.1) < 1e-6


def _plane_depth(cam: Cameras, plane_z: float) -> torch.Tensor:
    # fronto-parallel plane z = plane_z (world) seen by a camera translated along x: depth is constant
    return torch.full((cam.height, cam.width), plane_z - float(cam.c2w[0, 2, 3]))


def test_reprojection_error_zero_for_consistent_and_positive_for_inconsistent():
    K = intrinsics_from_fov(60, 32, 24)
    c2w_b = torch.eye(4)
    c2w_b[0, 3] = 0.3
    a, b = Cameras(K, torch.eye(4), 32, 24), Cameras(K, c2w_b, 32, 24)
    da, db = _plane_depth(a, 5.0), _plane_depth(b, 5.0)
    assert depth_reprojection_error(da, a, db, b) < 1e-5
    assert depth_reprojection_error(da, a, db * 1.2, b) > 0.1


def test_flow_warping_error_small_for_shifted_texture():
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 72, 72, generator=g), 5, 1, 2)[0].permute(1, 2, 0)
    a, b = base[:64, :64], base[2:66, 1:65]          # b = a shifted by (1, 2) pixels
    noise = torch.rand(64, 64, 3, generator=g)
    assert flow_warping_error(a, b) < 0.5 * flow_warping_error(a, noise)


def test_flow_warping_error_zero_when_static_and_grows_with_an_inconsistent_shift():
    """A static pair warps onto itself exactly; a square whose content slides by k pixels while
    its outline stays (texture swimming, the flicker this metric is meant to catch) cannot be
    explained by one smooth flow, and the error grows with k."""
    import skimage.data

    image = torch.from_numpy(skimage.data.astronaut()[::4, ::4].copy()).float() / 255
    a = image[16:112, 16:112].clone()
    assert flow_warping_error(a, a.clone()) < 1e-6
    errors = []
    for k in (2, 4, 8, 16):
        b = a.clone()
        b[32:64, 32:64] = a[32:64, 32 + k:64 + k]
        errors.append(flow_warping_error(a, b))
    assert errors == sorted(errors) and errors[-1] > 3 * errors[0], errors
