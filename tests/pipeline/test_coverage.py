"""Honest coverage (issue 21 item 5): `render` reports each frame's empty fraction and warns
before a panorama / other path that would be mostly empty."""

from __future__ import annotations

import json

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.pipeline import coverage
from shared_runs import shared_run_copy
from tiny_models import tiny_run_args


def test_empty_fraction_matches_its_pixel_by_pixel_twin():
    gen = torch.Generator().manual_seed(0)
    for shape in [(5, 7), (2, 9, 4), (1,)]:
        opacity = torch.rand(shape, generator=gen)
        assert coverage.empty_fraction(opacity) == pytest.approx(coverage.empty_fraction_reference(opacity))
    assert coverage.empty_fraction(torch.zeros(3, 3)) == 1.0 and coverage.empty_fraction(torch.ones(3, 3)) == 0.0


def test_the_warning_names_a_path_that_covers_it():
    assert coverage.coverage_warning(0.4, True, "") == ""
    assert "rotate360" in coverage.coverage_warning(0.8, True, "")
    assert "80%" in coverage.coverage_warning(0.8, False, "orbit")


@pytest.fixture(scope="module")
def run(tmp_path_factory, worker_id):
    # built once per session, shared with the other modules that ask for the same tiny run
    return shared_run_copy(tmp_path_factory, worker_id, "a forest lake", tiny_run_args("48x32", 3),
                           tmp_path_factory.mktemp("coverage") / "run")


@pytest.mark.slow       # the module's tiny run takes ~10-80 s on a busy 2-core machine
def test_render_along_the_run_path_reports_each_frame_empty_fraction(run, tmp_path, capsys):
    out = tmp_path / "frames"
    assert main(["render", str(run), "--out", str(out), "--frames", "4", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "empty: mean" in captured.out and "warning" not in captured.err     # the cameras' own path
    fractions = json.loads((out / "frames.json").read_text())["empty_fraction"]
    assert len(fractions) == 4 and all(0.0 <= f <= 1.0 for f in fractions)
    assert max(fractions) < 0.5            # the run's cameras saw their own views


@pytest.mark.slow
def test_a_panorama_of_a_narrow_run_warns_before_rendering_and_reports(run, tmp_path, capsys):
    out = tmp_path / "pano.png"
    assert main(["render", str(run), "--out", str(out), "--panorama", "--resolution", "64x32", "--quiet"]) == 0
    captured = capsys.readouterr()
    # 3 cameras looking around a little see far less than half of the sphere
    assert "warning: about" in captured.err and "rotate360" in captured.err
    mean = float(captured.out.split("empty: mean ")[1].split("%")[0])
    assert mean > 50
