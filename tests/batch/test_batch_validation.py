"""Issue 20 items 4-5 and issue 21 item 6 for `batch`: every line is checked as `generate`
checks a run before the manifest exists; each scene gets its own recorded seed unless fixed; a
resumed scene is not a new try; only what can pass on a retry is retried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenedreamer.batch.prompts import scene_seed
from scenedreamer.errors import UserInputError

TINY = ["--resolution", "32x32", "--frames", "2", "--representation", "gaussians", "--quiet"]


def batch_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "scenedreamer.cli", "batch", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def jobs_of(tmp_path: Path, lines: list[dict], *options: str):
    from scenedreamer.cli.batch import build_jobs

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return build_jobs(str(prompts), [*TINY, *options])


# ------------------------------------------------------------------ every line, generate's checks
@pytest.mark.parametrize("line, message", [
    ({"prompt": "a room", "set": {"progressive.neighbours": -3}}, "line 2: progressive.neighbours: -3 is out of range"),
    ({"prompt": "a room", "set": {"init.fit_steps": -5}}, "line 2: init.fit_steps: -5 is out of range"),
    ({"prompt": "a room", "trajectory": "missing.json"}, "line 2: "),
])
def test_a_bad_line_refuses_the_whole_batch_before_the_manifest(tmp_path, line, message):
    with pytest.raises(UserInputError) as err:
        jobs_of(tmp_path, [{"prompt": "a lake"}, line])
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_missing_start_photo_is_refused_as_generate_refuses_it(tmp_path):
    # generate checks the photo before the run folder exists (pipeline.run.check_inputs); so does batch
    with pytest.raises(UserInputError) as err:
        jobs_of(tmp_path, [{"prompt": "a lake"}], "--image", str(tmp_path / "nowhere.png"),
                "--image-depth", str(tmp_path / "d.npy"))
    assert "line 1: " in str(err.value) and "nowhere.png" in str(err.value), str(err.value)


def test_a_bad_trajectory_file_on_a_line_is_exit_2_and_nothing_is_created(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a lake"}\n{"prompt": "a room", "trajectory": "bad.json"}\n')
    result = batch_cli(prompts, "--out", tmp_path / "out", *TINY)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "p.jsonl line 2: " in lines[0] and "bad.json" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_generate_and_batch_share_one_input_check():
    # one function, not a copy: generate's run_generation and batch's build_jobs both call it
    import inspect

    from scenedreamer.cli import batch
    from scenedreamer.pipeline import run

    assert "check_inputs(config)" in inspect.getsource(run.run_generation)
    assert "check_inputs(config)" in inspect.getsource(batch.build_jobs)


# ------------------------------------------------------------------ seeds
def test_each_scene_gets_its_own_derived_seed_recorded_in_the_manifest(tmp_path):
    from scenedreamer.batch.manifest import Manifest
    from scenedreamer.batch.runner import prepare_manifest

    jobs = jobs_of(tmp_path, [{"prompt": "a lake"}, {"prompt": "a lake"}, {"prompt": "a room", "seed": 5}])
    seeds = [j.config.seed for j in jobs]
    assert seeds[0] != seeds[1], "two lines with the same prompt must get different seeds"
    assert seeds[:2] == [scene_seed(0, jobs[0].name), scene_seed(0, jobs[1].name)]
    assert seeds[2] == 5 and all(0 <= s < 2**31 for s in seeds)    # 31 bits: see scene_seed
    assert [j.config.seed for j in jobs_of(tmp_path, [{"prompt": "a lake"}, {"prompt": "a lake"}])] == seeds[:2]
    prepare_manifest(tmp_path / "out", jobs, {}).close()
    with Manifest.open(tmp_path / "out", create=False) as manifest:
        rows = manifest.rows()
    assert [r.seed for r in rows] == seeds
    assert [json.loads(r.config)["seed"] for r in rows] == seeds


@pytest.mark.parametrize("options", [["--seed", "7"], ["--set", "seed=7"], ["--set=seed=7"]])
def test_a_batch_seed_fixes_every_scene(tmp_path, options):
    assert [j.config.seed for j in jobs_of(tmp_path, [{"prompt": "a"}, {"prompt": "b"}], *options)] == [7, 7]


def test_a_manifest_from_before_derived_seeds_is_still_the_same_batch(tmp_path):
    import dataclasses

    from scenedreamer.batch.runner import prepare_manifest

    jobs = jobs_of(tmp_path, [{"prompt": "a lake"}])
    old = [dataclasses.replace(j, seed=0, config=dataclasses.replace(j.config, seed=0)) for j in jobs]
    prepare_manifest(tmp_path / "out", old, {}).close()
    prepare_manifest(tmp_path / "out", jobs, {}).close()          # resumes, with the recorded seed 0


# ------------------------------------------------------------------ tries and retries
class _DoneExecutor:
    """Finishes every started scene at the next wait (records what it was given)."""

    def __init__(self):
        self.started, self._pending = [], []

    def capacity(self):
        return 1

    def start(self, config_data, run_folder):
        from scenedreamer.batch.worker import SceneOutcome

        self.started.append(config_data)
        self._pending.append((len(self.started), SceneOutcome(ok=True)))
        return len(self.started)

    def wait(self, timeout):
        out, self._pending = self._pending, []
        return out

    def cancel_all(self):
        pass

    def close(self):
        pass

    def describe(self):
        return "test executor"


@pytest.mark.parametrize("status, error", [("running", ""), ("pending", "interrupted")])
def test_a_resumed_scene_is_not_a_new_try(tmp_path, status, error):
    from scenedreamer.batch.runner import prepare_manifest, run_batch

    jobs = jobs_of(tmp_path, [{"prompt": "a lake"}])
    manifest = prepare_manifest(tmp_path / "out", jobs, {})
    manifest.mark_running(jobs[0].name)                      # attempt 1 ...
    if status == "pending":
        manifest.mark_ended(jobs[0].name, "pending", None, None, error)   # ... cut off by Ctrl-C
    executor = _DoneExecutor()                               # (or by a killed driver: still "running")
    rows = run_batch(manifest, jobs, executor, max_retries=0)
    manifest.close()
    assert [(r.status, r.attempts) for r in rows] == [("done", 1)]
    assert executor.started[0]["seed"] == jobs[0].config.seed


def test_only_what_can_pass_on_a_retry_is_retried(tmp_path):
    from scenedreamer.batch.worker import failed_outcome, run_scene
    from scenedreamer.config_io import to_json_dict
    from scenedreamer.errors import RunFailedError
    from scenedreamer.pipeline.config import GenerateConfig

    assert failed_outcome(MemoryError()).retryable
    for err in (ValueError("bug"), RuntimeError("bug"), OSError(28, "No space left on device"),
                RunFailedError("disk full")):
        assert not failed_outcome(err).retryable, err
    assert failed_outcome(ValueError("x")).error.startswith("internal error")
    # bad input reaching a worker (a config edited by hand) fails once, not retried
    data = to_json_dict(GenerateConfig())
    data["progressive"]["neighbours"] = -3
    outcome = run_scene(data, str(tmp_path / "run"))
    assert not outcome.ok and not outcome.retryable and "progressive.neighbours" in outcome.error
    assert not (tmp_path / "run").exists()


def test_a_worker_orphaned_before_its_death_signal_was_armed_ends_at_once():
    """PR_SET_PDEATHSIG only fires for a parent death after it is set: a worker whose driver was
    killed while it started must not run on (it would hold the scene's lock when the batch is
    re-run, and its resume would count as a new try)."""
    import subprocess
    import sys

    code = ("import os; from scenedreamer.batch.worker import set_parent_death_signal; "
            "set_parent_death_signal(os.getppid() + 1); print('ran on')")
    gone = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert gone.returncode == 1 and "ran on" not in gone.stdout
    code = code.replace("os.getppid() + 1", "os.getppid()")
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert kept.returncode == 0 and "ran on" in kept.stdout
