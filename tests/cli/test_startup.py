"""Start-up stays light (issue 21 item 2): `scenedreamer --help`, `generate --help` and
`generate PROMPT --dry-run` (offline default) never import torch, checked in a fresh interpreter
(its sys.modules, and python -X importtime's list of imported modules), never by the clock;
benchmarks/bench_startup.py times them. The dry-run's torch-free shortcuts agree with a run's."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenedreamer.errors import UserInputError
from scenedreamer.pipeline.config import preset_config
from scenedreamer.pipeline.plan import planned_device, trajectory_camera_count

SRC = Path(__file__).resolve().parents[2] / "src"
PROBE = ("import sys\nfrom scenedreamer.cli import main\ntry:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    code = e.code\nprint('EXIT', code, file=sys.stderr)\n"
         "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")
COMMANDS = [["--help"], ["generate", "--help"], ["generate", "a forest lake", "--dry-run"], ["trajectory", "--help"]]


def _run(argv, tmp_path, *flags):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, *flags, "-c", PROBE, *argv], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("argv", COMMANDS, ids=["help", "generate-help", "dry-run", "trajectory-help"])
def test_start_up_does_not_import_torch(argv, tmp_path):
    out = _run(argv, tmp_path)
    lines = out.stderr.strip().splitlines()
    assert lines[-2:] == ["EXIT 0", "NO-TORCH"], out.stderr
    assert ("plan (offline preset)" if "--dry-run" in argv else "usage: scenedreamer") in out.stdout
    assert not (tmp_path / "runs").exists()              # a plan writes nothing


def test_importtime_lists_no_torch_module(tmp_path):
    out = _run(COMMANDS[2], tmp_path, "-X", "importtime")
    imported = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert "scenedreamer.pipeline.plan" in imported      # the probe saw the plan being imported
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_the_plans_camera_count_is_the_runs():
    from scenedreamer.pipeline.scene_cameras import load_trajectory

    config = preset_config("offline")
    for preset, frames in [("lookaround", 12), ("orbit", 7), ("spiral", 3)]:
        spec = dataclasses.replace(config.trajectory, preset=preset, frames=frames)
        case = dataclasses.replace(config, trajectory=spec)
        assert trajectory_camera_count(case) == len(load_trajectory(case).cameras) == frames


@pytest.mark.parametrize("change", [dict(preset="nope"), dict(params={"yaw_deg": "x"}), dict(params={"bogus": 1}),
                                    dict(params={"yaw_deg": 1e9})])
def test_the_plan_refuses_a_trajectory_as_a_run_does(change):
    from scenedreamer.pipeline.scene_cameras import load_trajectory

    config = preset_config("offline")
    case = dataclasses.replace(config, trajectory=dataclasses.replace(config.trajectory, **change))
    with pytest.raises(UserInputError) as plan_error:
        trajectory_camera_count(case)
    with pytest.raises(UserInputError) as run_error:
        load_trajectory(case)
    assert str(plan_error.value) == str(run_error.value)


def test_the_planned_device_is_the_runs(monkeypatch):
    from scenedreamer.pipeline.priors_factory import resolve_device

    assert planned_device("auto") == resolve_device("auto").type     # torch is imported here: exact
    assert planned_device("cpu") == "cpu"
    monkeypatch.delitem(sys.modules, "torch")                        # as in a fresh --dry-run process
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert planned_device("auto") == "cpu"                          # every GPU hidden


def test_lazy_packages_still_export_their_names():
    import scenedreamer.geometry as geometry
    import scenedreamer.priors as priors
    from scenedreamer.geometry.cameras import Cameras
    from scenedreamer.priors.config import DepthKind
    from scenedreamer.representation.rasterize import rasterize
    from scenedreamer.representation.rasterize.backends import rasterize as defined

    assert geometry.Cameras is Cameras and priors.DepthKind is DepthKind and rasterize is defined
    assert geometry.trajectory_presets.MAX_FRAMES > 0            # a submodule reads as an attribute
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        geometry.nothing
