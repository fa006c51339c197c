"""Disk and memory estimates of a run: upper bounds of what a real run writes, the dry-run's
warnings, and the refusal of a new run that cannot fit on the disk (before anything is written)."""

from __future__ import annotations

import shutil
from collections import namedtuple
from dataclasses import replace
from pathlib import Path

import pytest

from scenedreamer.cli import main
from scenedreamer.config_io import load_config
from scenedreamer.errors import UserInputError
from scenedreamer.pipeline import disk_budget, plan
from scenedreamer.pipeline.config import GenerateConfig, preset_config
from scenedreamer.pipeline.disk_budget import check_disk_space, estimate_run, nearest_existing, view_file_bytes
from scenedreamer.representation.densify import DensifyConfig
from scenedreamer.representation.kind import densified_count
from tiny_models import tiny_run_args

Usage = namedtuple("Usage", "total used free")


def _free(monkeypatch, free: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - free, free))


def _bytes(paths) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny finished run that writes every output (video and nerfstudio dataset included)."""
    root = tmp_path_factory.mktemp("budget") / "run"
    assert main(["generate", "a forest lake", "--out", str(root), *tiny_run_args("48x32", 3),
                 "--set", "export.video=true", "--set", "export.video_frames_per_view=2",
                 "--set", "export.nerfstudio=true"]) == 0
    return root


def test_every_part_bounds_what_a_real_run_wrote(run):
    config = load_config(GenerateConfig, run / "config.json")
    estimate = estimate_run(config, cameras=3)
    views = sorted((run / "support" / "views").iterdir())
    assert estimate.views == len(views)
    # the view files are exactly what support/storage.py writes, not a guess
    assert {p.stat().st_size for p in views} == {view_file_bytes(48, 32, config.support.rgb_storage_dtype)}
    assert estimate.support >= _bytes((run / "support").rglob("*"))
    assert estimate.checkpoints >= _bytes((run / "checkpoints").iterdir()) + (run / "scene.pt").stat().st_size
    assert estimate.ply >= (run / "scene.ply").stat().st_size
    assert estimate.video >= (run / "video.mp4").stat().st_size
    nerfstudio = [*(run / "images").iterdir(), *(run / "depths").iterdir(), *(run / "masks").iterdir(),
                  run / "transforms.json", run / "points3D.ply"]
    assert estimate.nerfstudio >= _bytes(nerfstudio)
    written = _bytes(run.rglob("*"))
    # an upper bound, but not a useless one: within 20x of this tiny run (fixed allowances dominate)
    assert written <= estimate.total <= 20 * written + 2 * disk_budget.RUN_FILES_FIXED_BYTES


def test_support_views_scale_with_resolution_and_rgb_dtype():
    # rgb 12 (or 6) + depth 4 + valid, inpainted, backdrop 1 each byte per pixel, 5 .npy headers
    assert view_file_bytes(512, 512, "float32") == 512 * 512 * 19 + 5 * 128
    assert view_file_bytes(512, 512, "float16") == 512 * 512 * 13 + 5 * 128
    base = preset_config("offline", "gaussians")
    small, big = estimate_run(base, 12), estimate_run(replace(base, width=512, height=512), 12)
    assert big.support > 3.9 * small.support and big.total > small.total
    assert estimate_run(base, 24).views == small.views + 12


def test_densification_bound_follows_the_schedule():
    cfg = DensifyConfig(start_step=500, stop_step=1000, every=100, max_gaussians=10**6)
    assert densified_count(1000, cfg, 499) == 1000               # no event before start_step
    assert densified_count(1000, cfg, 500) == 2000               # the event at step 500
    assert densified_count(1000, cfg, 10_000) == 1000 * 2 ** 5   # 500..900; none at stop_step
    assert densified_count(1000, replace(cfg, max_gaussians=5000), 10_000) == 5000
    assert densified_count(10**7, replace(cfg, max_gaussians=5000), 10_000) == 10**7   # growth only
    assert densified_count(1000, replace(cfg, enabled=False), 10_000) == 1000


def test_nearest_existing_folder(tmp_path):
    assert nearest_existing(tmp_path / "a" / "b" / "run") == tmp_path


def test_a_new_run_that_does_not_fit_is_refused_in_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    _free(monkeypatch, 50_000)
    out = tmp_path / "runs" / "forest"
    assert main(["generate", "a forest lake", "--out", str(out), *tiny_run_args("48x32", 3)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"scenedreamer generate: error: --out {out}: the run needs up to ")
    assert f"but {tmp_path} has 50.0 KB free" in err
    assert list(tmp_path.iterdir()) == []                    # not even the parent folder


def test_resume_is_not_refused_and_overwrite_counts_the_old_run_as_free(tmp_path, monkeypatch):
    config = preset_config("offline", "gaussians")
    need = estimate_run(config, config.trajectory.frames).total
    old = tmp_path / "run"
    old.mkdir()
    (old / "scene.ply").write_bytes(b"x" * 1000)
    _free(monkeypatch, need - 500)
    with pytest.raises(UserInputError, match="the run needs up to"):
        check_disk_space(config, old)
    check_disk_space(config, old, overwrite=True)            # the old run's 1000 bytes will be freed
    _free(monkeypatch, 0)
    check_disk_space(config, old, resume=True)               # what it wrote already counts
    _free(monkeypatch, need)
    check_disk_space(config, tmp_path / "new")               # exactly enough


def test_dry_run_prints_the_estimate_and_warns_about_disk_and_ram(tmp_path, monkeypatch, capsys):
    argv = ["generate", "a forest lake", "--dry-run", "--out", str(tmp_path / "run")]
    _free(monkeypatch, 10**12)
    monkeypatch.setattr(plan, "available_memory_bytes", lambda: 10**12)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "expected disk (upper bounds):" in out and "support database" in out
    assert f"free at {tmp_path}" in out and "warning" not in out

    _free(monkeypatch, 900)
    monkeypatch.setattr(plan, "available_memory_bytes", lambda: 900)
    assert main(argv) == 0                                   # a dry run warns, it never refuses
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: the run needs up to ") and f"{tmp_path} has 900 bytes free" in warnings[0]
    assert warnings[1].startswith("warning: the run may need up to ") and "900 bytes is available" in warnings[1]
    assert not (tmp_path / "run").exists()
