"""End-to-end runs of every preset on a reduced config (tiny sizes, few iterations).

The offline preset runs as shipped (procedural world stand-ins); the diffusion presets run with
tiny random Stable Diffusion / inpainting / ZoeDepth models saved to folders and loaded through
the same loading code as real weights.
"""

import json
from pathlib import Path

import pytest
import torch

from scenedreamer.cli import main

# A reduced config: small views, 3 trajectory cameras, a handful of iterations.
REDUCED = ["--frames", "3", "--quiet",
           "--set", "init.fit_steps=6", "--set", "progressive.fit_steps_per_view=3",
           "--set", "init.neighbour_yaws_deg=[-15]",
           "--set", "fit.patches_per_step=2", "--set", "fit.patch_size=16",
           "--set", "export.video_frames_per_view=1", "--set", "export.bake.stride=4",
           "--set", "export.distill.steps=10"]
TINY_NERF = ["--representation", "nerf", "--set", "representation.resolution=16", "--set", "representation.channels=4",
             "--set", "representation.feature_dim=4", "--set", "representation.hidden_width=16"]


def _check_run_folder(root: Path, views: int):
    from plyfile import PlyData

    cfg = json.loads((root / "config.json").read_text())
    assert cfg["prompt"]
    transforms = json.loads((root / "transforms.json").read_text())
    assert len(transforms["frames"]) == views
    for frame in transforms["frames"]:
        assert (root / frame["file_path"]).exists() and (root / frame["depth_file_path"]).exists()
    ply = PlyData.read(str(root / "scene.ply"))
    names = [p.name for p in ply["vertex"].properties]
    assert names[:3] == ["x", "y", "z"] and "opacity" in names and "rot_3" in names
    assert ply["vertex"].count > 0
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(root / "video.mp4"))
    assert reader.count_frames() >= 3
    events = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    stages = {e["stage"] for e in events}
    assert {"run", "init", "fit", "view", "export", "video"} <= stages
    assert (root / "scene.pt").exists() and json.loads((root / "progress.json").read_text())["last_step"] == 2


def test_offline_preset_end_to_end(tmp_path):
    out = tmp_path / "run"
    code = main(["generate", "a forest lake at sunset", "--resolution", "40x32", "--out", str(out),
                 *REDUCED, *TINY_NERF])
    assert code == 0
    _check_run_folder(out, views=2 + 2)   # initial + 1 neighbour + 2 progressive
    log = (out / "events.jsonl").read_text()
    assert "offline stand-in" in log       # the run says what it used


def test_gaussians_representation_end_to_end(tmp_path):
    out = tmp_path / "run"
    code = main(["generate", "a desert", "--resolution", "32x32", "--out", str(out), "--representation",
                 "gaussians", "--set", "representation.init_stride=2", *REDUCED])
    assert code == 0
    _check_run_folder(out, views=4)


def test_classical_inpainter_runs_end_to_end(tmp_path):
    """The offline preset with the classical (OpenCV/PatchMatch) inpainter instead of the oracle."""
    out = tmp_path / "run"
    code = main(["generate", "a beach", "--resolution", "32x32", "--out", str(out), *REDUCED, *TINY_NERF,
                 "--set", "priors.inpainter=classical", "--set", "export.video=false"])
    assert code == 0
    events = (out / "events.jsonl").read_text()
    assert "inpainter: classical inpainting (OpenCV + PatchMatch" in events
    assert (out / "scene.ply").exists()


def test_ablations_run_and_are_recorded(tmp_path):
    out = tmp_path / "run"
    code = main(["generate", "a snowy mountain", "--resolution", "32x32", "--out", str(out), "--no-refinement",
                 "--no-replay", *REDUCED, *TINY_NERF, "--set", "export.video=false", "--set", "export.ply=false"])
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["ablation"]["refinement"] is False and cfg["ablation"]["replay"] is False
    from scenedreamer.support.database import SupportDatabase

    with SupportDatabase.open(out / "support", create=False) as db:
        provenances = [db.get(v).provenance.value for v in db.ids()]
    assert "refined" not in provenances and provenances.count("warp_inpaint") == 3


