"""The active set's parts: frustum regions (against a per-point projection, their slow twin),
frozen Gaussians on disk (freeze/thaw keep every parameter and Adam moment), the whole world."""

from __future__ import annotations

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.representation.active_region import NEAR, box_in_region, frustum_planes, points_in_region
from scenedreamer.representation.config import FitConfig, GaussianConfig
from scenedreamer.representation.fitting import make_optimizer
from scenedreamer.representation.frozen_gaussians import FrozenGaussians
from scenedreamer.representation.gaussians import PARAM_NAMES, GaussianScene
from representation.scenes import look_at


def _cameras() -> Cameras:
    """Two 40x30 cameras: one at the origin looking +z, one at (5, 0, 0) looking +x."""
    eyes = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    targets = torch.tensor([[0.0, 0.0, 1.0], [6.0, 0.0, 0.0]])
    c2w = torch.stack([look_at(e, t) for e, t in zip(eyes, targets)])
    return Cameras(intrinsics_from_fov(60.0, 40, 30).expand(2, 3, 3).clone(), c2w, 40, 30)


def _projected_inside(cameras: Cameras, far: torch.Tensor, margin: float, points: torch.Tensor) -> torch.Tensor:
    """The slow twin: project every point into every camera; inside when its pixel lies in the
    widened image and its z in [NEAR, far]."""
    inside = torch.zeros(points.shape[0], dtype=torch.bool)
    for i in range(len(cameras)):
        w2c = torch.linalg.inv(cameras.c2w[i].double())
        p = (w2c[:3, :3] @ points.double().T).T + w2c[:3, 3]
        z = p[:, 2]
        uv = (cameras.K[i].double() @ p.T).T
        u, v = uv[:, 0] / z, uv[:, 1] / z
        W, H = cameras.width, cameras.height
        inside |= ((z >= NEAR) & (z <= far[i]) & (u >= -margin * W) & (u <= (1 + margin) * W)
                   & (v >= -margin * H) & (v <= (1 + margin) * H))
    return inside


def test_the_region_holds_exactly_the_points_its_cameras_see():
    cameras, far = _cameras(), torch.tensor([8.0, 4.0])
    points = torch.rand(20000, 3, generator=torch.Generator().manual_seed(0)) * 24 - 12
    planes = frustum_planes(cameras, far, 0.1)
    got, want = points_in_region(planes, points), _projected_inside(cameras, far, 0.1, points)
    assert want.sum() > 100 and (~want).sum() > 100           # both kinds are exercised
    # a point exactly on a plane may land either side in float32: allow a handful
    assert int((got != want).sum()) <= 5
    # a ball reaches in: points just behind the far plane of camera 0 count with a radius
    behind = torch.tensor([[0.0, 0.0, 8.3]])
    assert not bool(points_in_region(planes, behind)[0]) and bool(points_in_region(planes, behind, 0.5)[0])


def test_a_box_is_reported_whenever_one_of_its_points_is_inside():
    cameras, far = _cameras(), torch.tensor([8.0, 4.0])
    planes = frustum_planes(cameras, far, 0.0)
    gen = torch.Generator().manual_seed(1)
    reported_any = skipped_any = False
    for _ in range(300):
        low = torch.rand(3, generator=gen) * 30 - 15
        high = low + torch.rand(3, generator=gen) * 3
        inside = points_in_region(planes, low + torch.rand(500, 3, generator=gen) * (high - low)).any()
        reported = box_in_region(planes, low, high)
        assert reported or not bool(inside)                        # conservative: never misses
        reported_any |= reported
        skipped_any |= not reported
    assert reported_any and skipped_any
    assert not box_in_region(planes, torch.tensor([-3.0, -1, -9]), torch.tensor([-2.0, 1, -8]))   # behind both


def _scene(n: int = 300) -> tuple[GaussianScene, dict]:
    """A scene of n random Gaussians and the Adam state of two real optimiser steps."""
    gen = torch.Generator().manual_seed(2)
    scene = GaussianScene.from_points(torch.rand(n, 3, generator=gen) * 10 - 5, torch.rand(n, 3, generator=gen),
                                      torch.rand(n, generator=gen) * 0.1 + 0.01, GaussianConfig())
    optimizer = make_optimizer(scene, FitConfig())
    for _ in range(2):
        optimizer.zero_grad()
        sum((getattr(scene, name) ** 2).sum() for name in PARAM_NAMES).backward()
        optimizer.step()
    return scene, optimizer.state_dict()


def _rows(scene: GaussianScene, state: dict) -> dict[str, torch.Tensor]:
    """Every row's parameters and moments, sorted by position (freezing changes the order)."""
    order = torch.argsort(scene.means.detach()[:, 0])
    rows = {name: getattr(scene, name).detach()[order] for name in PARAM_NAMES}
    for index, name in enumerate(PARAM_NAMES):
        for moment in ("exp_avg", "exp_avg_sq"):
            rows[f"{name}.{moment}"] = state["state"][index][moment][order]
    return rows


