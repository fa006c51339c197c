"""Frustum overlap (fast vs slow twin) and neighbour ranking on a known camera layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.support import Provenance, SupportConfig, SupportDatabase, ViewRecord
from scenedreamer.support.overlap import frustum_overlap, frustum_overlap_reference, pose_distances
from support_views import look_at_pose

H, W = 24, 32
K = intrinsics_from_fov(60.0, W, H)


def _view(c2w: torch.Tensor, depth: float = 2.0, valid: bool = True) -> ViewRecord:
    return ViewRecord(rgb=torch.full((H, W, 3), 0.5), depth=torch.full((H, W), depth),
                      valid=torch.full((H, W), valid), inpainted=torch.zeros(H, W, dtype=torch.bool),
                      K=K, c2w=c2w, provenance=Provenance.WARP_INPAINT, step=0, prompt="p")


def _query(c2w: torch.Tensor) -> Cameras:
    return Cameras(K, c2w, W, H)


# name -> pose; every view sees depth 2, the query sits at the origin looking along +z.
LAYOUT = {
    "same": look_at_pose((0.0, 0.0, 0.0)),
    "behind": look_at_pose((0.0, 0.0, -1.0)),       # sees the whole query frustum, 1 unit back
    "shift_small": look_at_pose((0.1, 0.0, 0.0)),
    "shift_large": look_at_pose((1.0, 0.0, 0.0)),
    "sideways": look_at_pose((0.0, 0.0, 0.0), yaw_deg=90.0),
    "backwards": look_at_pose((0.0, 0.0, 0.0), yaw_deg=180.0),
}
EXPECTED_ORDER = ["same", "behind", "shift_small", "shift_large", "sideways", "backwards"]


@pytest.fixture
def layout_db(tmp_path: Path):
    names = ["backwards", "shift_large", "sideways", "behind", "shift_small", "same"]  # not ranked
    with SupportDatabase.open(tmp_path) as db:
        ids = {name: db.add(_view(LAYOUT[name])) for name in names}
        yield db, ids


def test_neighbours_order_on_a_known_layout(layout_db) -> None:
    db, ids = layout_db
    query = _query(look_at_pose((0.0, 0.0, 0.0)))
    overlap = dict(zip(db.ids(), db.overlaps(query).tolist()))
    by_name = {name: overlap[i] for name, i in ids.items()}
    assert by_name["same"] == 1.0 and by_name["behind"] == 1.0
    assert 0.9 < by_name["shift_small"] < 1.0
    assert 0.4 < by_name["shift_large"] < 0.7          # ~ (2 tan 30 * 2 - 1) / (2 tan 30 * 2)
    assert by_name["sideways"] == 0.0 and by_name["backwards"] == 0.0
    assert db.neighbours(query, k=6) == [ids[n] for n in EXPECTED_ORDER]
    assert db.neighbours(query, k=2) == [ids["same"], ids["behind"]]
    assert db.neighbours(query, k=0) == []


def test_neighbour_filters(layout_db) -> None:
    db, ids = layout_db
    query = _query(look_at_pose((0.0, 0.0, 0.0)))
    assert db.neighbours(query, k=10, max_distance=0.5) == \
        [ids[n] for n in ("same", "shift_small", "sideways", "backwards")]
    assert db.neighbours(query, k=10, min_overlap=0.5) == \
        [ids[n] for n in ("same", "behind", "shift_small", "shift_large")]


def test_pose_distance_breaks_overlap_ties_with_rotation() -> None:
    c2w = torch.stack([look_at_pose((0.0, 0.0, 0.0), yaw_deg=90.0), look_at_pose((0.5, 0.0, 0.0))])
    centre, pose = pose_distances(look_at_pose((0.0, 0.0, 0.0)), c2w, rotation_weight=2.0)
    assert torch.allclose(centre, torch.tensor([0.0, 0.5], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(pose, torch.tensor([2.0 * torch.pi / 2, 0.5], dtype=torch.float64), atol=1e-6)


def test_fast_overlap_matches_the_slow_twin() -> None:
    g = torch.Generator().manual_seed(0)
    query = Cameras(intrinsics_from_fov(55.0, 40, 30), look_at_pose((0.1, -0.2, 0.3), yaw_deg=10.0), 40, 30)
    poses = [look_at_pose(tuple((torch.rand(3, generator=g) * 2 - 1).tolist()),
                          yaw_deg=float(torch.rand(1, generator=g) * 120 - 60)) for _ in range(12)]
    candidates = Cameras(intrinsics_from_fov(70.0, W, H).expand(12, 3, 3), torch.stack(poses), W, H)
    depths = 0.5 + 5.0 * torch.rand(12, 3, generator=g)
    grid = 8
    fast = frustum_overlap(query, candidates, depths, grid)
    slow = frustum_overlap_reference(query, candidates, depths, grid)
    assert ((fast > 0) & (fast < 1)).sum() >= 4          # the cases are not all trivial
    # float32 vs float64 may flip a point lying exactly on an image border: allow one
    assert torch.allclose(fast, slow, atol=1.0 / (3 * grid * grid) + 1e-6)


def test_database_overlaps_handle_mixed_sizes_and_views_without_depth(tmp_path: Path) -> None:
    config = SupportConfig(fallback_depths=(1.0, 3.0, 9.0))
    query = _query(look_at_pose((0.3, 0.0, 0.0), yaw_deg=15.0))
    small = ViewRecord(rgb=torch.zeros(8, 16, 3), depth=torch.full((8, 16), 3.0),
                       valid=torch.ones(8, 16, dtype=torch.bool), inpainted=torch.zeros(8, 16, dtype=torch.bool),
                       K=intrinsics_from_fov(40.0, 16, 8), c2w=look_at_pose((0.0, 0.0, 0.0)),
                       provenance=Provenance.INITIAL, step=0, prompt="p")
    with SupportDatabase.open(tmp_path, config=config) as db:
        db.add(_view(look_at_pose((0.0, 0.0, 0.0)), valid=False))          # -> fallback depths
        db.add(small)
        db.add(_view(look_at_pose((0.5, 0.0, 0.0)), depth=4.0))
        got = db.overlaps(query)
        for view_id, depths in [(0, [1.0, 3.0, 9.0]), (1, [3.0] * 3), (2, [4.0] * 3)]:
            want = frustum_overlap_reference(query, db.view_info(view_id).camera,
                                             torch.tensor([depths]), config.overlap_grid)
            assert got[view_id] == pytest.approx(float(want[0]), abs=1.0 / (3 * 16 * 16) + 1e-6)
