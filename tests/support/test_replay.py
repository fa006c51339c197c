"""Replay sampling: deterministic per generator, honours the recent / old weighting."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from scenedreamer.support import SupportConfig, SupportDatabase
from scenedreamer.support.replay import replay_weights
from support_views import make_record


@pytest.fixture
def db10(tmp_path: Path):
    with SupportDatabase.open(tmp_path, config=SupportConfig(replay_recent=3, replay_recent_weight=0.9)) as db:
        for seed in range(10):
            db.add(make_record(seed, height=4, width=4))
        yield db


def test_same_generator_state_same_views(db10) -> None:
    a = db10.sample_replay(50, torch.Generator().manual_seed(7), recent=2, recent_weight=0.5)
    b = db10.sample_replay(50, torch.Generator().manual_seed(7), recent=2, recent_weight=0.5)
    c = db10.sample_replay(50, torch.Generator().manual_seed(8), recent=2, recent_weight=0.5)
    assert a == b and a != c
    assert set(a) <= set(db10.ids())
    g = torch.Generator().manual_seed(7)
    first, second = db10.sample_replay(5, g), db10.sample_replay(5, g)   # the generator advances
    assert first != second


def test_recent_and_old_weighting(db10) -> None:
    n = 20000
    counts = Counter(db10.sample_replay(n, torch.Generator().manual_seed(0), recent=2, recent_weight=0.8))
    recent_share = (counts[8] + counts[9]) / n
    assert recent_share == pytest.approx(0.8, abs=0.02)
    for view_id in (8, 9):
        assert counts[view_id] / n == pytest.approx(0.4, abs=0.02)
    for view_id in range(8):
        assert counts[view_id] / n == pytest.approx(0.2 / 8, abs=0.008)


def test_extremes_and_defaults(db10) -> None:
    g = torch.Generator().manual_seed(1)
    assert set(db10.sample_replay(200, g, recent=3, recent_weight=1.0)) == {7, 8, 9}
    assert set(db10.sample_replay(500, g, recent=3, recent_weight=0.0)) == set(range(7))
    uniform = Counter(db10.sample_replay(10000, g, recent=50, recent_weight=0.9))  # all are recent
    assert all(c / 10000 == pytest.approx(0.1, abs=0.02) for c in uniform.values())
    defaults = Counter(db10.sample_replay(10000, g))        # config: last 3 views share 0.9
    assert (defaults[7] + defaults[8] + defaults[9]) / 10000 == pytest.approx(0.9, abs=0.02)
    assert db10.sample_replay(0, g) == []


def test_ids_not_positions_after_truncation(db10) -> None:
    db10.truncate_after_step(1)          # make_record: step = seed // 2 -> views 0..3 stay
    db10.add(make_record(42, height=4, width=4, step=9))   # id 4
    drawn = db10.sample_replay(300, torch.Generator().manual_seed(3), recent=1, recent_weight=0.5)
    assert set(drawn) == {0, 1, 2, 3, 4}


def test_replay_weights_sum_to_one_and_empty_database(tmp_path: Path) -> None:
    for num, recent, weight in [(1, 0, 0.3), (5, 2, 0.0), (5, 5, 0.7), (7, 3, 1.0)]:
        assert float(replay_weights(num, recent, weight).sum()) == pytest.approx(1.0)
    with SupportDatabase.open(tmp_path / "empty") as db:
        with pytest.raises(ValueError, match="empty"):
            db.sample_replay(3, torch.Generator())


def test_a_subset_samples_like_a_database_of_only_its_views(tmp_path):
    """SupportDatabase.subset (a long world's active views): replay over its ids with the
    database's recency weights, the same draws as sample_replay_positions over them."""
    from scenedreamer.support.replay import sample_replay_positions

    with SupportDatabase.open(tmp_path / "db") as db:
        ids = [db.add(make_record(i, height=4, width=4, step=i)) for i in range(6)]
        subset = db.subset([ids[4], ids[1], ids[2]])
        assert subset.ids() == [ids[1], ids[2], ids[4]] and len(subset) == 3
        assert subset.get(ids[2]).step == db.get(ids[2]).step
        drawn = subset.sample_replay(50, torch.Generator().manual_seed(3))
        positions = sample_replay_positions(3, 50, torch.Generator().manual_seed(3), db.config.replay_recent,
                                            db.config.replay_recent_weight)
        assert drawn == [subset.ids()[p] for p in positions]
        with pytest.raises(ValueError, match="99"):
            db.subset([99])
