"""Tiny runs built once per test session and shared by the modules (and xdist workers) that need
the same one; see ``shared_run_copy``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable


def shared_folder(tmp_path_factory, worker_id: str, name: str) -> Path:
    """A folder that every xdist worker of this test session sees (the workers' common base
    temp), or this session's own base temp without xdist; never one from another session."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if worker_id != "master" else base) / name


def build_run_once(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder``/run, built by ``build(out)`` once per session under a file lock on ``folder``
    (other workers wait on the lock, then find it built). Built into a ``.building`` sibling and
    renamed, so the run is whole or absent, never half of one. Call it inside ``lock(folder)``
    when the caller must also read the run before another worker could change it."""
    run = folder / "run"
    if not run.is_dir():
        building = folder.with_name(folder.name + ".building")
        shutil.rmtree(building, ignore_errors=True)      # a worker that failed here left it (ours)
        building.mkdir(parents=True)
        build(building / "run")
        building.rename(folder)
    return run


def lock(folder: Path):
    """The file lock that guards the shared ``folder`` (a context manager)."""
    from filelock import FileLock

    return FileLock(str(folder) + ".lock")


def shared_run_copy(tmp_path_factory, worker_id: str, prompt: str, args: list[str], dest: Path) -> Path:
    """``dest``: a private copy of the finished in-process run ``generate PROMPT --out ... ARGS``.

    The run is built once per test session, by whichever module or xdist worker asks first,
    under a file lock (the others wait on it, then copy), keyed by the prompt and arguments: the
    modules that each built an identical module-scoped run now share one build. Each caller gets
    its own copy, because the support database takes an exclusive lock while open (two workers
    must never open one folder) and so that a test changing its copy disturbs no other module.
    """
    from scenedreamer.cli import main

    def build(out: Path) -> None:
        assert main(["generate", prompt, "--out", str(out), *map(str, args)]) == 0

    key = hashlib.sha1(json.dumps([prompt, *map(str, args)]).encode()).hexdigest()[:12]
    folder = shared_folder(tmp_path_factory, worker_id, f"shared_run_{key}")
    with lock(folder):
        shutil.copytree(build_run_once(folder, build), dest)
    return dest
