"""The procedural world: geometry consistency, vocabulary, determinism, primitives vs brute force."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scenedreamer.errors import InternalError, UserInputError
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.geometry.projection import project_points, unproject_depth
from scenedreamer.priors.procedural import (Material, ProceduralWorld, ProceduralWorldConfig, VOCABULARY,
                                            parse_prompt)
from scenedreamer.priors.procedural.vocabulary import ELEMENTS, LIGHTINGS, PALETTES, TEMPLATES, WEATHERS
from scenedreamer.priors.procedural.primitives import (box, cone, cylinder, ellipsoid, intersect_primitive,
                                                       screen_rects)


# small heightmap: world construction in ~0.1 s; the geometry is just as exact
FAST = ProceduralWorldConfig(heightmap_resolution=256, texture_resolution=64)
S = 64


def camera(yaw_deg: float = 0.0, pitch_deg: float = 0.0, t=(0.0, 0.0, 0.0), size: int = S,
           fov: float = 70.0) -> Cameras:
    """A camera at t, turned by yaw (about -y, right-handed OpenCV) then pitch."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    Ry = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    c2w = torch.eye(4)
    c2w[:3, :3] = Ry @ Rx
    c2w[:3, 3] = torch.tensor(t)
    return Cameras(intrinsics_from_fov(fov, size, size), c2w, size, size)


@pytest.fixture(scope="module")
def forest() -> ProceduralWorld:
    return ProceduralWorld.from_prompt("a forest lake", seed=3, config=FAST)


def reprojection_agreement(world: ProceduralWorld, cam_a: Cameras, cam_b: Cameras) -> tuple[float, float, float]:
    """Lift view A's depth to 3D, project into B, compare with B's depth there.

    B's depth is sampled bilinearly in disparity (exact on planes, where 1/z is affine in the
    pixel coordinates). Returns (fraction of A's surface points landing on B's image that are
    visible in B, fraction of visible points within 1 % depth, fraction of points in FRONT of
    B's surface by more than 1 % - impossible in a consistent world except at silhouettes).
    """
    ra, rb = world.render(cam_a), world.render(cam_b)
    pts = unproject_depth(ra.depth, cam_a).reshape(1, -1, 3)
    uv, z = project_points(pts, cam_b)
    grid = (2.0 * uv / S - 1.0).view(1, 1, -1, 2)
    sample = lambda img: F.grid_sample(img[None, None], grid, align_corners=False)[0, 0, 0]  # noqa: E731
    disp_b = sample(1.0 / rb.depth[0])
    sky_b = sample(rb.sky[0].float()) > 0
    # bilinear sampling is only meaningful where B's 2x2 neighbourhood is one smooth surface
    d_b = (1.0 / rb.depth[0])[None, None]
    ratio = (F.max_pool2d(d_b, 2, stride=1) / -F.max_pool2d(-d_b, 2, stride=1))[0, 0]   # (S-1, S-1)
    cell = (uv[0] - 0.5).floor().long().clamp(0, S - 2)
    smooth = ratio[cell[:, 1], cell[:, 0]] < 1.03
    inside = (z[0] > 0.1) & (uv[0] > 0.5).all(-1) & (uv[0] < S - 0.5).all(-1) & ~ra.sky.reshape(-1)
    sel = inside & ~sky_b & smooth
    zb = 1.0 / disp_b[sel]
    rel = (z[0][sel] - zb) / zb
    visible = rel < 0.01                       # not hidden behind something in B
    in_front = rel < -0.01
    return float(visible.float().mean()), float((rel[visible].abs() < 0.01).float().mean()), \
        float(in_front.float().mean())


@pytest.mark.parametrize("prompt", ["a forest lake", "a kitchen", "a city street"])
def test_depth_agrees_with_geometry_across_views(prompt: str) -> None:
    world = ProceduralWorld.from_prompt(prompt, seed=1, config=FAST)
    cam_a = camera()
    cam_b = camera(yaw_deg=12.0, pitch_deg=5.0, t=(0.4, -0.1, 0.8))
    visible, agree, in_front = reprojection_agreement(world, cam_a, cam_b)
    assert visible > 0.5
    assert agree > 0.95, f"only {agree:.3f} of visible points within 1 %"
    assert in_front < 0.03


