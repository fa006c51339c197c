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


def test_resume_takes_new_export_settings_and_keeps_the_record(tmp_path):
    """Exports are made from the finished steps: a resume may change them (a run of an earlier
    release, whose default video was shorter, resumes with today's defaults); config.json then
    records the new export settings and keeps its record keys (prompt_reading)."""
    run = RunFolder(tmp_path / "run")
    old = GenerateConfig()
    old = dataclasses.replace(old, export=dataclasses.replace(old.export, video_frames_per_view=3))
    run.prepare(old, resume=False, overwrite=False, notes={"prompt_reading": {"template": "meadow"}})
    run.release()
    new = GenerateConfig()
    assert new.export.video_frames_per_view != 3
    run.prepare(new, resume=True, overwrite=False)
    run.release()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["export"]["video_frames_per_view"] == new.export.video_frames_per_view
    assert saved["prompt_reading"] == {"template": "meadow"}
    # anything else still refuses, naming it, and leaves config.json as it was
    with pytest.raises(UserInputError, match=r"another config \(seed: 0 -> 5\)"):
        run.prepare(dataclasses.replace(new, seed=5), resume=True, overwrite=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == saved


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


# --- the run-folder contract (pipeline/run_contract.py) -----------------------------------------

import fcntl  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from scenedreamer.pipeline import run_contract as rc  # noqa: E402

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run_v1"
"""A tiny run written by the previous release (`generate` at 32x32, 2 frames, no video)."""


def _finished_copy(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    return run


def test_a_finished_run_of_the_previous_release_passes_the_contract(tmp_path):
    run = _finished_copy(tmp_path)
    assert rc.is_run(run) and rc.is_finished_run(run)
    assert rc.require_finished_run(run, ("scene.ply", "scene.pt", "support")) == run
    with pytest.raises(UserInputError, match="run lacks video.mp4"):
        rc.require_finished_run(run, "video.mp4")       # made with export.video=false


def test_someone_else_s_config_json_is_not_a_run_never_a_run_in_progress(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"learning_rate": 0.1}')
    assert not rc.is_run(other) and not rc.is_finished_run(other)
    with pytest.raises(UserInputError, match="not a run folder written by scenedreamer") as err:
        rc.require_finished_run(other)
    assert "in progress" not in str(err.value)
    with pytest.raises(UserInputError, match="no such run folder"):
        rc.require_finished_run(tmp_path / "missing")


@pytest.mark.parametrize("lock", [rc.LOCK_NAME, "support/lock"])
def test_a_run_whose_lock_is_held_is_in_progress(tmp_path, lock):
    run = _finished_copy(tmp_path)
    (run / lock).touch()
    fd = os.open(run / lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # what the writing process holds
        with pytest.raises(UserInputError, match="still in progress"):
            rc.require_finished_run(run)
    finally:
        os.close(fd)
    assert rc.is_finished_run(run)                         # the writer is gone: finished again


def test_a_run_that_never_committed_a_step_says_so(tmp_path):
    run = _finished_copy(tmp_path)
    (run / "progress.json").unlink()
    with pytest.raises(UserInputError, match="never committed a step"):
        rc.require_finished_run(run)


def test_every_run_file_and_folder_is_refused_as_an_output_other_names_are_free(tmp_path):
    run = _finished_copy(tmp_path)
    own = [*rc.RUN_FILES, rc.LOCK_NAME, "support", "support/views/x.npys", "images", "images/frame_00000.png",
           "checkpoints/step_0001.pt", "depths", ".scene.ply.abcd1234.ply"]
    for name in own:
        with pytest.raises(UserInputError, match="never replaced"):
            rc.ensure_not_run_file(run / name)
    with pytest.raises(UserInputError, match="is a run folder"):
        rc.ensure_not_run_file(run)
    # no spelling of the path slips past: '..' and a link to the run are resolved
    with pytest.raises(UserInputError, match="scene.ply"):
        rc.ensure_not_run_file(run / "support" / ".." / "scene.ply")
    (tmp_path / "link").symlink_to(run)
    with pytest.raises(UserInputError, match="scene.ply"):
        rc.ensure_not_run_file(tmp_path / "link" / "scene.ply")
    for free in (run / "points.ply", run / "my_renders" / "v.mp4", tmp_path / "scene.ply"):
        rc.ensure_not_run_file(free)                       # the user's names beside a run


def test_the_run_folder_writer_and_the_contract_agree_on_the_names(tmp_path):
    from scenedreamer.pipeline import run_folder

    assert run_folder.RUN_FILES is rc.RUN_FILES and run_folder.MARKER_NAME == rc.MARKER_NAME
    assert "scene.json" in rc.RUN_FILES          # outputs.py writes it: --overwrite removes it
    fresh = RunFolder(tmp_path / "fresh")
    fresh.prepare(GenerateConfig(), resume=False, overwrite=False)
    fresh.release()
    assert rc.is_run(fresh.root) and not rc.is_finished_run(fresh.root)   # started, nothing committed


def test_resume_of_a_run_made_before_a_field_existed_keeps_that_fields_default(tmp_path):
    """A field added after the run was made is absent from its config.json (loading it gives the
    default): a resume with today's preset (which sets another value) is accepted and continues
    with the default; a recorded field that differs is still refused."""
    from scenedreamer.config_io import to_json_dict, with_unrecorded_fields

    preset = preset_config("offline")
    assert preset.progressive.fit_steps_per_view != GenerateConfig().progressive.fit_steps_per_view
    run = RunFolder(tmp_path / "run")
    run.prepare(preset, resume=False, overwrite=False)
    run.release()
    older = json.loads(run.config_path.read_text())
    del older["progressive"]["fit_steps_per_view"]          # as a release before the field wrote it
    run.config_path.write_text(json.dumps(older))
    with pytest.raises(UserInputError, match="progressive.fit_steps_per_view"):
        RunFolder(run.root).prepare(preset, resume=True, overwrite=False)   # without the rule
    resumed = RunFolder(run.root).for_resume(preset)
    assert resumed.progressive.fit_steps_per_view == GenerateConfig().progressive.fit_steps_per_view
    assert resumed.progressive.neighbours == preset.progressive.neighbours   # recorded: as given
    folder = RunFolder(run.root)
    assert folder.prepare(resumed, resume=True, overwrite=False).last_step == -1
    folder.release()
    changed = dataclasses.replace(preset, seed=preset.seed + 1)
    with pytest.raises(UserInputError, match="seed"):
        RunFolder(run.root).prepare(RunFolder(run.root).for_resume(changed), resume=True, overwrite=False)
    # nested configs of another class (the representation changed) are left for config_diff
    nerf = preset_config("offline", "nerf")
    assert type(nerf.representation) is not type(preset.representation)
    assert with_unrecorded_fields(nerf, preset, to_json_dict(preset)).representation == nerf.representation
    # export settings may change on a resume: today's value wins there, recorded or not
    del older["export"]["video_frames_per_view"]
    run.config_path.write_text(json.dumps(older))
    longer = dataclasses.replace(preset, export=dataclasses.replace(preset.export, video_frames_per_view=7))
    assert RunFolder(run.root).for_resume(longer).export.video_frames_per_view == 7


def test_resume_of_a_run_made_before_a_default_moved_keeps_the_runs_value(tmp_path, caplog):
    """config_io.with_moved_defaults: the run recorded a value that was the default when it was
    made (here progressive.render_depth_tolerance 0.05, today 0); a resume with a command line
    that leaves the setting alone continues with the run's value (and says so) instead of being
    refused. A value the command line sets away from the default is still compared."""
    from scenedreamer.config_io import with_moved_defaults

    today = preset_config("offline")
    assert today.progressive.render_depth_tolerance == GenerateConfig().progressive.render_depth_tolerance == 0.0
    run = RunFolder(tmp_path / "run")
    run.prepare(today, resume=False, overwrite=False)
    run.release()
    older = json.loads(run.config_path.read_text())
    older["progressive"]["render_depth_tolerance"] = 0.05        # the default of an earlier release
    run.config_path.write_text(json.dumps(older))
    with pytest.raises(UserInputError, match="progressive.render_depth_tolerance"):
        RunFolder(run.root).prepare(today, resume=True, overwrite=False)       # without the rule
    folder = RunFolder(run.root)
    resumed = folder.for_resume(today)
    assert resumed.progressive.render_depth_tolerance == 0.05
    with caplog.at_level("WARNING"):
        assert folder.prepare(resumed, resume=True, overwrite=False).last_step == -1
    folder.release()
    assert caplog.text.count("progressive.render_depth_tolerance=0.05") == 1 and "priors.dtype" not in caplog.text
    # set on the command line to something else than the default: compared, and refused
    asked = dataclasses.replace(today, progressive=dataclasses.replace(today.progressive, render_depth_tolerance=0.1))
    assert RunFolder(run.root).for_resume(asked).progressive.render_depth_tolerance == 0.1
    with pytest.raises(UserInputError, match="progressive.render_depth_tolerance"):
        RunFolder(run.root).prepare(RunFolder(run.root).for_resume(asked), resume=True, overwrite=False)
    # only leaves at their class default move; a config of another class is left alone
    nerf = preset_config("offline", "nerf")
    assert with_moved_defaults(nerf, today)[0].representation == nerf.representation
