"""Baking a representation into Gaussians: an exact analytic scene, baked from a few views,
renders close to the original at a view in between."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras
from scenedreamer.geometry.projection import unproject_depth
from scenedreamer.representation.bake import BakeConfig, SurfaceSamples, bake_to_gaussians, merge_in_voxels
from scenedreamer.representation.base import RenderOutput, SceneRepresentation
from representation.scenes import default_scene, orbit_cameras, render_scene


class AnalyticRepresentation(SceneRepresentation):
    """The ray-cast analytic scene as a SceneRepresentation (opacity 1 on hits, 0 on sky);
    one feature channel = the world y coordinate of the hit."""

    kind = "analytic"
    feature_dim = 1

    def __init__(self, transparent: bool = False):
        super().__init__()
        self.scene = default_scene()
        self.transparent = transparent

    def render(self, cameras: Cameras, background=None, depth_hint=None) -> RenderOutput:
        r = render_scene(self.scene, cameras)
        opacity = r.hit.float() * (0.2 if self.transparent else 1.0)
        world = unproject_depth(r.depth, cameras)
        return RenderOutput(rgb=r.rgb * opacity[..., None], depth=torch.where(r.hit, r.depth, 0.0),
                            opacity=opacity, features=world[..., 1:2] * opacity[..., None])


def test_bake_of_an_analytic_scene_renders_close_to_it():
    rep = AnalyticRepresentation()
    bake_cams = orbit_cameras([-30.0, -15.0, 0.0, 15.0, 30.0], 96, 64)   # bake finer than we look
    events = []
    scene = bake_to_gaussians(rep, bake_cams, BakeConfig(), on_event=events.append)
    assert scene.feature_dim == 1 and scene.num_gaussians > 0
    assert events and events[-1].stage == "bake"
    # fewer Gaussians than lifted pixels: overlapping views were merged
    assert scene.num_gaussians < 0.8 * 5 * 96 * 64
    test_cam = orbit_cameras([7.5], 96, 64)                  # between the baked views
    truth = rep.render(test_cam)
    with torch.no_grad():
        out = scene.render(test_cam)
    hit = truth.opacity > 0
    psnr = -10 * torch.log10(((out.rgb - truth.rgb)[hit] ** 2).mean())
    rel_depth = ((out.depth - truth.depth).abs() / truth.depth.clamp_min(1e-6))[hit]
    assert psnr > 20.0, float(psnr)
    assert float(rel_depth.median()) < 0.05
    assert float(out.opacity[hit].mean()) > 0.9
    feat = out.features[..., 0][hit] / out.opacity[hit].clamp_min(1e-6)
    assert float((feat - truth.features[..., 0][hit]).abs().median()) < 0.1


def test_low_opacity_pixels_are_dropped():
    with pytest.raises(UserInputError, match="opacity"):
        bake_to_gaussians(AnalyticRepresentation(transparent=True), orbit_cameras([0.0], 16, 12), BakeConfig())


def test_voxel_merge_averages_points_in_one_voxel():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.3, 0.2, 0.1], [1.5, 0.0, 0.0]])
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    n = torch.tensor([[0.0, 0.0, -1.0]] * 3)
    samples = SurfaceSamples(pts, rgb, torch.zeros(3, 0), torch.tensor([0.2, 0.1, 0.3]), n, -n)
    merged, inverse = merge_in_voxels(samples, 1.0)
    assert merged.points.shape == (2, 3)
    assert inverse[0] == inverse[1] != inverse[2]
    torch.testing.assert_close(merged.points[inverse[0]], torch.tensor([0.2, 0.15, 0.1]))
    torch.testing.assert_close(merged.rgb[inverse[0]], torch.tensor([0.5, 0.5, 0.0]))
    assert float(merged.footprint[inverse[0]]) == pytest.approx(0.1)
