"""Round trips, validation, ids, cameras, truncation and folder handling of SupportDatabase."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scenedreamer.errors import UserInputError
from scenedreamer.support import SupportConfig, SupportDatabase, ViewRecord
from scenedreamer.support.database import DB_FILE, VIEWS_DIR
from support_views import assert_same_record, make_record


@pytest.mark.parametrize("fsync", [False, True])
def test_round_trip_is_exact_in_memory_and_after_reopen(tmp_path: Path, fsync: bool) -> None:
    records = [make_record(seed) for seed in range(4)]
    with SupportDatabase.open(tmp_path / "db", config=SupportConfig(fsync=fsync)) as db:
        ids = [db.add(r) for r in records]
        assert ids == [0, 1, 2, 3]
        assert db.ids() == ids and len(db) == 4 and 2 in db and 7 not in db
        for view_id, record in zip(ids, records):
            got = db.get(view_id)
            assert got.view_id == view_id
            assert_same_record(got, record)
    with SupportDatabase.open(tmp_path / "db", create=False) as db:
        assert db.ids() == [0, 1, 2, 3]
        for view_id, record in zip(ids, records):
            assert_same_record(db.get(view_id), record)
        assert db.view_info(3).step == records[3].step
        assert db.last_step() == max(r.step for r in records)
        db.truncate_after_step(records[1].step)
        assert db.ids() == [i for i in ids if records[i].step <= records[1].step]


def test_extra_round_trips_tensors_and_json(tmp_path: Path) -> None:
    features = torch.arange(24, dtype=torch.int16).reshape(2, 3, 4)
    record = make_record(5)
    record = ViewRecord(**{**record.__dict__, "extra": {"features": features, "note": {"a": [1, 2.5]}}})
    with SupportDatabase.open(tmp_path) as db:
        db.add(record)
    with SupportDatabase.open(tmp_path) as db:
        extra = db.get(0).extra
    assert extra["note"] == {"a": [1, 2.5]}
    assert extra["features"].dtype == torch.int16 and torch.equal(extra["features"], features)


def test_float16_storage_rounds_rgb_only(tmp_path: Path) -> None:
    record = make_record(3)
    with SupportDatabase.open(tmp_path, config=SupportConfig(rgb_storage_dtype="float16")) as db:
        got = db.get(db.add(record))
    assert got.rgb.dtype == torch.float32
    assert torch.equal(got.rgb, record.rgb.half().float())
    assert not torch.equal(got.rgb, record.rgb)  # it really was stored in half precision
    assert torch.equal(got.depth, record.depth)


def _with(record: ViewRecord, **changes) -> ViewRecord:
    return ViewRecord(**{**record.__dict__, **changes})


@pytest.mark.parametrize("change, field", [
    (lambda r: {"rgb": r.rgb * 2.0}, "rgb"),
    (lambda r: {"rgb": r.rgb[..., :2]}, "rgb"),
    (lambda r: {"depth": r.depth[:-1]}, "depth"),
    (lambda r: {"depth": torch.full_like(r.depth, float("nan"))}, "depth"),
    (lambda r: {"valid": r.valid.float()}, "valid"),
    (lambda r: {"inpainted": r.inpainted[:, :3]}, "inpainted"),
    (lambda r: {"c2w": r.c2w * 2.0}, "c2w"),
    (lambda r: {"K": r.K[:2]}, "K"),
    (lambda r: {"step": "3"}, "step"),
    (lambda r: {"extra": {"bad": object()}}, "extra"),
])
def test_malformed_record_is_a_user_error_naming_the_field(tmp_path: Path, change, field) -> None:
    record = make_record(1)
    with SupportDatabase.open(tmp_path) as db:
        with pytest.raises(UserInputError, match=f"ViewRecord.{field}"):
            db.add(_with(record, **change(record)))
        assert len(db) == 0
        assert list((tmp_path / VIEWS_DIR).iterdir()) == []  # nothing half-written either
        assert db.add(record) == 0                          # and the database still works


def test_get_unknown_id_raises_key_error(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path) as db:
        db.add(make_record(0))
        with pytest.raises(KeyError, match="no view 9"):
            db.get(9)


def test_cameras_stack_and_reject_mixed_sizes(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path) as db:
        a, b = make_record(0), make_record(1)
        db.add(a)
        db.add(b)
        cams = db.cameras()
        assert (cams.width, cams.height, len(cams)) == (a.width, a.height, 2)
        assert torch.equal(cams.K[1], b.K) and torch.equal(cams.c2w[0], a.c2w)
        assert torch.equal(db.cameras([1]).c2w[0], b.c2w)
        db.add(make_record(2, height=16, width=16))
        with pytest.raises(UserInputError, match="several image sizes"):
            db.cameras()
        assert len(db.cameras([0, 1])) == 2


def test_truncate_after_step_drops_later_views_and_resumes_numbering(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path) as db:
        for seed in range(6):
            db.add(make_record(seed, step=seed))
        db.truncate_after_step(2)
        assert db.ids() == [0, 1, 2]
        assert sorted(p.name for p in (tmp_path / VIEWS_DIR).iterdir()) == \
            [db.view_info(i).file for i in range(3)]
        assert db.add(make_record(10, step=3)) == 3
        db.truncate_after_step(100)  # nothing to drop
    with SupportDatabase.open(tmp_path) as db:
        assert db.ids() == [0, 1, 2, 3]
        assert_same_record(db.get(3), make_record(10, step=3))
        db.truncate_after_step(-1)
        assert len(db) == 0 and db.last_step() is None
        assert db.add(make_record(0)) == 0


def test_open_cleans_leftovers_and_drops_rows_with_broken_files(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path) as db:
        for seed in range(3):
            db.add(make_record(seed))
        broken_file = tmp_path / VIEWS_DIR / db.view_info(1).file
    views = tmp_path / VIEWS_DIR
    (views / "00000007.npys").write_bytes(b"uncommitted add")
    (views / ".00000008.npys.abc.npys.tmp").write_bytes(b"half a temp file")
    broken_file.write_bytes(broken_file.read_bytes()[:100])       # a short (partial) file
    with pytest.warns(RuntimeWarning, match=r"dropped support views \[1\]"):
        db = SupportDatabase.open(tmp_path)
    with db:
        assert db.ids() == [0, 2] and db.dropped_on_open == [1]
        assert sorted(p.name for p in views.iterdir()) == [db.view_info(0).file, db.view_info(2).file]
        assert_same_record(db.get(2), make_record(2))
        assert db.add(make_record(3)) == 3


def test_second_open_of_an_open_database_is_refused(tmp_path: Path) -> None:
    db = SupportDatabase.open(tmp_path)
    with pytest.raises(UserInputError, match="already open"):
        SupportDatabase.open(tmp_path)
    db.close()
    db.close()  # idempotent
    with SupportDatabase.open(tmp_path) as again:
        assert len(again) == 0


def test_missing_database_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no support database"):
        SupportDatabase.open(tmp_path / "nothing", create=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no support database"):
        SupportDatabase.open(tmp_path / "empty", create=False)


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserInputError, match="not a readable support database"):
        SupportDatabase.open(tmp_path)
    with SupportDatabase.open(tmp_path / "fine"):  # the lock of the failed open was released
        pass


def test_folder_under_a_regular_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    folder = tmp_path / "afile" / "db"
    with pytest.raises(UserInputError, match=str(folder)):
        SupportDatabase.open(folder)


def _make_unwritable(folder: Path) -> str | None:
    """chmod 0o555; as root (which ignores modes) also the immutable flag. Returns how, or None."""
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return "chmod"
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        return "chattr"
    return None


def test_unwritable_folder_is_a_user_error_naming_it(tmp_path: Path) -> None:
    for existing in (False, True):
        folder = tmp_path / f"db_{existing}"
        if existing:
            with SupportDatabase.open(folder) as db:
                db.add(make_record(0))
        else:
            folder.mkdir()
        how = _make_unwritable(folder)
        try:
            if how is None:
                pytest.skip("cannot make a folder unwritable here (root without chattr)")
            with pytest.raises(UserInputError, match=f"{folder}: .*not writable"):
                SupportDatabase.open(folder)
        finally:
            if how == "chattr":
                subprocess.run(["chattr", "-i", str(folder)], check=True)
            folder.chmod(0o755)


def test_rows_are_plain_sqlite_in_wal_mode(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path) as db:
        db.add(make_record(0))
        db.sync()
    conn = sqlite3.connect(tmp_path / DB_FILE)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT view_id, provenance FROM views").fetchall() == \
            [(0, make_record(0).provenance.value)]
    finally:
        conn.close()


def test_refuses_a_foreign_views_folder(tmp_path: Path) -> None:
    (tmp_path / VIEWS_DIR).mkdir()
    (tmp_path / VIEWS_DIR / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(UserInputError, match="refusing"):
        SupportDatabase.open(tmp_path)
    assert (tmp_path / VIEWS_DIR / "holiday.jpg").exists()


@settings(max_examples=15, deadline=None)
@given(height=st.integers(1, 7), width=st.integers(1, 9), seed=st.integers(0, 2**16),
       valid_fraction=st.sampled_from([0.0, 0.5, 1.0]), half=st.booleans())
def test_round_trip_property(tmp_path_factory, height, width, seed, valid_fraction, half) -> None:
    """Any size (down to 1x1), no / some / all valid depth, both rgb storage dtypes."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.rand(height, width, generator=g) < valid_fraction
    record = ViewRecord(rgb=torch.rand(height, width, 3, generator=g),
                        depth=torch.rand(height, width, generator=g) * valid, valid=valid,
                        inpainted=~valid, K=make_record(seed).K, c2w=make_record(seed).c2w,
                        provenance=make_record(seed).provenance, step=seed, prompt="")
    storage = "float16" if half else "float32"
    folder = tmp_path_factory.mktemp("prop")
    with SupportDatabase.open(folder, config=SupportConfig(rgb_storage_dtype=storage)) as db:
        db.add(record)
    with SupportDatabase.open(folder) as db:
        got = db.get(0)
        assert torch.equal(got.rgb, record.rgb.half().float() if half else record.rgb)
        for name in ("depth", "valid", "inpainted", "K", "c2w"):
            assert torch.equal(getattr(got, name), getattr(record, name)), name
        assert (db.view_info(0).depth_quantiles is None) == (not bool((record.depth > 0).any()))
        assert len(db.neighbours(record.camera, k=3)) == 1


