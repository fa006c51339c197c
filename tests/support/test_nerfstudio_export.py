"""Export of the support database as a nerfstudio dataset."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import intrinsics_from_focal
from scenedreamer.support import SupportDatabase, ViewRecord
from support_views import make_record

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def _export(tmp_path: Path, records: list[ViewRecord]) -> tuple[dict, Path]:
    events = []
    with SupportDatabase.open(tmp_path / "db") as db:
        for r in records:
            db.add(r)
        path = db.export_nerfstudio(tmp_path / "ns", on_event=events.append)
    assert path == tmp_path / "ns" / "transforms.json"
    assert [e.step for e in events] == list(range(1, len(records) + 1))
    return json.loads(path.read_text()), path.parent


def test_transforms_json_and_files(tmp_path: Path) -> None:
    records = [make_record(seed) for seed in range(3)]
    rec0 = records[0]
    # the same intrinsics for all: they must also appear at the top level
    records = [ViewRecord(**{**r.__dict__, "K": rec0.K}) for r in records]
    # one depth beyond the 16-bit millimetre range: kept in the float .npy (nerfstudio's
    # depth_file_path), unknown (0) in the 16-bit PNG rather than clipped
    far = records[2].depth.clone()
    far[0, 0], valid = 70.0, records[2].valid.clone()
    valid[0, 0] = True
    records[2] = ViewRecord(**{**records[2].__dict__, "depth": far, "valid": valid})
    transforms, root = _export(tmp_path, records)

    assert transforms["camera_model"] == "OPENCV"
    K = rec0.K.double()
    for key, value in {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}.items():
        assert transforms[key] == pytest.approx(float(value))
    assert (transforms["w"], transforms["h"]) == (rec0.width, rec0.height)
    assert len(transforms["frames"]) == 3

    for view_id, (frame, record) in enumerate(zip(transforms["frames"], records)):
        c2w_gl = np.array(frame["transform_matrix"])
        c2w_cv = record.c2w.double().numpy()
        np.testing.assert_allclose(c2w_gl, c2w_cv @ OPENCV_TO_OPENGL, atol=1e-12)
        np.testing.assert_allclose(c2w_gl[:3, 2], -c2w_cv[:3, 2])   # OpenGL looks down -z
        np.testing.assert_allclose(c2w_gl[:3, 3], c2w_cv[:3, 3])    # same centre
        assert frame["fl_x"] == pytest.approx(float(K[0, 0])) and frame["w"] == record.width
        assert frame["scenedreamer"]["view_id"] == view_id
        assert frame["scenedreamer"]["provenance"] == record.provenance.value

        image = iio.imread(root / frame["file_path"])
        assert image.dtype == np.uint8 and image.shape == (record.height, record.width, 3)
        np.testing.assert_array_equal(image, np.round(record.rgb.double().numpy() * 255).astype(np.uint8))

        assert frame["depth_file_path"].endswith(".npy")
        depth_counts = np.load(root / frame["depth_file_path"])
        assert depth_counts.dtype == np.float32 and depth_counts.shape == (record.height, record.width)
        exact = record.depth.double().numpy() * 1000.0
        known_all = record.valid.numpy() & (exact > 0)
        np.testing.assert_allclose(depth_counts, np.where(known_all, exact, 0.0), rtol=1e-7)
        depth_mm = iio.imread(root / frame["depth_file_path"].replace(".npy", ".png"))
        assert depth_mm.dtype == np.uint16 and depth_mm.shape == (record.height, record.width)
        want = np.round(exact)
        known = known_all & (want <= 65535)
        np.testing.assert_array_equal(depth_mm, np.where(known, want, 0).astype(np.uint16))

        mask = iio.imread(root / frame["mask_path"])
        np.testing.assert_array_equal(mask, record.valid.numpy().astype(np.uint8) * 255)
    assert iio.imread(root / "depths/frame_00002.png")[0, 0] == 0
    assert np.load(root / "depths/frame_00002.npy")[0, 0] == pytest.approx(70_000.0)
    assert not list(root.rglob("*.tmp"))


def test_per_frame_intrinsics_when_they_differ(tmp_path: Path) -> None:
    a = make_record(0)
    b = ViewRecord(**{**make_record(1).__dict__, "K": intrinsics_from_focal(30.0, 31.0, 15.5, 12.25)})
    transforms, _ = _export(tmp_path, [a, b])
    assert "fl_x" not in transforms and "w" not in transforms
    second = transforms["frames"][1]
    assert (second["fl_x"], second["fl_y"], second["cx"], second["cy"]) == (30.0, 31.0, 15.5, 12.25)


def test_export_errors(tmp_path: Path) -> None:
    with SupportDatabase.open(tmp_path / "db") as db:
        with pytest.raises(UserInputError, match="empty"):
            db.export_nerfstudio(tmp_path / "ns")
        db.add(make_record(0))
        (tmp_path / "afile").write_text("x")
        with pytest.raises(UserInputError, match="afile"):
            db.export_nerfstudio(tmp_path / "afile" / "ns")
        skewed = make_record(1)
        K = skewed.K.clone()
        K[0, 1] = 0.5
        db.add(ViewRecord(**{**skewed.__dict__, "K": K}))
        with pytest.raises(UserInputError, match="skew"):
            db.export_nerfstudio(tmp_path / "ns2")
        assert not (tmp_path / "ns2" / "transforms.json").exists()
        assert torch.equal(db.get(0).rgb, make_record(0).rgb)


def test_points_ply_is_the_known_depth_back_projected(tmp_path: Path) -> None:
    from plyfile import PlyData

    from scenedreamer.geometry.cameras import Cameras
    from scenedreamer.geometry.projection import project_points

    records = [make_record(seed) for seed in range(2)]
    transforms, root = _export(tmp_path, records)
    assert transforms["ply_file_path"] == "points3D.ply"
    vertex = PlyData.read(str(root / "points3D.ply"))["vertex"]
    xyz = np.stack([vertex[c] for c in "xyz"], -1).astype(np.float32)
    rgb = np.stack([vertex[c] for c in ("red", "green", "blue")], -1)
    known = sum(int((r.valid & (r.depth > 0)).sum()) for r in records)
    assert 0 < len(xyz) <= known
    # each point projects back into view 0 or view 1 at its stored depth and colour
    matched = np.zeros(len(xyz), bool)
    for r in records:
        cam = Cameras(r.K.float()[None], r.c2w.float()[None], r.width, r.height)
        uv, z = project_points(torch.from_numpy(xyz)[None], cam)
        col, row = (uv[0, :, 0] - 0.5).round().long(), (uv[0, :, 1] - 0.5).round().long()
        inside = (col >= 0) & (col < r.width) & (row >= 0) & (row < r.height) & (z[0] > 0)
        c, w = col.clamp(0, r.width - 1), row.clamp(0, r.height - 1)
        # float32 back-projection then projection: 1e-4 relative depth error at most
        same = inside & ((z[0] - r.depth[w, c]).abs() <= 1e-4 * r.depth[w, c]) & r.valid[w, c]
        same &= torch.from_numpy((np.abs(rgb.astype(int) - np.rint(r.rgb[w, c].numpy() * 255)) <= 1).all(-1))
        matched |= same.numpy()
    assert matched.all()


def test_rotation_only_cameras_get_the_nerfstudio_option(tmp_path: Path, caplog) -> None:
    base = make_record(0)
    turned = []
    for yaw in (0.0, 0.3, 0.6):                 # one centre, three headings
        c2w = base.c2w.clone()
        c, s = np.cos(yaw), np.sin(yaw)
        c2w[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=c2w.dtype) @ base.c2w[:3, :3]
        turned.append(ViewRecord(**{**base.__dict__, "c2w": c2w}))
    with caplog.at_level("WARNING"):
        transforms, root = _export(tmp_path / "a", turned)
    hint = f"ns-train splatfacto nerfstudio-data --data {root} --auto-scale-poses False"
    assert transforms["scenedreamer"]["ns_train"] == hint
    assert [r.getMessage() for r in caplog.records if hint in r.getMessage()]
    caplog.clear()
    moved = [ViewRecord(**{**make_record(seed).__dict__}) for seed in range(3)]
    assert len({tuple(r.c2w[:3, 3].tolist()) for r in moved}) == 3      # distinct centres
    with caplog.at_level("WARNING"):
        transforms, _ = _export(tmp_path / "b", moved)
    assert "scenedreamer" not in transforms and not caplog.records
