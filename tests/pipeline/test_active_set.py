"""A long world's active set in the pipeline: Gaussians the active cameras do not see are frozen
to disk and come back whole in the outputs; an interrupted run resumes to the same bytes; a
grown world with frozen parts reverts byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import scenedreamer.pipeline.generate as generate_module
from scenedreamer.cli import main
from scenedreamer.geometry.cameras import Cameras, intrinsics_from_fov
from scenedreamer.geometry.trajectory import Trajectory
from scenedreamer.geometry.trajectory_io import write_transforms_json
from scenedreamer.representation.checkpoint import load_checkpoint
from scenedreamer.support.database import SupportDatabase
from representation.scenes import look_at
from tiny_models import tiny_run_args

# from the first view on, each step works on its one best-overlapping support view
ACTIVE = ["--set", "progressive.active_after_views=0", "--set", "progressive.active_views=1"]
DIFFERENT = ("events.jsonl", "support/support.sqlite")
"""Files that hold the history of an interrupted call (its events, the views' creation times)."""


def _side_walk(path: Path, first: int, count: int) -> Path:
    """Cameras walking along +z (1 unit apart) looking right (+x): each sees new ground."""
    eyes = torch.tensor([[0.0, 0.0, float(i)] for i in range(first, first + count)])
    c2w = torch.stack([look_at(e, e + torch.tensor([1.0, 0.3, 0.0])) for e in eyes])
    write_transforms_json(path, Trajectory(Cameras(intrinsics_from_fov(60.0, 32, 32).expand(count, 3, 3).clone(),
                                                   c2w, 32, 32), [None] * count))
    return path


def _args(tmp: Path, out: Path) -> list[str]:
    args = tiny_run_args("32x32", 3)
    at = args.index("--frames")
    del args[at:at + 2]                      # the path file sets the cameras
    return ["generate", "a forest lake", "--out", str(out), "--seed", "4",
            "--trajectory", str(_side_walk(tmp / "walk.json", 0, 4)), *args, *ACTIVE]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] not in ("chapters.json", "chapters", ".scenedreamer-run.lock")}


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    base = tmp_path_factory.mktemp("active")
    run = base / "run"
    assert main(_args(base, run)) == 0
    return base, run


def _last_checkpoint(run: Path):
    progress = json.loads((run / "progress.json").read_text())
    return load_checkpoint(run / "checkpoints" / progress["checkpoint"])


def test_what_the_active_cameras_miss_is_frozen_and_the_outputs_hold_the_whole_world(walked):
    _, run = walked
    frozen = sorted(p.name for p in (run / "checkpoints").glob("frozen_*.pt"))
    assert frozen, "a walk that leaves ground behind freezes some of it"
    ckpt = _last_checkpoint(run)
    index = ckpt.extra["frozen"]
    alive = sum(int(c["alive"].sum()) for c in index["chunks"])
    assert alive > 0
    # scene.pt (which render, eval and the exports read) is the active set plus every frozen row
    world = load_checkpoint(run / "scene.pt").representation
    assert world.num_gaussians == ckpt.representation.num_gaussians + alive
    # ... and the in-memory part was not the whole world
    assert ckpt.representation.num_gaussians < world.num_gaussians


def test_an_interrupted_run_with_frozen_parts_resumes_to_the_same_bytes(walked, tmp_path, monkeypatch):
    base, reference = walked
    out = tmp_path / "run"
    real = generate_module.generate_next_view

    def stop_at_step_3(config, step, *rest):
        if step == 3:
            raise KeyboardInterrupt     # what Ctrl-C does mid-run: steps 0-2 stay committed
        return real(config, step, *rest)

    monkeypatch.setattr(generate_module, "generate_next_view", stop_at_step_3)
    # the same path file as the reference (config.json names it)
    assert main(_args(base, out)) != 0
    assert json.loads((out / "progress.json").read_text())["last_step"] == 2
    assert list((out / "checkpoints").glob("frozen_*.pt"))
    monkeypatch.setattr(generate_module, "generate_next_view", real)
    assert main(_args(base, out) + ["--resume"]) == 0
    ours, theirs = _files(out), _files(reference)
    assert ours.keys() == theirs.keys()
    assert sorted(k for k in ours if ours[k] != theirs[k] and k not in DIFFERENT) == []


def test_a_grown_world_with_frozen_parts_reverts_byte_for_byte(walked, tmp_path):
    base, generated = walked
    run = tmp_path / "run"
    shutil.copytree(generated, run, symlinks=True)
    assert main(["extend", str(run), "--trajectory", str(_side_walk(tmp_path / "on.json", 4, 2)), "--quiet",
                 *ACTIVE]) == 0
    grown_chunks = {p.name for p in (run / "checkpoints").glob("frozen_*.pt")}
    assert grown_chunks > {p.name for p in (generated / "checkpoints").glob("frozen_*.pt")}
    with SupportDatabase.open(run / "support", create=False) as db:
        assert max(db.view_info(v).step for v in db.ids()) == 5
    assert main(["extend", str(run), "--revert", "0"]) == 0
    assert _files(run) == _files(generated)
