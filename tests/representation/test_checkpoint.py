"""Checkpoints: round trip renders identically; bad files fail with one clear UserInputError."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.representation.checkpoint import (MAGIC, config_from_dict, config_to_dict, load_checkpoint,
                                                    read_header, save_checkpoint)
from scenedreamer.representation.fitting import FitConfig, FitState, fit
from scenedreamer.representation.registry import REPRESENTATION_KINDS
from scenedreamer.representation.config import SamplingConfig
from scenedreamer.representation.triplane import TriplaneConfig, TriplaneNeRF

from .scenes import InMemoryDatabase, default_scene, make_views, orbit_cameras

TINY = TriplaneConfig(
    resolution=8, channels=2, hidden_width=8, feature_dim=3, center=(0.0, 0.5, 4.0), radius=3.0,
    sampling=SamplingConfig(stratified_bins=6, guided_edges=6, eval_stratified_bins=8, eval_guided_edges=8))


@pytest.fixture()
def fitted(tmp_path):
    """A tiny NeRF fitted for a few steps, saved with its FitState."""
    views = make_views(default_scene(), orbit_cameras([0, 120, 240], 10, 10))
    rep = TriplaneNeRF(TINY, seed=1)
    state = fit(rep, InMemoryDatabase(views), FitConfig(patch_size=8, patches_per_step=2, log_every=1), 3,
                torch.Generator().manual_seed(0))
    path = tmp_path / "scene.ckpt"
    save_checkpoint(path, rep, optimizer_state=state.optimizer_state, extra=state.to_extra())
    return rep, state, path, views


def test_the_kinds_table_maps_checkpoint_kinds_to_classes():
    assert isinstance(REPRESENTATION_KINDS, dict)
    assert REPRESENTATION_KINDS["triplane_nerf"].load_class() is TriplaneNeRF
    assert all(kind.load_class().kind == name for name, kind in REPRESENTATION_KINDS.items())


def test_round_trip_renders_identically_and_resumes_fitting(fitted):
    rep, state, path, views = fitted
    ckpt = load_checkpoint(path, expected_kind="triplane_nerf")
    assert ckpt.kind == "triplane_nerf" and ckpt.representation.config == rep.config
    cams = orbit_cameras([60.0], 9, 7)
    rep.eval()
    with torch.no_grad():
        a, b = rep.render(cams), ckpt.representation.render(cams)
    for name in ("rgb", "depth", "opacity", "features"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    resumed = FitState.from_checkpoint(ckpt)
    assert resumed.step == state.step == 3
    assert resumed.metrics == state.metrics
    # Adam moments came back: resuming continues from them (step counters of the params kept).
    saved_steps = [s["step"] for s in resumed.optimizer_state["state"].values()]
    assert all(int(s) == 3 for s in saved_steps)
    after = fit(ckpt.representation, InMemoryDatabase(views), FitConfig(patch_size=8, patches_per_step=2), 2,
                torch.Generator().manual_seed(0), state=resumed)
    assert after.step == 5
    assert all(int(s["step"]) == 5 for s in after.optimizer_state["state"].values())


def test_config_dict_round_trip_keeps_nested_and_tuples():
    cfg = dataclasses.replace(TINY, combine="concat")
    data = json.loads(json.dumps(config_to_dict(cfg)))  # through JSON: tuples become lists
    assert config_from_dict(TriplaneConfig, data) == cfg


def test_truncated_file_is_a_user_error(fitted, tmp_path):
    _, _, path, _ = fitted
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserInputError, match="truncated.ckpt.*truncated"):
        load_checkpoint(bad)


def test_corrupt_byte_is_a_user_error(fitted, tmp_path):
    _, _, path, _ = fitted
    data = bytearray(path.read_bytes())
    data[-500] ^= 0xFF
    bad = tmp_path / "corrupt.ckpt"
    bad.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="corrupt.ckpt.*corrupt"):
        load_checkpoint(bad)


def test_wrong_kind_unknown_kind_and_not_a_checkpoint(fitted, tmp_path):
    _, _, path, _ = fitted
    with pytest.raises(UserInputError, match="scene.ckpt.*'triplane_nerf'.*expected 'gaussians'"):
        load_checkpoint(path, expected_kind="gaussians")
    data = path.read_bytes()
    header = read_header(path)
    header["kind"] = "voxels"
    rest = data[len(MAGIC):]
    other = tmp_path / "voxels.ckpt"
    other.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + rest[rest.index(b"\n") + 1:])
    with pytest.raises(UserInputError, match="voxels.ckpt.*unknown representation kind 'voxels'"):
        load_checkpoint(other)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"hello world")
    with pytest.raises(UserInputError, match="junk.ckpt.*not a scenedreamer checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(UserInputError, match="missing.ckpt.*not found"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_state_that_does_not_fit_the_config_is_a_user_error(tmp_path):
    rep = TriplaneNeRF(TINY)
    path = tmp_path / "mismatch.ckpt"
    save_checkpoint(path, rep)
    # Forge a valid file whose config says a different resolution than its tensors.
    import hashlib
    import io
    data = path.read_bytes()
    rest = data[len(MAGIC):]
    body = rest[rest.index(b"\n") + 1:]
    payload = torch.load(io.BytesIO(body), weights_only=True)
    payload["config"]["resolution"] = 16
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    header = {"version": 1, "kind": "triplane_nerf", "payload_bytes": len(body),
              "payload_sha256": hashlib.sha256(body).hexdigest()}
    path.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + body)
    with pytest.raises(UserInputError, match="mismatch.ckpt.*does not fit"):
        load_checkpoint(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    rep = TriplaneNeRF(TINY)
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, rep)
    save_checkpoint(path, rep, extra={"note": "second"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt"]
    assert load_checkpoint(path).extra == {"note": "second"}
