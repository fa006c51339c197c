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


# ---- memory: stages, and the tri-plane NeRF's activations (issue 21 item 2) ---------------------

def _nerf(**fit) -> GenerateConfig:
    config = preset_config("offline", "nerf")
    return replace(config, fit=replace(config.fit, **fit))


def _stage(estimate, name):
    return next(st for st in estimate.stages if st.name == name)


def test_nerf_fit_workspace_grows_with_rays_per_step_and_samples_per_ray_as_the_code_says():
    from scenedreamer.representation import triplane_kind as tk

    config = _nerf()
    rep = config.representation
    chunk = rep.sampling.render_chunk_rays
    rays = config.fit.patches_per_step * config.fit.patch_size ** 2         # 8 patches of 24 px
    samples = rep.sampling.stratified_bins + rep.sampling.guided_edges
    saved, backward = tk.fit_saved_floats(rep), tk.fit_backward_floats(rep)
    # autograd keeps every sample of the step; the backward buffers are one chunk's
    assert tk.fit_workspace_bytes(rep, rays) == 4 * samples * (rays * saved + min(rays, chunk) * backward)
    fit = _stage(estimate_run(config, 12), "fit")
    assert fit.workspace == tk.fit_workspace_bytes(rep, rays)
    # more rays a step: the estimate's fit workspace grows with them (twice the patches, twice
    # the saved activations; the backward buffers stay one chunk's)
    more = _stage(estimate_run(_nerf(patches_per_step=16), 12), "fit")
    assert more.workspace - fit.workspace == 4 * samples * rays * saved
    # a patch larger than the view is clipped to it, as fitting.sample_patches clips it
    assert _stage(estimate_run(replace(_nerf(patch_size=1000), width=64, height=32), 12), "fit").workspace \
        == tk.fit_workspace_bytes(rep, config.fit.patches_per_step * 32 * 32)
    # twice the samples a ray: twice the workspace
    doubled = replace(rep, sampling=replace(rep.sampling, stratified_bins=2 * rep.sampling.stratified_bins,
                                            guided_edges=2 * rep.sampling.guided_edges))
    assert tk.fit_workspace_bytes(doubled, rays) == 2 * tk.fit_workspace_bytes(rep, rays)
    assert _stage(estimate_run(replace(config, representation=doubled), 12), "fit").workspace == 2 * fit.workspace
    # wider layers keep more per sample
    wider = replace(rep, hidden_width=2 * rep.hidden_width)
    assert tk.fit_workspace_bytes(wider, rays) > tk.fit_workspace_bytes(rep, rays)
    # a no-grad render holds one chunk at the eval sample counts
    assert _stage(estimate_run(config, 12), "render").workspace == tk.render_workspace_bytes(rep) \
        == 4 * chunk * (rep.sampling.eval_stratified_bins + rep.sampling.eval_guided_edges) * tk.render_floats(rep)


