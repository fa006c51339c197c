"""`scenedreamer eval`: two tiny runs give metrics.json, the side-by-side table and decodable
plots; absent CLIP weights read "unavailable"; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from scenedreamer.cli import main
from tiny_models import tiny_run_args
from scenedreamer.eval.report import PLOT_SIZE_PX

TINY = tiny_run_args("32x32", 2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished tiny offline runs (different trajectories) and a tiny random CLIP folder."""
    from tiny_models import tiny_clip_model

    root = tmp_path_factory.mktemp("eval")
    assert main(["generate", "a forest lake", "--out", str(root / "a"), *TINY]) == 0
    assert main(["generate", "a forest lake", "--out", str(root / "b"), "--trajectory", "forward", *TINY]) == 0
    tiny_clip_model(root / "clip")
    return root


@pytest.mark.slow
def test_two_runs_give_json_table_and_plots(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", str(runs / "a"), str(runs / "b"), "--out", str(out), "--frames", "4",
                 "--clip-model", str(runs / "clip"), "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["a", "b"] and data["same_trajectory"] is False
    a = data["runs"][0]["metrics"]
    for name in ("clip_score", "brisque", "depth_reprojection_error", "flow_warping_error", "support_psnr",
                 "gt_psnr", "gt_ssim", "gt_depth_error"):
        assert a[name]["available"], (name, a[name])
        assert np.isfinite(a[name]["value"])
    assert len(a["clip_score"]["per_frame"]) == 4 and len(a["flow_warping_error"]["per_frame"]) == 3
    assert 0 <= a["clip_score"]["value"] <= 100 and 0 < a["gt_ssim"]["value"] <= 1
    # 32 px frames are smaller than NIQE's 96 px patches: unavailable, with the reason, no number
    assert not a["niqe"]["available"] and "value" not in a["niqe"] and a["niqe"]["reason"]
    table = (out / "table.md").read_text()
    assert "| gt_psnr | higher |" in table and "different trajectories" in table
    assert "different trajectories" in capsys.readouterr().out
    for rel in data["files"]:
        if rel.endswith(".png"):
            with Image.open(out / rel) as im:
                im.load()
                assert im.size == PLOT_SIZE_PX
    assert len([f for f in data["files"] if f.endswith(".png")]) == 2 * len(a)
    # a second eval into the same folder replaces only what the first wrote
    assert main(["eval", str(runs / "a"), "--out", str(out), "--frames", "3", "--clip-model", "", "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert len(data["runs"]) == 1 and not data["runs"][0]["metrics"]["clip_score"]["available"]


def test_absent_clip_weights_read_unavailable(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "report"
    assert main(["eval", str(runs / "a"), "--out", str(out), "--frames", "2", "--quiet"]) == 0
    clip = json.loads((out / "metrics.json").read_text())["runs"][0]["metrics"]["clip_score"]
    assert clip == {**clip, "available": False} and "value" not in clip
    assert "clip-vit-b32" in clip["reason"] and "models download" in clip["reason"]
    assert "clip_score: clip-vit-b32 is not cached" in (out / "table.md").read_text()
    assert "does not download it unless asked" in clip["reason"]


def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path, capsys):
    def refused(args, text):
        assert main(["eval", *args, "--quiet", "--clip-model", ""]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and text in err, err

    refused([str(tmp_path), "--out", str(tmp_path / "o")], "not a run folder")
    refused([str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "no such run folder")
    broken = tmp_path / "broken"
    shutil.copytree(runs / "a", broken)
    (broken / "trajectory.json").unlink()
    refused([str(broken), "--out", str(tmp_path / "o")], "lacks trajectory.json")
    refused([str(runs / "a"), str(runs / "b")], "--out: required")
    refused([str(runs / "a"), "--frames", "1", "--out", str(tmp_path / "o")], "--frames 1")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "table.md").write_text("the user's own notes\n")
    refused([str(runs / "a"), "--out", str(foreign)], "was not written by scenedreamer eval")
    assert (foreign / "table.md").read_text() == "the user's own notes\n"
    # the tests run as root here, for whom permission bits do not bind: a file in the path is
    # what makes the folder impossible to create for any user
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    refused([str(runs / "a"), "--out", str(blocker / "o")], "is not a writable folder")
    assert not (tmp_path / "o").exists() and blocker.read_text() == "x"


def test_worldscore_revisits_flip_and_empty_fraction(runs, tmp_path, capsys):
    out = tmp_path / "ws"
    assert main(["eval", str(runs / "a"), "--out", str(out), "--frames", "5", "--clip-model", "",
                 "--worldscore", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())["runs"][0]["metrics"]
    assert m["gt_flip"]["available"] and 0 <= m["gt_flip"]["value"] <= 1
    assert len(m["empty_fraction"]["per_frame"]) == 5 and all(0 <= v <= 1 for v in m["empty_fraction"]["per_frame"])
    assert len(m["ws_flow_fb_error"]["per_frame"]) == 4
    # a 32 px tiny scene gives SfM too few features: said with the count, never a number
    cam = m["ws_camera_control"]
    assert cam["available"] or "frames registered" in cam["reason"], cam
    if not cam["available"]:
        assert "value" not in cam and not m["ws_3d_consistency"]["available"]
    table = (out / "table.md").read_text()
    if not m["revisit_psnr"]["available"]:
        assert m["revisit_psnr"]["reason"] == "no revisit in this path"
        assert "| revisit_psnr | higher | revisit pairs | no revisit in this path |" in table
    assert "NIQE: lower is better" in table and "BRISQUE: lower is better" in table
    # an unavailable metric's panel names the reason (the plot is not empty): compare with a
    # panel of an available metric, the labelled one has text drawn in its middle
    with Image.open(out / "plots/clip_score_per_frame.png") as im:
        centre = np.asarray(im.convert("L"))[240:300, 200:760]
    assert (centre < 128).any()                 # dark text in the middle of the panel


def test_worldscore_without_pycolmap_says_how_to_install(runs, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pycolmap", None)                     # import fails
    assert main(["eval", str(runs / "a"), "--out", str(tmp_path / "o"), "--worldscore", "--clip-model", "",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err and "pycolmap==4.2.1" in err
    assert not (tmp_path / "o").exists()


def test_out_inside_a_run_is_refused_before_evaluating(runs, tmp_path, capsys):
    for out in (runs / "a", runs / "a" / "support" / "x", runs / "b" / "report"):
        assert main(["eval", str(runs / "a"), "--out", str(out), "--clip-model", "", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "run folder" in err, err
    assert not (runs / "a" / "support" / "x").exists() and not (runs / "b" / "report").exists()


def test_path_preset_with_a_return_gives_revisits(runs, tmp_path):
    out = tmp_path / "loop"
    assert main(["eval", str(runs / "a"), "--out", str(out), "--frames", "8", "--clip-model", "",
                 "--path", "back_and_forth", "--quiet"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    m = data["runs"][0]["metrics"]
    assert data["settings"]["path"] == "back_and_forth"
    # there and back: the return frames revisit the outgoing ones; a static scene renders the
    # same image at the same pose (PSNR far above a changed scene's; the threshold leaves room
    # for the interpolated poses not landing exactly on each other)
    assert m["revisit_psnr"]["available"] and m["revisit_psnr"]["value"] > 25, m["revisit_psnr"]
    assert main(["eval", str(runs / "a"), "--out", str(out), "--path", "zigzag", "--quiet"]) == 2