def test_freeze_then_thaw_gives_every_row_back_with_its_moments(tmp_path):
    scene, state = _scene()
    before = _rows(scene, state)
    store = FrozenGaussians(tmp_path)
    far_side = scene.means.detach()[:, 0] > 1.0
    state = store.freeze(scene, state, far_side, step=3)
    assert scene.num_gaussians == 300 - int(far_side.sum()) and store.count == int(far_side.sum())
    assert (tmp_path / "frozen_00003.pt").is_file()
    assert all(v.shape[0] == scene.num_gaussians for s in state["state"].values() for k, v in s.items() if k != "step")
    # the index travels through a checkpoint's extra
    store = FrozenGaussians.from_extra(tmp_path, store.to_extra())
    # the whole world holds both parts and leaves the active scene alone
    world = store.whole(scene)
    assert world.num_gaussians == 300 and scene.num_gaussians == 300 - int(far_side.sum())
    # a region that sees everything thaws every row; the chunk retires
    far_back = Cameras(intrinsics_from_fov(60.0, 40, 30)[None], look_at(torch.tensor([0.0, 0, -100]),
                                                                         torch.tensor([0.0, 0, 0]))[None], 40, 30)
    everything = frustum_planes(far_back, torch.tensor([1e6]), 1.0)
    state = store.thaw(scene, state, everything, step=4)
    assert store.count == 0 and store.retired == {"frozen_00003.pt": 4}
    after = _rows(scene, state)
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_thaw_takes_only_what_the_region_reaches_and_whole_can_be_limited_to_it(tmp_path):
    scene, state = _scene()
    store = FrozenGaussians(tmp_path)
    state = store.freeze(scene, state, torch.ones(300, dtype=torch.bool), step=1)
    assert scene.num_gaussians == 0
    planes = frustum_planes(_cameras()[:1], torch.tensor([3.0]), 0.0)
    world = store.whole(scene)
    reach = 3.0 * world.log_scales.detach().exp().amax(-1)
    wanted = points_in_region(planes, world.means.detach(), reach)
    assert 0 < int(wanted.sum()) < 300
    assert store.whole(scene, planes).num_gaussians == int(wanted.sum())
    state = store.thaw(scene, state, planes, step=2)
    assert scene.num_gaussians == int(wanted.sum()) and store.count == 300 - int(wanted.sum())


def test_a_damaged_chunk_is_named_and_old_retired_chunks_are_collected(tmp_path):
    scene, state = _scene()
    store = FrozenGaussians(tmp_path)
    state = store.freeze(scene, state, scene.means.detach()[:, 0] > 0, step=5)
    path = tmp_path / "frozen_00005.pt"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="frozen_00005.pt.*corrupt"):
        store.whole(scene)
    path.unlink()
    with pytest.raises(UserInputError, match="frozen_00005.pt.*cannot be read"):
        store.whole(scene)
    # retired at step 6: named by checkpoint 5, which is on disk until checkpoint 7 is committed
    store.chunks, store.retired["frozen_00005.pt"] = [], 6
    path.write_bytes(b"x")
    store.collect_garbage(step=7, kept_checkpoints=2)
    assert path.exists() and "frozen_00005.pt" in store.retired
    store.collect_garbage(step=8, kept_checkpoints=2)
    assert not path.exists() and store.retired == {}
    # a chunk file of an earlier step that the index does not know (a kill left it) goes too;
    # a later step's file (an uncommitted step's, rewritten when it runs again) stays
    for step in (6, 9):
        (tmp_path / f"frozen_0000{step}.pt").write_bytes(b"x")
    store.collect_garbage(step=8, kept_checkpoints=2)
    assert not (tmp_path / "frozen_00006.pt").exists() and (tmp_path / "frozen_00009.pt").exists()


def test_a_chunk_file_is_read_only_when_rows_of_it_are_thawed(tmp_path):
    """A chunk's box may reach into a region none of its rows reach (two clusters far apart): the
    rows' centres and reach are kept in memory, so such a step reads no chunk file; a store
    reopened from its index (no such memory yet) reads the file once and decides the same."""
    scene, state = _scene()
    store = FrozenGaussians(tmp_path)
    two_clusters = scene.means.detach()[:, 2].abs() > 3.0
    state = store.freeze(scene, state, two_clusters, step=1)
    # a thin view along +x through z = 0, between the clusters: inside the chunk's box, past every row
    thin = Cameras(intrinsics_from_fov(2.0, 40, 30)[None], look_at(torch.tensor([-100.0, 0, 0]),
                                                                   torch.tensor([0.0, 0, 0]))[None], 40, 30)
    between = frustum_planes(thin, torch.tensor([200.0]), 0.0)
    chunk = store.chunks[0]
    assert box_in_region(between, chunk.low, chunk.high)
    index = store.to_extra()
    saved = (tmp_path / chunk.name).read_bytes()
    (tmp_path / chunk.name).unlink()
    state = store.thaw(scene, state, between, step=2)
    assert store.count == int(two_clusters.sum()) and store.whole(scene, between).num_gaussians == scene.num_gaussians
    with pytest.raises(UserInputError, match="cannot be read"):
        FrozenGaussians.from_extra(tmp_path, index).thaw(scene, state, between, step=2)
    # with the file back, the reopened store and the first one thaw the same rows in a region that reaches some
    (tmp_path / chunk.name).write_bytes(saved)
    reopened = FrozenGaussians.from_extra(tmp_path, index)
    first = frustum_planes(_cameras()[:1], torch.tensor([6.0]), 0.0)
    twin_scene, twin_state = _scene()      # receives the reopened store's thawed rows
    state = store.thaw(scene, state, first, step=3)
    twin_state = reopened.thaw(twin_scene, twin_state, first, step=3)
    assert 0 < store.count < int(two_clusters.sum())
    assert torch.equal(store.chunks[0].alive, reopened.chunks[0].alive)