@pytest.fixture(scope="module")
def tiny_model_folders(tmp_path_factory):
    from tiny_models import tiny_depth_model, tiny_sd_pipeline

    root = tmp_path_factory.mktemp("tiny_models")
    tiny_sd_pipeline(root / "sd", inpainting=False)
    tiny_sd_pipeline(root / "sd-inpaint", inpainting=True)
    tiny_depth_model("zoedepth", root / "zoe")
    return root


@pytest.mark.parametrize("preset", ["sd15", "sd2"])
def test_diffusion_presets_end_to_end_with_tiny_models(preset, tiny_model_folders, tmp_path):
    m = tiny_model_folders
    out = tmp_path / "run"
    code = main(["generate", "a kitchen", "--preset", preset, "--resolution", "64x64", "--out", str(out),
                 *REDUCED, *TINY_NERF,
                 "--set", f"priors.text_to_image=\"{m / 'sd'}\"", "--set", f"priors.refiner=\"{m / 'sd'}\"",
                 "--set", f"priors.inpainter=\"{m / 'sd-inpaint'}\"", "--set", f"priors.depth=\"{m / 'zoe'}\"",
                 "--set", "priors.diffusion.num_inference_steps=2", "--set", "refiner.num_inference_steps=2",
                 "--set", "refiner.adapter_train_steps_per_view=1", "--set", "progressive.adapter_views=1"])
    assert code == 0
    _check_run_folder(out, views=4)
    assert (out / "adapter.safetensors").exists()
    from scenedreamer.support.database import SupportDatabase

    with SupportDatabase.open(out / "support", create=False) as db:
        assert [db.get(v).provenance.value for v in db.ids()][-1] == "refined"