def _saved_floats_per_sample(rep_config, patches=2, patch=8, size=16) -> float:
    """float32 values one fitting step saves for backward per ray sample, counted by autograd's
    own hooks (distinct storages, the parameters left out)."""
    import torch

    from scenedreamer.representation.config import FitConfig
    from scenedreamer.representation.fitting import sample_patches, step_losses
    from scenedreamer.representation.triplane import TriplaneNeRF
    from scenedreamer.representation.triplane_kind import training_samples_per_ray
    from scenedreamer.support.records import Provenance, ViewRecord

    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[0.8 * size, 0, size / 2], [0, 0.8 * size, size / 2], [0, 0, 1.0]])
    views = [ViewRecord(rgb=torch.rand(size, size, 3, generator=g), depth=1 + torch.rand(size, size, generator=g),
                        valid=torch.ones(size, size, dtype=torch.bool), inpainted=torch.zeros(size, size, dtype=torch.bool),
                        K=K, c2w=torch.eye(4), provenance=Provenance.REFINED, step=0, prompt="")
             for _ in range(patches)]
    rep = TriplaneNeRF(rep_config)
    rep.train()
    rep.sample_generator = g
    params = {p.untyped_storage().data_ptr() for p in rep.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    batch = sample_patches(views, patch, g)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step_losses(rep, batch, FitConfig(patch_size=patch, patches_per_step=patches, ssim_window=3))
    return sum(saved.values()) / 4 / (patches * patch * patch * training_samples_per_ray(rep_config.sampling))


@pytest.mark.parametrize("change", [{}, {"hidden_width": 32}, {"hidden_layers": 2}, {"combine": "concat"},
                                    {"feature_dim": 8}])
def test_nerf_saved_activation_count_matches_what_autograd_saves(change):
    from scenedreamer.representation.config import TriplaneConfig
    from scenedreamer.representation.triplane_kind import fit_saved_floats

    rep = TriplaneConfig(**{"resolution": 16, "channels": 4, "hidden_width": 16, "feature_dim": 4, **change})
    counted = _saved_floats_per_sample(rep)
    assert counted <= fit_saved_floats(rep) <= counted + 2          # an upper bound, and a tight one


def test_run_peak_is_the_largest_stage_not_their_sum():
    config = preset_config("offline", "nerf")
    estimate = estimate_run(config, 12)
    assert [st.name for st in estimate.stages] == ["fit", "render", "distill"]
    distill = _stage(estimate, "distill")
    n_views = estimate.views
    assert distill.views == n_views + (n_views - 1) * config.export.distill.extra_views_per_gap
    assert distill.workspace is None                     # a Gaussian fit: the rasteriser factor
    sizes = [plan.stage_bytes(st) for st in estimate.stages]
    assert plan.peak_rss_bytes(estimate) == plan.PROCESS_BASE_BYTES + max(sizes) < \
        plan.PROCESS_BASE_BYTES + sum(sizes)
    # no scene.ply: no bake and no distillation; without a video nothing renders the NeRF either
    no_ply = estimate_run(replace(config, export=replace(config.export, ply=False)), 12)
    assert [st.name for st in no_ply.stages] == ["fit", "render"]
    nothing = estimate_run(replace(config, export=replace(config.export, ply=False, video=False)), 12)
    assert [st.name for st in nothing.stages] == ["fit"]


def test_gaussian_memory_is_one_fitting_stage_with_a_fixed_workspace():
    """The Gaussian fit: its state once plus the rasteriser's fixed workspace (one tile batch's
    buffers, gaussians_kind.FIT_WORKSPACE_BYTES), so a run twice as long grows by its state, not
    by 2.3x it."""
    from scenedreamer.representation.gaussians_kind import FIT_WORKSPACE_BYTES

    config = preset_config("offline", "gaussians")
    estimate = estimate_run(config, 12)
    (stage,) = estimate.stages
    cached = min(estimate.views, config.fit.max_cached_views) * config.width * config.height \
        * disk_budget.MEMORY_VIEW_BYTES_PER_PIXEL
    assert stage.name == "fit" and stage.workspace == FIT_WORKSPACE_BYTES
    assert stage.state == disk_budget.TRAINING_COPIES * estimate.parameters + cached
    assert estimate.memory == stage.state + FIT_WORKSPACE_BYTES
    assert plan.peak_rss_bytes(estimate) == plan.PROCESS_BASE_BYTES + estimate.memory
    longer = estimate_run(config, 24)
    assert plan.peak_rss_bytes(longer) - plan.peak_rss_bytes(estimate) == longer.memory - estimate.memory > 0
    # the measured peaks (MB, benchmarks/bench_eta.py, 2026-12-07: make-run 557, 24 views 591): within 20 %
    for peak_mb, run in ((557, estimate), (591, longer)):
        assert abs(plan.peak_rss_bytes(run) / (peak_mb * 1e6) - 1) < 0.20


def test_dry_run_of_a_nerf_shows_its_activations_and_stages(tmp_path, capsys):
    from scenedreamer.pipeline.disk_budget import size_text

    assert main(["generate", "a forest lake", "--representation", "nerf", "--dry-run",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    estimate = estimate_run(preset_config("offline", "nerf"), 12)
    ram = next(line for line in out.splitlines() if "in RAM up to" in line)
    assert f"in RAM up to {size_text(plan.peak_rss_bytes(estimate))} peak" in ram and "activations" in ram
    stages = next(line for line in out.splitlines() if "by stage" in line)
    assert f"fitting ~{size_text(plan.stage_bytes(_stage(estimate, 'fit')))} " \
           f"(activations {size_text(_stage(estimate, 'fit').workspace)}" in stages
    assert "rendering" in stages and f"distilling {estimate.gaussians} Gaussians" in stages