def test_backdrop_defaults_to_none_and_is_validated(tmp_path: Path) -> None:
    record = make_record(0)
    plain = ViewRecord(rgb=record.rgb, depth=record.depth, valid=record.valid, inpainted=record.inpainted,
                       K=record.K, c2w=record.c2w, provenance=record.provenance, step=0, prompt="p")
    assert plain.backdrop.dtype == torch.bool and plain.backdrop.shape == (24, 32) and not plain.backdrop.any()
    wrong = ViewRecord(rgb=record.rgb, depth=record.depth, valid=record.valid, inpainted=record.inpainted,
                       K=record.K, c2w=record.c2w, provenance=record.provenance, step=0, prompt="p",
                       backdrop=torch.zeros(24, 31, dtype=torch.bool))
    with SupportDatabase.open(tmp_path / "db") as db:
        with pytest.raises(UserInputError, match="ViewRecord.backdrop must be"):
            db.add(wrong)
        assert len(db) == 0


def test_a_database_written_before_the_backdrop_mask_derives_it_from_depth(tmp_path: Path) -> None:
    """A view file and row without "backdrop" (as the previous release wrote them) still load: the
    mask is depth >= SupportConfig.legacy_backdrop_depth."""
    import json

    import numpy as np

    from scenedreamer.support.storage import LEGACY_ARRAYS, read_view_file, write_view_file

    record = make_record(1)
    far = torch.where(torch.arange(32)[None, :] < 8, torch.tensor(100.0), record.depth)   # a "sky" band
    record = ViewRecord(**{**record.__dict__, "depth": far})
    with SupportDatabase.open(tmp_path / "db") as db:
        db.add(record)
        name = db.view_info(0).file
    # rewrite view 0 in the old layout: the four legacy arrays, and the row listing only them
    path = tmp_path / "db" / VIEWS_DIR / name
    arrays = read_view_file(path, list(LEGACY_ARRAYS) + ["backdrop"])
    write_view_file(path, {k: arrays[k] for k in LEGACY_ARRAYS}, fsync=False)
    with sqlite3.connect(tmp_path / "db" / DB_FILE) as con:
        con.execute("UPDATE views SET array_names = ?, file_bytes = ? WHERE view_id = 0",
                    (json.dumps(list(LEGACY_ARRAYS)), os.stat(path).st_size))
    for legacy in (70.0, 150.0):
        with SupportDatabase.open(tmp_path / "db", create=False,
                                  config=SupportConfig(legacy_backdrop_depth=legacy)) as db:
            got = db.get(0)
        assert torch.equal(got.depth, far) and got.backdrop.dtype == torch.bool
        assert torch.equal(got.backdrop, far >= legacy)
        assert bool(got.backdrop[:, :8].all()) == (legacy <= 100.0)
    assert not np.array_equal(arrays["backdrop"], (far >= 70.0).numpy())   # derived, not the stored one
