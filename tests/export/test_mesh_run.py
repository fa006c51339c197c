"""The GLB mesh of a tiny offline run, measured as a glTF viewer shows it (tests/export/zbuffer.py:
an independent reader and z-buffer, no code shared with the mesher), and the backdrop mask the
run stored (the offline world knows its sky exactly where a view made its pixels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.priors.offline import build_offline_priors
from scenedreamer.support.database import SupportDatabase
from export.zbuffer import glb_at_view, mesh_scores, read_glb_nodes
from shared_runs import shared_run_copy

PROMPT = "a forest lake at sunset"
# 96x64, 4 frames: ~10 s on a CPU; big enough that trees, lake and ground all show
ARGS = ["--resolution", "96x64", "--frames", "4", "--representation", "gaussians",
        "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=3",
        "--set", "export.video=false", "--set", "export.nerfstudio=false", "--set", "export.distill.steps=5",
        "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with tests/export/test_collider_run.py (same PROMPT, ARGS)
    return shared_run_copy(tmp_path_factory, worker_id, PROMPT, ARGS, tmp_path_factory.mktemp("mesh_run") / "run")


def _views(run):
    with SupportDatabase.open(run / "support", create=False) as db:
        return [db.get(v) for v in db.ids()]


def test_the_stored_backdrop_is_the_offline_worlds_sky_where_made_and_the_carried_flag_elsewhere(run):
    """ViewRecord.backdrop says what the view's image shows: the offline world's exact sky on
    the pixels the view made (all of the first view, the inpainted pixels of later ones), and on
    warp-carried pixels the flag the warp carried with their colour, which differs from the
    world's sky only where the warped image does (tree silhouettes a pixel off)."""
    from scenedreamer.support.records import Provenance

    world = build_offline_priors(PROMPT, 0).world          # the run's world: same prompt, seed 0
    views = _views(run)
    assert len(views) >= 5
    for v in views:
        sky = world.render(v.camera).sky[0]
        made = torch.ones_like(sky) if v.provenance is Provenance.INITIAL else v.inpainted
        assert v.backdrop.dtype == sky.dtype and bool((v.backdrop[made] == sky[made]).all())
        # measured: 98.2-99.5 % of this run's pixels (96x64), 99.2-99.7 % of the `make run`
        # scene's (256x256): a silhouette pixel is a larger share here; 97 % leaves a margin
        assert float((v.backdrop == sky).float().mean()) >= 0.97
        assert 0.2 < float(sky.float().mean()) < 0.8      # a sunset lake: sky and ground both in view


def test_glb_covers_what_the_cameras_saw_with_their_depth_and_colours(run, tmp_path):
    out = tmp_path / "scene.glb"
    assert main(["export", str(run), "--format", "glb", "--out", str(out), "--quiet"]) == 0
    nodes = read_glb_nodes(out)
    assert list(nodes) == ["scene"]                        # no backdrop unless asked for
    scores = []
    for v in _views(run):
        depth, rgb = glb_at_view(nodes, "scene", v.K.numpy(), v.c2w.numpy(), v.width, v.height)
        surface = (v.valid & ~v.backdrop & (v.depth > 0)).numpy()
        scores.append(mesh_scores(depth, rgb, v.depth.numpy(), v.rgb.numpy(), surface))
        # nothing of the mesh lies at the sky's stand-in depth (the previous release's sky wall)
        assert not (np.isfinite(depth) & v.backdrop.numpy() & (depth > 90.0)).any()
    first = scores[0]
    # Thresholds: the targets (90 % coverage, 90 % within 5 %, 25 dB) hold at the `make
    # run` size (benchmarks/bench_mesh.py, measured 94-97 %, 90-96 %, >= 30.6 dB at 256x256); at
    # 96x64 the silhouettes of thin trees are a larger share of the pixels: measured 0.85 / 0.85
    # on the first view (exact depth) and 0.79-0.87 coverage, 28-48 dB on all. The previous
    # release's mesh covered 0 % of them.
    assert first["coverage"] >= 0.8 and first["depth_ok"] >= 0.8 and first["psnr"] >= 40.0, first
    assert min(s["coverage"] for s in scores) >= 0.7, scores
    assert min(s["psnr"] for s in scores) >= 25.0, scores


def test_with_backdrop_writes_the_sky_as_its_own_far_node(run, tmp_path):
    out = tmp_path / "sky.glb"
    assert main(["export", str(run), "--format", "glb", "--out", str(out), "--with-backdrop", "--quiet"]) == 0
    nodes = read_glb_nodes(out)
    assert list(nodes) == ["scene", "backdrop"]
    views = _views(run)
    sky_verts = nodes["backdrop"][0] * np.array([1.0, -1.0, -1.0])
    scene_verts = nodes["scene"][0] * np.array([1.0, -1.0, -1.0])
    centre = np.mean([v.c2w[:3, 3].numpy() for v in views], axis=0)
    far = max(float(v.depth[~v.backdrop].max()) for v in views)
    r = np.linalg.norm(sky_verts - centre, axis=1)
    assert np.allclose(r, 2.0 * far, rtol=1e-4)           # ViewMeshConfig.backdrop_radius_factor
    assert np.linalg.norm(scene_verts - centre, axis=1).max() < r.min()
    # the sky node shows the sky: from the first camera it covers most of its backdrop pixels
    v = views[0]
    depth, rgb = glb_at_view(nodes, "backdrop", v.K.numpy(), v.c2w.numpy(), v.width, v.height)
    sky = v.backdrop.numpy()
    assert (np.isfinite(depth) & sky).sum() >= 0.8 * sky.sum()


def test_a_run_stored_before_the_backdrop_mask_still_exports(run, tmp_path):
    """An older database (no backdrop array) derives the mask from depth and still meshes."""
    import json
    import os
    import shutil
    import sqlite3

    from scenedreamer.support.database import DB_FILE, VIEWS_DIR
    from scenedreamer.support.storage import LEGACY_ARRAYS, read_view_file, write_view_file

    old = tmp_path / "old"
    shutil.copytree(run, old)
    with sqlite3.connect(old / "support" / DB_FILE) as con:
        rows = con.execute("SELECT view_id, file FROM views").fetchall()
        for view_id, name in rows:
            path = old / "support" / VIEWS_DIR / name
            arrays = read_view_file(path, list(LEGACY_ARRAYS) + ["backdrop"])
            write_view_file(path, {k: arrays[k] for k in LEGACY_ARRAYS}, fsync=False)
            con.execute("UPDATE views SET array_names = ?, file_bytes = ? WHERE view_id = ?",
                        (json.dumps(list(LEGACY_ARRAYS)), os.stat(path).st_size, view_id))
    out = tmp_path / "old.glb"
    assert main(["export", str(old), "--format", "glb", "--out", str(out), "--quiet"]) == 0
    assert len(read_glb_nodes(out)["scene"][1]) > 1000
