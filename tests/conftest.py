"""Suite-wide test settings.

The suite runs as two pytest-xdist workers on a 2-core machine; each worker uses one torch
thread, since two busy workers with two threads each stall one another (measured 10-50x on
small ops).
"""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """CUDA tests skip without CUDA; real-weight tests skip unless SCENEDREAMER_REAL_WEIGHTS=1."""
    no_cuda = pytest.mark.skip(reason="needs a CUDA device")
    no_weights = pytest.mark.skip(reason="real-weight test: set SCENEDREAMER_REAL_WEIGHTS=1 to run")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "real_weights" in item.keywords and os.environ.get("SCENEDREAMER_REAL_WEIGHTS") != "1":
            item.add_marker(no_weights)


def shared_folder(tmp_path_factory, worker_id: str, name: str) -> Path:
    """A folder that every xdist worker of this test session sees (the workers' common base
    temp), or this session's own base temp without xdist; never one from another session."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if worker_id != "master" else base) / name


TINY_RUN_ARGS = ("--resolution", "64x64", "--frames", "2", "--representation", "gaussians", "--quiet",
                 "--set", "init.fit_steps=60", "--set", "progressive.fit_steps_per_view=15")
"""The shared tiny run: Gaussians, 64x64, 2 cameras, fits long enough that Spark's render of its
scene.ply resembles the support views (tests/viewer/test_browser.py)."""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id) -> Path:
    """A finished tiny offline run (`generate` in a child process, as a user runs it), made once
    per test session and shared by both xdist workers: the first worker to ask builds it under a
    file lock while the other waits on that lock. Tests must not change it (copy it first).
    The prompt holds markup, so the viewer tests can check it is shown as text."""
    import shutil
    import subprocess
    import sys

    from filelock import FileLock

    folder = shared_folder(tmp_path_factory, worker_id, "shared_tiny_run")
    run = folder / "run"
    with FileLock(str(folder) + ".lock"):
        if not run.is_dir():
            building = folder.with_name(folder.name + ".building")
            shutil.rmtree(building, ignore_errors=True)      # a worker that failed here left it (ours)
            building.mkdir(parents=True)
            r = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "generate", "a forest lake <b>&amp;</b>",
                                "--out", str(building / "run"), *TINY_RUN_ARGS], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[1], env=dict(os.environ, OMP_NUM_THREADS="1"))
            assert r.returncode == 0, r.stderr
            building.rename(folder)                         # whole or absent: never half a run
    assert (run / "scene.ply").is_file()
    return run
