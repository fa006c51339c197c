"""Tiny runs built once per test session and shared by the modules (and xdist workers) that need
the same one; see ``shared_run_copy``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def shared_run_copy(tmp_path_factory, worker_id: str, prompt: str, args: list[str], dest: Path) -> Path:
    """``dest``: a private copy of the finished in-process run ``generate PROMPT --out ... ARGS``.

    The run is built once per test session, by whichever module or xdist worker asks first,
    under a file lock (the others wait on it, then copy), keyed by the prompt and arguments: the
    modules that each built an identical module-scoped run now share one build. Each caller gets
    its own copy, because the support database takes an exclusive lock while open (two workers
    must never open one folder) and so that a test changing its copy disturbs no other module.
    """
    from filelock import FileLock

    from scenedreamer.cli import main

    key = hashlib.sha1(json.dumps([prompt, *map(str, args)]).encode()).hexdigest()[:12]
    base = tmp_path_factory.getbasetemp()
    # the workers' common base temp under xdist (as tests/conftest.py shared_folder), else our own
    folder = (base.parent if worker_id != "master" else base) / f"shared_run_{key}"
    run = folder / "run"
    with FileLock(str(folder) + ".lock"):
        if not run.is_dir():
            building = folder.with_name(folder.name + ".building")
            shutil.rmtree(building, ignore_errors=True)      # a worker that failed here left it (ours)
            building.mkdir(parents=True)
            assert main(["generate", prompt, "--out", str(building / "run"), *map(str, args)]) == 0
            building.rename(folder)                         # whole or absent: never half a run
        shutil.copytree(run, dest)
    return dest