def test_missing_weights_is_a_clear_error_not_a_fallback(tmp_path, capsys):
    code = main(["generate", "a kitchen", "--preset", "sd2", "--out", str(tmp_path / "run"), "--quiet",
                 "--set", f"priors.text_to_image=\"{tmp_path / 'no-such-model'}\""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no-such-model" in err


def test_trajectory_file_with_one_camera_is_refused(tmp_path, capsys):
    from scenedreamer.geometry.trajectory import make_trajectory, Trajectory
    from scenedreamer.geometry.trajectory_io import write_transforms_json

    traj = make_trajectory("orbit", 2, 32, 32)
    write_transforms_json(tmp_path / "one.json", Trajectory(traj.cameras[0], [None]))
    code = main(["generate", "a forest", "--trajectory", str(tmp_path / "one.json"), "--out", str(tmp_path / "r"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 cameras" in err and "one.json" in err


def test_diffusion_run_resumes_to_the_same_scene(tiny_model_folders, tmp_path, monkeypatch):
    """An interrupted diffusion run (adapter weights and optimiser state in the step checkpoint)
    resumes to the same support views and the same final scene as an uninterrupted run."""
    import scenedreamer.pipeline.generate as generate_module
    from scenedreamer.representation.checkpoint import load_checkpoint
    from scenedreamer.support.database import SupportDatabase

    m = tiny_model_folders
    argv = ["generate", "a kitchen", "--preset", "sd15", "--resolution", "64x64", *REDUCED, *TINY_NERF,
            "--frames", "4", "--set", "export.video=false", "--set", "export.ply=false",
            "--set", f"priors.text_to_image=\"{m / 'sd'}\"", "--set", f"priors.refiner=\"{m / 'sd'}\"",
            "--set", f"priors.inpainter=\"{m / 'sd-inpaint'}\"", "--set", f"priors.depth=\"{m / 'zoe'}\"",
            "--set", "priors.diffusion.num_inference_steps=2", "--set", "refiner.num_inference_steps=2",
            "--set", "refiner.adapter_train_steps_per_view=2", "--set", "progressive.adapter_views=1"]
    assert main([*argv, "--out", str(tmp_path / "reference")]) == 0

    real_step = generate_module.generate_next_view

    def interrupted(config, step, *args, **kwargs):
        if step == 2:
            raise KeyboardInterrupt
        return real_step(config, step, *args, **kwargs)

    monkeypatch.setattr(generate_module, "generate_next_view", interrupted)
    assert main([*argv, "--out", str(tmp_path / "resumed")]) == 130
    monkeypatch.setattr(generate_module, "generate_next_view", real_step)
    assert main([*argv, "--out", str(tmp_path / "resumed"), "--resume"]) == 0

    def views(run):
        with SupportDatabase.open(run / "support", create=False) as db:
            return [db.get(v) for v in db.ids()]

    ref, res = views(tmp_path / "reference"), views(tmp_path / "resumed")
    assert len(ref) == len(res) == 5
    for a, b in zip(ref, res):
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    sa = load_checkpoint(tmp_path / "reference" / "scene.pt").representation.state_dict()
    sb = load_checkpoint(tmp_path / "resumed" / "scene.pt").representation.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    from safetensors.torch import load_file

    aa, ab = load_file(tmp_path / "reference" / "adapter.safetensors"), load_file(tmp_path / "resumed" / "adapter.safetensors")
    assert aa.keys() == ab.keys() and all(torch.equal(aa[k], ab[k]) for k in aa)


def test_model_loading_is_reported_in_our_progress_not_the_libraries(tiny_model_folders, capsys):
    """Issue 12 item 5: build_priors reports each real model it loads as a "load" event (the CLI
    bar prints one line each); transformers' / diffusers' own bars and log lines stay silent."""
    import dataclasses

    from scenedreamer.cli.progress import ProgressBar
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.priors_factory import build_priors

    m = tiny_model_folders
    base = preset_config("sd15")
    config = dataclasses.replace(base, width=64, height=64, priors=dataclasses.replace(
        base.priors, text_to_image=str(m / "sd"), refiner=str(m / "sd"), inpainter=str(m / "sd-inpaint"),
        depth=str(m / "zoe"), device="cpu", dtype="fp32"))
    events = []
    bar = ProgressBar()
    build_priors(config, lambda e: (events.append(e), bar(e)))
    bar.close()
    loads = [(e.step, e.total, e.message) for e in events if e.stage == "load"]
    # the text-to-image SD folder is the refiner's too: loaded (and announced) once
    assert loads == [(1, 3, f"loading {m / 'sd'} (text-to-image / refiner)"),
                     (2, 3, f"loading {m / 'sd-inpaint'} (inpainting)"),
                     (3, 3, f"loading {m / 'zoe'} (depth)")]
    err = capsys.readouterr().err
    assert err.count("loading ") == 3 and "it/s" not in err and "Loading" not in err


def test_the_unseen_warning_counts_only_what_neither_the_render_nor_a_support_view_shows(tmp_path, caplog):
    """progressive.max_hole_fraction_warn: pixels the render misses but the warp of a support view
    carries are not holes. Walking forward with a render trusted nowhere (unseen_opacity = 1:
    ~37 % of the tiny NeRF's pixels count as missed, above the 20 % threshold set here) while the
    warp carries ~98 %, nothing is reported; turning 120 degrees per view (60 degree field of view)
    the Gaussians' render and the warp both show nothing, and each such view is reported."""
    import logging

    common = [*REDUCED, "--resolution", "40x32", "--set", "export.video=false", "--set", "export.ply=false",
              "--set", "progressive.max_hole_fraction_warn=0.2"]
    with caplog.at_level(logging.WARNING, logger="scenedreamer"):
        assert main(["generate", "a forest lake", "--out", str(tmp_path / "forward"), "--trajectory", "forward",
                     *common, *TINY_NERF, "--set", "progressive.unseen_opacity=1.0"]) == 0
    assert not [r for r in caplog.records if "of the view is unseen" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="scenedreamer"):
        assert main(["generate", "a forest lake", "--out", str(tmp_path / "turn"), "--trajectory", "rotate360",
                     *common]) == 0
    unseen = [r.getMessage() for r in caplog.records if "of the view is unseen" in r.getMessage()]
    assert [m.split(":")[0] for m in unseen] == ["view 1", "view 2"]
    assert all("neither the scene nor a support view shows it" in m for m in unseen)
