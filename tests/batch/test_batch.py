"""`scenedreamer batch`: prompt files, the manifest, the local and Ray executors, retries, resume
after SIGKILL, and bad input (one line, exit 2)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenedreamer.batch.prompts import read_prompt_file
from scenedreamer.errors import UserInputError

HERE = Path(__file__).resolve().parent
TINY = ["--resolution", "32x32", "--frames", "2", "--representation", "gaussians", "--set", "init.fit_steps=3",
        "--set", "progressive.fit_steps_per_view=2", "--set", "export.video_frames_per_view=1", "--set", "export.distill.steps=10", "--quiet"]
HANG_GUARD_S = 1200
"""a batch command that has not ended after this long has hung (tiny scenes end in seconds quiet)"""
PROMPTS = "# three tiny scenes\na forest lake\n\na small kitchen\na city street\n"


def batch(*args, env_extra=None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           **(env_extra or {})}
    # the timeout only stops a hung batch: it is no speed check. 300 s was too short on a busy
    # machine (the Ray retry test took over 300 s beside two CPU hogs and the other test worker)
    return subprocess.run([sys.executable, "-m", "scenedreamer.cli", "batch", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=HANG_GUARD_S, **kwargs)


def manifest_rows(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "manifest.sqlite") as db:
        return db.execute("SELECT name, status, attempts, error FROM scenes ORDER BY position").fetchall()


def scene_bytes(folder: Path) -> dict[str, bytes]:
    """What must be identical between two batches: every scene's splats and support views."""
    out = {}
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        out[f"{run.name}/scene.ply"] = (run / "scene.ply").read_bytes()
        for f in sorted((run / "support").rglob("*.npy")) + sorted((run / "images").glob("*.png")):
            out[str(f.relative_to(folder))] = f.read_bytes()
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    prompts = folder / "prompts.txt"
    prompts.write_text(PROMPTS)
    result = batch(prompts, "--out", folder / "out", *TINY)
    return prompts, folder / "out", result


# ------------------------------------------------------------------------------ prompt files
def test_txt_and_jsonl_prompt_files(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("# comment\n\n a lake \nthe same\nthe same\n")
    scenes = read_prompt_file(txt)
    assert [(s.line, s.prompt) for s in scenes] == [(3, "a lake"), (4, "the same"), (5, "the same")]
    assert len({s.name for s in scenes}) == 3                     # equal prompts, two folders
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"prompt": "a lake", "seed": 7, "name": "lake", "trajectory": "t.json", '
                  '"set": {"fit.lr_scale": 0.5}}\n# c\n{"prompt": "a room"}\n')
    a, b = read_prompt_file(jl)
    assert (a.name, a.seed, a.overrides, a.line) == ("lake", 7, {"fit.lr_scale": 0.5}, 1)
    assert a.trajectory == str(tmp_path / "t.json") and b.seed is None and b.line == 3


@pytest.mark.parametrize("text, message", [
    ("# only comments\n\n", "no prompts"),
    ('{"prompt": "a"}\n{"prompt": \n', "line 2: not valid JSON"),
    ('{"prompt": "a", "colour": 1}\n', "line 1: unknown key 'colour'"),
    ('{"prompt": "a", "seed": -1}\n', "line 1: key 'seed'"),
    ('{"prompt": "a", "name": "../up"}\n', "line 1: key 'name'"),
    ('{"prompt": "a", "name": "x"}\n{"prompt": "b", "name": "x"}\n', "line 2: scene name 'x' already used on line 1"),
    ('["a"]\n', "line 1: expected a JSON object"),
])
def test_bad_prompt_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_prompt_file(path)


# ------------------------------------------------------------------------------ local executor
@pytest.mark.slow
def test_local_executor_runs_every_scene_and_status_reads_the_manifest(uninterrupted):
    prompts, out, result = uninterrupted
    assert result.returncode == 0, result.stderr
    rows = manifest_rows(out)
    assert [r[1:3] for r in rows] == [("done", 1)] * 3
    assert all((out / name / "scene.ply").is_file() and (out / name / "config.json").is_file() for name, *_ in rows)
    assert "3 scenes: 0 pending, 0 running, 3 done, 0 failed" in result.stdout
    status = batch("--status", out)
    assert status.returncode == 0 and status.stdout.count(" done ") == 3
    # re-running the same command finds everything done and runs nothing again
    again = batch(prompts, "--out", out, *TINY)
    assert again.returncode == 0 and [r[2] for r in manifest_rows(out)] == [1, 1, 1]


