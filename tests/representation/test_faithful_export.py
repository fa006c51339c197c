"""scene.ply is faithful: the analytic scene is baked, distilled (representation/distill.py),
written to PLY, read back (plyfile and an independent numpy reader), and rendered with the
reference 3DGS conventions (cull z <= 0.2, 0.3 px^2 dilation, black background) at the support
cameras and between them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenedreamer.export.ply import read_gaussians_ply, write_gaussians_ply
from scenedreamer.representation.bake import BakeConfig, bake_to_gaussians
from scenedreamer.representation.distill import (DistillConfig, ViewList, distill_to_gaussians, sky_points,
                                                 standard_viewer_config)
from representation.scenes import default_scene, make_views, orbit_cameras
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
