import dataclasses
import json

import pytest

from scenedreamer.errors import UserInputError
from scenedreamer.pipeline.config import GenerateConfig, preset_config
from scenedreamer.pipeline.run_folder import RunFolder


def test_new_folder_writes_config_and_starts_from_scratch(tmp_path):
    run = RunFolder(tmp_path / "run")
    progress = run.prepare(GenerateConfig(), resume=False, overwrite=False)
    assert progress.last_step == -1
    saved = json.loads(run.config_path.read_text())
    assert saved["prompt"] == GenerateConfig().prompt


def test_existing_run_is_refused_unless_overwrite(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.prepare(GenerateConfig(), resume=False, overwrite=False)
    run.release()
    (run.root / "keep.txt").write_text("precious")
    with pytest.raises(UserInputError, match="already holds a run"):
        run.prepare(GenerateConfig(), resume=False, overwrite=False)
    assert (run.root / "keep.txt").read_text() == "precious"   # nothing lost by a refusal
    run.prepare(GenerateConfig(seed=3), resume=False, overwrite=True)
    assert (run.root / "keep.txt").read_text() == "precious"   # overwrite removes only run files


def test_resume_with_another_config_names_the_difference(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.prepare(GenerateConfig(), resume=False, overwrite=False)
    run.release()
    other = dataclasses.replace(GenerateConfig(), seed=7)
    with pytest.raises(UserInputError, match="seed"):
        run.prepare(other, resume=True, overwrite=False)
    run.release()
    assert run.prepare(GenerateConfig(), resume=True, overwrite=False).last_step == -1


def test_resume_without_a_run_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="nothing to resume"):
        RunFolder(tmp_path / "empty").prepare(GenerateConfig(), resume=True, overwrite=False)


def test_commit_records_progress_and_prunes_checkpoints(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.prepare(GenerateConfig(), resume=False, overwrite=False)
    run.checkpoints_dir.mkdir()
    for step in range(4):
        run.checkpoint_path(step).write_bytes(b"x")
        run.commit_step(step)
    assert run.read_progress().last_step == 3
    assert run.read_progress().checkpoint == "step_0003.pt"
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["step_0002.pt", "step_0003.pt"]


def test_every_preset_round_trips_through_json(tmp_path):
    from scenedreamer.config_io import load_config, save_config
    from scenedreamer.pipeline.config import PRESETS

    for name in PRESETS:
        cfg = preset_config(name)
        save_config(tmp_path / f"{name}.json", cfg)
        assert load_config(GenerateConfig, tmp_path / f"{name}.json") == cfg
    with pytest.raises(UserInputError, match="unknown preset"):
        preset_config("nope")


def test_folder_without_marker_is_never_written_or_cleared(tmp_path):
    root = tmp_path / "w1"
    (root / "src").mkdir(parents=True)
    (root / "config.json").write_text("{}")
    for resume, overwrite in [(False, False), (False, True), (True, False)]:
        with pytest.raises(UserInputError, match="not a run folder written by scenedreamer"):
            RunFolder(root).prepare(GenerateConfig(), resume=resume, overwrite=overwrite)
    assert (root / "src").is_dir() and (root / "config.json").read_text() == "{}"
    with pytest.raises(UserInputError, match="--out is empty"):
        RunFolder("")


def test_offline_preset_defaults_to_gaussians_and_nerf_keeps_its_own_steps():
    from scenedreamer.pipeline.config import OFFLINE_GAUSSIAN_STEPS, InitConfig
    from scenedreamer.representation.gaussians import GaussianConfig
    from scenedreamer.representation.triplane import TriplaneConfig

    fast = preset_config("offline")
    assert isinstance(fast.representation, GaussianConfig)
    assert (fast.init.fit_steps, fast.progressive.fit_steps_per_view, fast.export.distill.steps) == \
        (OFFLINE_GAUSSIAN_STEPS["init"], OFFLINE_GAUSSIAN_STEPS["per_view"], OFFLINE_GAUSSIAN_STEPS["distill"])
    nerf = preset_config("offline", "nerf")
    assert isinstance(nerf.representation, TriplaneConfig) and nerf.init.fit_steps == InitConfig().fit_steps
    assert isinstance(preset_config("sd15").representation, TriplaneConfig)
