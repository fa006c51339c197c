"""A new view grows the world only where the world lacks its content (pipeline/generate.py
``pixels_to_grow``): a re-inpainted pixel the render before the view already shows at its depth is
fitted, not duplicated."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.pipeline.generate import pixels_to_grow
from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene
from scenedreamer.representation.registry import kind_of
from representation.scenes import default_scene, orbit_cameras, render_scene


def test_a_pixel_grows_unless_the_render_shows_a_surface_at_its_depth():
    new = torch.tensor([[True, True, True, True, False]])
    depth = torch.tensor([[10.0, 10.0, 10.0, 10.0, 10.0]])
    # covered at its depth | covered, 1.5 units nearer (a new tree before the sky) | not rendered
    # | rendered 0.9 units off (inside 10 %) | not new
    rendered_depth = torch.tensor([[10.5, 8.5, 10.0, 9.1, 10.0]])
    rendered = torch.tensor([[True, True, False, True, True]])
    grow = pixels_to_grow(new, depth, rendered_depth, rendered, tolerance=0.1)
    assert grow.tolist() == [[False, True, True, False, False]]
    assert torch.equal(pixels_to_grow(new, depth, rendered_depth, rendered, tolerance=None), new)
    # a render with no depth there (opacity but 0 depth) covers nothing
    assert pixels_to_grow(new, depth, torch.zeros_like(depth), rendered, 0.1).tolist() == [[True] * 4 + [False]]


@pytest.fixture(scope="module")
def world():
    """A scene fitted from nothing but view 0 (one Gaussian per pixel), and view 0 itself."""
    cams = orbit_cameras([0.0], 48, 32)
    view = render_scene(default_scene(), cams)
    scene = GaussianScene.from_views(view.rgb, view.depth, view.hit, cams, GaussianConfig(init_stride=1))
    return scene, cams, view


def test_re_inpainting_what_the_world_shows_adds_no_gaussians_but_a_new_object_does(world):
    scene, cams, view = world
    with torch.no_grad():
        render = scene.render(cams)[0]
    rendered = render.opacity[0] >= 0.5
    hit = view.hit[0] & (view.depth[0] > 0)
    # the whole view re-inpainted with the same surfaces: the world already holds them, except on
    # silhouettes, where the render blends a near and a far surface into a depth between the two
    same = pixels_to_grow(hit, view.depth[0], render.depth[0], rendered, 0.1)
    near = -torch.nn.functional.max_pool2d(-view.depth[None], 3, 1, 1)[0]
    far = torch.nn.functional.max_pool2d(view.depth[None], 3, 1, 1)[0]
    silhouette = (far - near) > 0.1 * view.depth[0]
    assert not bool((same & ~silhouette).any()) and int(same.sum()) <= 0.1 * int(hit.sum())
    # an object appears in front in a patch: that patch grows, and elsewhere only the silhouettes
    depth = view.depth[0].clone()
    patch = torch.zeros_like(hit)
    patch[8:20, 10:30] = True
    patch &= hit
    depth[patch] *= 0.5
    grow = pixels_to_grow(hit, depth, render.depth[0], rendered, 0.1)
    assert torch.equal(grow & ~patch, same & ~patch) and int((grow & patch).sum()) >= 0.95 * int(patch.sum())

    # the Gaussians' grow hook adds one per pixel it is given, no more
    before = scene.num_gaussians
    record = type("View", (), {"rgb": view.rgb[0], "depth": depth, "camera": cams})()
    kind_of(scene).grow(scene, record, grow, None, None)
    assert scene.num_gaussians == before + int(grow.sum())


def test_the_sky_carried_as_directions_grows_where_the_render_leaves_it_uncovered():
    """warp.backdrop_at_infinity: carried sky is never new, so it grows where the world's render
    does not cover it; covered carried sky and surfaces the warp carried do not grow."""
    new = torch.tensor([[True, False, False, False, False]])
    depth = torch.full((1, 5), 100.0)
    rendered = torch.tensor([[False, False, True, False, True]])
    # new | carried sky, uncovered | carried sky, covered | carried surface, uncovered | carried sky
    carried_sky = torch.tensor([[False, True, True, False, False]])
    grow = pixels_to_grow(new, depth, depth, rendered, None, carried_backdrop=carried_sky)
    assert grow.tolist() == [[True, True, False, False, False]]
    assert pixels_to_grow(new, depth, depth, rendered, None).tolist() == new.tolist()


@pytest.mark.parametrize("at_infinity", [False, True])
def test_the_progressive_loop_grows_carried_sky_only_when_carried_as_directions(at_infinity, tmp_path, monkeypatch):
    """The wiring in generate_next_view: with the render trusted nowhere (unseen_opacity = 1, so
    every carried pixel is uncovered), a forward walk grows every carried sky pixel of each new
    view when warp.backdrop_at_infinity is on, and none of them when it is off."""
    from scenedreamer.cli import main
    import scenedreamer.pipeline.generate as generate

    grown = []
    original = generate.grow_representation

    def spy(representation, view, pixels, fit_state, fit_config):
        grown.append((view.backdrop & view.valid & ~view.inpainted, pixels.clone()))
        return original(representation, view, pixels, fit_state, fit_config)

    monkeypatch.setattr(generate, "grow_representation", spy)
    args = ["generate", "a forest lake", "--out", str(tmp_path / "run"), "--trajectory", "forward",
            "--frames", "3", "--quiet", "--resolution", "40x32",
            "--set", "init.fit_steps=2", "--set", "progressive.fit_steps_per_view=1",
            "--set", "init.neighbour_yaws_deg=[-15]", "--set", "fit.patches_per_step=1",
            "--set", "fit.patch_size=16", "--set", "export.video=false", "--set", "export.ply=false",
            "--set", "progressive.unseen_opacity=1.0",
            "--set", f"warp.backdrop_at_infinity={'true' if at_infinity else 'false'}"]
    assert main(args) == 0
    assert len(grown) == 2
    for carried_sky, pixels in grown:
        assert int(carried_sky.sum()) > 0          # the forward walk carries sky into each view
        if at_infinity:
            assert bool(pixels[carried_sky].all())
        else:
            assert not bool(pixels[carried_sky].any())