@pytest.mark.slow
def test_sigkilled_batch_resumes_to_the_same_scenes(uninterrupted, tmp_path):
    prompts, reference, _ = uninterrupted
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scenedreamer.cli", "batch", str(prompts), "--out", str(out), *TINY],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill the driver while scene 1 runs (scene 0 done): its worker dies with it (PDEATHSIG);
    # wait for that event as long as the driver lives, not for a deadline (busy machines are slow)
    while proc.poll() is None:
        if (out / "manifest.sqlite").exists():
            try:
                rows = manifest_rows(out)
            except sqlite3.OperationalError:
                rows = []
            if len(rows) == 3 and rows[0][1] == "done" and rows[1][1] == "running":
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the batch ended before it was caught running scene 1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for lock in (".scenedreamer-run.lock", "support/lock"):
        _wait_until_unlocked(out / "0001-a-small-kitchen" / lock)
    assert [r[1] for r in manifest_rows(out)] == ["done", "running", "pending"]
    result = batch(prompts, "--out", out, *TINY)
    rows = manifest_rows(out)
    assert result.returncode == 0, rows
    # the scene the kill cut off resumed: not a new try (issue 21 item 6)
    assert [r[1] for r in rows] == ["done"] * 3 and [r[2] for r in rows] == [1, 1, 1], rows
    assert scene_bytes(out) == scene_bytes(reference)


def _wait_until_unlocked(lock: Path, seconds: float = 300.0) -> None:
    """The orphaned worker gets SIGKILL from the kernel when the driver dies (PDEATHSIG); wait
    until it is gone, i.e. its flock on the run's support database is released."""
    import fcntl

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:        # never created: nobody holds it
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        except BlockingIOError:
            time.sleep(0.1)
        finally:
            os.close(fd)
    pytest.fail(f"{lock} still locked: the worker outlived its driver")


# ------------------------------------------------------------------------------ Ray executor
@pytest.mark.slow
def test_ray_executor_retries_a_dying_worker_and_records_a_failing_scene(tmp_path):
    pytest.importorskip("ray")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a forest FAIL_ONCE", "name": "flaky"}\n'
                       '{"prompt": "a room ALWAYS_FAIL", "name": "broken"}\n'
                       '{"prompt": "a city", "name": "fine"}\n')
    out = tmp_path / "out"
    result = batch(prompts, "--out", out, "--executor", "ray", "--max-retries", "1", *TINY,
                   env_extra={"SCENEDREAMER_BATCH_TASK": "batch_faults:run_scene", "RAY_AUTH_MODE": "disabled"})
    rows = {r[0]: r for r in manifest_rows(out)}
    assert result.returncode == 1, result.stderr                    # not every scene is done
    assert rows["flaky"][1:3] == ("done", 2)                        # died once, retried, done
    assert rows["broken"][1:3] == ("failed", 1) and "injected failure" in rows["broken"][3]   # a bug: no retry
    assert rows["fine"][1:3] == ("done", 1)
    assert (out / "flaky" / "scene.ply").is_file() and not (out / "broken" / "scene.ply").exists()
    assert "3 scenes: 0 pending, 0 running, 2 done, 1 failed" in result.stdout


# ------------------------------------------------------------------------------ bad input
def test_bad_batch_inputs_are_one_line_exit_2(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a lake"}\n{"prompt": "a room", "set": {"fit.no_such": 1}}\n')
    good = tmp_path / "good.txt"
    good.write_text("a lake\n")
    cases = [
        ([tmp_path / "missing.txt", "--out", tmp_path / "o1"], "missing.txt: no such prompt file"),
        ([prompts, "--out", tmp_path / "o2", *TINY], "p.jsonl line 2: --set fit.no_such: FitConfig has no field"),
        ([good, "--out", tmp_path / "o3", "--executor", "ray", "--address", "127.0.0.1:9"], "no Ray cluster answers"),
        ([prompts, "--out", tmp_path / "o4", "--resume"], "--resume: not a batch option"),
        (["--status", tmp_path], "no batch manifest here"),
    ]
    (tmp_path / "user.txt").write_text("mine")
    cases.append(([prompts, "--out", tmp_path], "folder is not empty and holds no batch manifest"))
    for argv, message in cases:
        result = batch(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (argv, result.stderr)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 5))       # nothing created
    assert (tmp_path / "user.txt").read_text() == "mine"


def test_ray_missing_says_how_to_install(monkeypatch):
    from scenedreamer.batch.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)                   # import ray -> ImportError
    with pytest.raises(UserInputError, match=r"scenedreamer\[ray\]"):
        RayExecutor()


def test_another_batchs_manifest_is_refused_naming_the_difference(tmp_path):
    from scenedreamer.batch.runner import SceneJob, prepare_manifest
    from scenedreamer.pipeline.config import GenerateConfig

    jobs = [SceneJob("a", "a lake", 0, GenerateConfig(prompt="a lake"))]
    prepare_manifest(tmp_path, jobs, {}).close()
    prepare_manifest(tmp_path, jobs, {}).close()                     # the same batch: fine
    other = [SceneJob("a", "a lake", 0, GenerateConfig(prompt="a lake", width=128))]
    with pytest.raises(UserInputError, match="scene 'a': width: 256 -> 128"):
        prepare_manifest(tmp_path, other, {})
    with pytest.raises(UserInputError, match="scene 'b' is not in it"):
        prepare_manifest(tmp_path, jobs + [SceneJob("b", "x", 0, GenerateConfig(prompt="x"))], {})
    assert json.loads(json.dumps(manifest_rows(tmp_path)))[0][:2] == ["a", "pending"]
