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
    import subprocess
    import sys

    from shared_runs import build_run_once, lock, shared_folder

    def build(out: Path) -> None:
        r = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "generate", "a forest lake <b>&amp;</b>",
                            "--out", str(out), *TINY_RUN_ARGS], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[1], env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert r.returncode == 0, r.stderr

    folder = shared_folder(tmp_path_factory, worker_id, "shared_tiny_run")
    with lock(folder):
        run = build_run_once(folder, build)
    assert (run / "scene.ply").is_file()
    return run