def test_depth_is_z_depth_of_the_ground_plane() -> None:
    # city ground is the exact plane y = ground_height: z-depth of a pixel below the horizon is
    # ground_height / (its ray's y slope), which the render must reproduce.
    world = ProceduralWorld.from_prompt("a city street", seed=0, config=FAST)
    cam = camera()
    r = world.render(cam)
    i, j = S - 3, S // 2
    assert int(r.material[0, i, j]) == int(Material.STREET)
    K = cam.K[0]
    dy = (i + 0.5 - K[1, 2]) / K[1, 1]
    assert float(r.depth[0, i, j]) == pytest.approx(FAST.ground_height / float(dy), rel=1e-4)


def test_render_shapes_ranges_and_sky(forest: ProceduralWorld) -> None:
    cams = Cameras.cat([camera(), camera(yaw_deg=180.0)])
    r = forest.render(cams)
    assert r.rgb.shape == (2, S, S, 3) and r.depth.shape == (2, S, S) and r.sky.shape == (2, S, S)
    assert r.rgb.dtype == torch.float32 and r.rgb.min() >= 0 and r.rgb.max() <= 1
    assert torch.isfinite(r.depth).all() and (r.depth > 0).all()
    assert (r.depth[r.sky] == FAST.sky_depth).all()
    assert (r.depth[~r.sky] <= FAST.sky_depth).all()
    # a camera at the origin looking +z sees sky in the top row and ground in the bottom row
    assert r.sky[0, 0].float().mean() > 0.9
    assert not r.sky[0, -1].any()
    assert float(r.depth[0, -1, S // 2]) < 5.0


def test_first_camera_stands_ground_height_above_the_ground(forest: ProceduralWorld) -> None:
    down = camera(pitch_deg=-89.9)      # looking straight down (+y)
    r = forest.render(down)
    assert float(r.depth[0, S // 2, S // 2]) == pytest.approx(FAST.ground_height, rel=2e-3)


def test_vocabulary_selects_templates_and_palettes() -> None:
    assert parse_prompt("A dense FOREST in the morning").template.name == "forest"
    assert parse_prompt("a kitchen with a window").template.kind == "indoor"
    assert parse_prompt("dunes of the sahara at dusk").template.name == "desert"
    assert parse_prompt("dunes of the sahara at dusk").lighting.name == "sunset"
    assert parse_prompt("unknown words only").template.name == "meadow"
    assert parse_prompt("unknown words only").lighting.name == "day"
    combo = parse_prompt("a forest lake at night")
    assert combo.template.lake and combo.template.tree_spacing == 6.0 and combo.lighting.name == "night"
    tables = {"template": TEMPLATES, "lighting": LIGHTINGS, "weather": WEATHERS, "palette": PALETTES,
              "element": ELEMENTS}
    for word, (kind, name) in VOCABULARY.items():
        assert name in tables[kind], word


def _mean_color(prompt: str, ground_only: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean colour (of the non-sky pixels, or of all) and the material map."""
    r = ProceduralWorld.from_prompt(prompt, seed=0, config=FAST).render(camera())
    pixels = r.rgb[0][~r.sky[0]] if ground_only else r.rgb[0].reshape(-1, 3)
    return pixels.mean(0), r.material[0]


def test_templates_differ_in_content_and_colour() -> None:
    forest_rgb, forest_mat = _mean_color("a forest")
    desert_rgb, desert_mat = _mean_color("a desert")
    room_rgb, room_mat = _mean_color("a room")
    assert (forest_mat == Material.FOLIAGE).any() and not (desert_mat == Material.FOLIAGE).any()
    assert (room_mat == Material.ROOM).any() and not (room_mat == Material.SKY).any()
    assert not (forest_mat == Material.ROOM).any()
    assert desert_rgb[0] > desert_rgb[2] + 0.1            # sandy: red over blue
    assert (forest_rgb - desert_rgb).abs().sum() > 0.15
    assert (room_rgb - forest_rgb).abs().sum() > 0.1


def test_lighting_palettes_differ() -> None:
    day, _ = _mean_color("a meadow", ground_only=False)
    sunset, _ = _mean_color("a meadow at sunset", ground_only=False)
    night, _ = _mean_color("a meadow at night", ground_only=False)
    assert night.mean() < 0.5 * day.mean()
    assert sunset[0] - sunset[2] > day[0] - day[2] + 0.1  # warmer


def test_deterministic_per_seed() -> None:
    cam = camera(yaw_deg=20.0)
    a = ProceduralWorld.from_prompt("a forest", seed=7, config=FAST).render(cam)
    b = ProceduralWorld.from_prompt("a forest", seed=7, config=FAST).render(cam)
    c = ProceduralWorld.from_prompt("a forest", seed=8, config=FAST).render(cam)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    assert (a.depth - c.depth).abs().max() > 0.5


def test_batch_render_equals_single_renders(forest: ProceduralWorld) -> None:
    cams = Cameras.cat([camera(), camera(yaw_deg=40.0, t=(1.0, 0.0, 2.0))])
    both = forest.render(cams)
    for k in range(2):
        one = forest.render(cams[k])
        assert torch.allclose(both.depth[k], one.depth[0]) and torch.allclose(both.rgb[k], one.rgb[0])


def test_bad_cameras_are_user_errors(forest: ProceduralWorld) -> None:
    with pytest.raises(InternalError, match="cameras"):     # only code passes cameras: a bug
        forest.render("not cameras")  # type: ignore[arg-type]


# --- primitives: analytic intersections against a brute-force march ------------------------------

PRIMS = [box((-0.5, -0.4, 2.0), (0.6, 0.5, 3.0), 0, (1, 1, 1)),
         ellipsoid((0.1, 0.0, 2.5), (0.6, 0.3, 0.5), 0, (1, 1, 1)),
         cylinder(0.0, 2.5, 0.4, -0.6, 0.7, 0, (1, 1, 1)),
         cone((0.1, -0.6, 2.4), 1.2, 0.5, 0, (1, 1, 1))]


def _inside(prim, p: torch.Tensor) -> torch.Tensor:
    q = prim.params
    if prim.kind == "box":
        return ((p >= torch.tensor(q[:3])) & (p <= torch.tensor(q[3:]))).all(-1)
    if prim.kind == "ellipsoid":
        return (((p - torch.tensor(q[:3])) / torch.tensor(q[3:])) ** 2).sum(-1) <= 1
    if prim.kind == "cylinder":
        cx, cz, r, y0, y1 = q
        return ((p[..., 0] - cx) ** 2 + (p[..., 2] - cz) ** 2 <= r * r) & (p[..., 1] >= y0) & (p[..., 1] <= y1)
    ax, ay, az, h, r = q
    y = p[..., 1] - ay
    return ((p[..., 0] - ax) ** 2 + (p[..., 2] - az) ** 2 <= (r / h * y) ** 2) & (y >= 0) & (y <= h)


@pytest.mark.parametrize("index", range(len(PRIMS)))
def test_primitive_intersection_matches_brute_force_march(index: int) -> None:
    prim = PRIMS[index]
    gen = torch.Generator().manual_seed(index)
    n = 400
    o = torch.zeros(n, 3)
    d = torch.cat([(torch.rand(n, 2, generator=gen) - 0.5) * 1.0, torch.ones(n, 1)], dim=1)
    t, normal = intersect_primitive(prim, o, d)
    ts = torch.linspace(0.5, 4.0, 7001)                              # step 5e-4
    inside = _inside(prim, o[:, None] + ts[None, :, None] * d[:, None])
    hit = inside.any(1)
    first = ts[inside.to(torch.uint8).argmax(1)]
    assert torch.equal(torch.isfinite(t), hit) or (torch.isfinite(t) != hit).float().mean() < 0.01
    both = hit & torch.isfinite(t)
    assert both.sum() > 20
    assert (t[both] - first[both]).abs().max() < 2e-3
    assert ((normal[both] * d[both]).sum(-1) <= 1e-6).all()          # normals face the rays
    assert torch.allclose(normal[both].norm(dim=-1), torch.ones(int(both.sum())), atol=1e-5)


def test_screen_rects_contain_every_hit_pixel() -> None:
    cam = camera(size=48)
    from scenedreamer.geometry.cameras import camera_rays
    o, d = camera_rays(cam)
    rects = screen_rects(PRIMS + [box((-3, -1, -1), (3, 1, 0.5), 0, (1, 1, 1))], cam, near=0.05, far=100.0)[0]
    for prim, rect in zip(PRIMS, rects):
        t, _ = intersect_primitive(prim, o[0].reshape(-1, 3), d[0].reshape(-1, 3))
        hit = torch.isfinite(t).view(48, 48)
        assert rect is not None
        i0, i1, j0, j1 = rect
        outside = hit.clone()
        outside[i0:i1, j0:j1] = False
        assert not outside.any()
    assert rects[-1] is not None            # a box straddling the camera plane is clipped, not dropped


def test_non_square_image_and_float64_cameras(forest: ProceduralWorld) -> None:
    K = intrinsics_from_fov(80.0, 40, 24, dtype=torch.float64)
    cam = Cameras(K, torch.eye(4, dtype=torch.float64), 40, 24)
    r = forest.render(cam)
    assert r.rgb.shape == (1, 24, 40, 3) and r.depth.dtype == torch.float32
    square = forest.render(camera(size=24, fov=80.0))
    # the central 24 columns of the wide image see what a square camera with the same focal sees
    f_wide = float(K[0, 0])
    cam_sq = Cameras(torch.tensor([[f_wide, 0, 12.0], [0, f_wide, 12.0], [0, 0, 1]]), torch.eye(4), 24, 24)
    centre = forest.render(cam_sq)
    assert torch.allclose(r.depth[0, :, 8:32], centre.depth[0], rtol=1e-4)
    assert square.depth.shape == (1, 24, 24)


@pytest.mark.cuda
def test_cuda_render_matches_cpu(forest: ProceduralWorld) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cam = camera(yaw_deg=15.0)
    cpu = forest.render(cam)
    gpu = forest.render(cam.to("cuda"))
    assert gpu.depth.is_cuda
    close = ((gpu.depth.cpu() - cpu.depth).abs() / cpu.depth < 1e-3).float().mean()
    assert close > 0.99
    assert (gpu.rgb.cpu() - cpu.rgb).abs().mean() < 0.01


def test_terrain_march_matches_a_dense_uniform_march(forest: ProceduralWorld) -> None:
    from scenedreamer.geometry.cameras import camera_rays
    from scenedreamer.priors.procedural.trace import march_terrain

    terrain = forest.scene.terrain
    o, d = camera_rays(camera(yaw_deg=-30.0, size=24))
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    t_max = torch.full((o.shape[0],), 60.0)
    fast = march_terrain(terrain, o, d, t_max, FAST)
    ts = torch.linspace(FAST.near, 60.0, 12001)                          # 5 mm steps in z-depth
    pts = o[:, None] + ts[None, :, None] * d[:, None]
    inside = pts[..., 1] > terrain.surface_y(pts[..., 0].reshape(-1), pts[..., 2].reshape(-1)).view(pts.shape[:2])
    hit = inside.any(1)
    slow = torch.where(hit, ts[inside.to(torch.uint8).argmax(1)], torch.full_like(t_max, float("inf")))
    both = hit & torch.isfinite(fast)
    assert both.sum() > 100
    assert (torch.isfinite(fast) == hit).float().mean() > 0.99
    assert ((fast[both] - slow[both]).abs() <= 0.006 + 1e-3 * slow[both]).float().mean() > 0.99


def test_screen_space_culling_changes_nothing() -> None:
    from scenedreamer.geometry.cameras import camera_rays
    from scenedreamer.priors.procedural.trace import trace

    world = ProceduralWorld.from_prompt("a forest", seed=2, config=FAST)
    cam = camera(yaw_deg=70.0, size=32, t=(0.5, 0.0, 1.0))
    o, d = camera_rays(cam)
    culled = trace(world.scene, world.scene.terrain, o[0], d[0],
                   screen_rects(list(world.scene.primitives), cam, FAST.near, FAST.sky_depth)[0], FAST)
    full = trace(world.scene, world.scene.terrain, o[0], d[0], [(0, 32, 0, 32)] * len(world.scene.primitives), FAST)
    assert torch.equal(culled.t, full.t) and torch.equal(culled.material, full.material)
    assert (culled.material == Material.FOLIAGE).any()


def test_antialias_keeps_pixel_centre_depth() -> None:
    import dataclasses

    plain = ProceduralWorld.from_prompt("a city street", seed=0, config=FAST)
    smooth = ProceduralWorld.from_prompt("a city street", seed=0, config=dataclasses.replace(FAST, antialias=3))
    cam = camera(yaw_deg=10.0, size=24)
    a, b = plain.render(cam), smooth.render(cam)
    assert torch.allclose(a.depth, b.depth, rtol=1e-5) and torch.equal(a.sky, b.sky)
    assert b.rgb.shape == a.rgb.shape
    assert 0 < (a.rgb - b.rgb).abs().mean() < 0.1
    with pytest.raises(UserInputError, match="antialias"):
        ProceduralWorldConfig(antialias=2)


@pytest.mark.parametrize("prompt", ["snowy mountains at night", "a beach at sunset", "a foggy kitchen", "a city"])
def test_any_camera_gives_finite_in_range_output(prompt: str) -> None:
    # random 6-DoF poses, some under ground, inside trees or outside the room, looking anywhere
    world = ProceduralWorld.from_prompt(prompt, seed=4, config=FAST)
    gen = torch.Generator().manual_seed(0)
    cams = []
    for _ in range(6):
        yaw, pitch = (torch.rand(2, generator=gen) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])).tolist()
        t = ((torch.rand(3, generator=gen) - 0.5) * torch.tensor([40.0, 6.0, 40.0])).tolist()
        cams.append(camera(yaw_deg=yaw, pitch_deg=pitch, t=tuple(t), size=16))
    r = world.render(Cameras.cat(cams))
    assert torch.isfinite(r.rgb).all() and r.rgb.min() >= 0 and r.rgb.max() <= 1
    assert torch.isfinite(r.depth).all() and (r.depth > 0).all() and (r.depth <= FAST.sky_depth).all()


def test_baked_shadows_darken_ground_only() -> None:
    import dataclasses

    lit = ProceduralWorld.from_prompt("a forest", seed=0, config=dataclasses.replace(FAST, shadow_map_resolution=0))
    shaded = ProceduralWorld.from_prompt("a forest", seed=0, config=FAST)
    cam = camera(yaw_deg=200.0)                  # looking back, away from the sun: shadows come toward us
    a, b = lit.render(cam), shaded.render(cam)
    assert torch.equal(a.depth, b.depth)
    ground = a.material[0] == Material.TERRAIN
    assert (b.rgb[0][ground] <= a.rgb[0][ground] + 1e-6).all()
    assert ((a.rgb[0][ground] - b.rgb[0][ground]).sum(-1) > 0.05).float().mean() > 0.02
    assert torch.equal(a.rgb[0][~ground & ~a.sky[0]], b.rgb[0][~ground & ~a.sky[0]])
