"""The progress bar counts work, not views (issue 21 item 2)."""

from __future__ import annotations

import dataclasses
import math
import io

import pytest

from scenedreamer.cli.progress import ProgressBar, WorkTracker
from scenedreamer.events import ProgressEvent
from scenedreamer.pipeline.config import preset_config
from scenedreamer.pipeline.plan import DIFFUSION_STEP_UNITS, work_units

WORK = dict(work_init=100.0, work_view=20.0, work_export=80.0, threads=2.0)


def _run_events(views: int = 4):
    yield ProgressEvent("run", 0, views, "first view: procedural", dict(WORK))
    for k in range(1, 11):
        yield ProgressEvent("fit", k, 10)
    yield ProgressEvent("view", 1, views, "scene context initialised")
    for step in range(1, views):
        for k in range(1, 6):
            yield ProgressEvent("fit", k, 5)
        yield ProgressEvent("view", step + 1, views, f"view {step} added")
    for k in range(5):
        yield ProgressEvent("export", k, 4, "export")
        if k == 2:
            for i in range(1, 4):
                yield ProgressEvent("fit", i, 3)


def test_positions_follow_the_weighted_work_and_never_go_back():
    tracker = WorkTracker()
    seen = []
    for event in _run_events():
        (tracker.on_run if event.stage == "run" else tracker.on_event)(event)
        seen.append((event.stage, event.step, tracker.position))
    assert tracker.total == 100 + 3 * 20 + 80
    positions = [p for _, _, p in seen]
    assert positions == sorted(positions)                       # monotone
    by_view = {step: p for stage, step, p in seen if stage == "view"}
    assert by_view[1] == 100 and by_view[2] == 120 and by_view[4] == 160     # init, then each view
    # the initialisation's fitting fills its own weight, not the first view's
    init_fit_end = [p for stage, step, p in seen if stage == "fit"][9]
    assert 90 <= init_fit_end < 100
    assert positions[-1] == tracker.total


def test_a_resumed_run_starts_at_its_committed_work():
    tracker = WorkTracker()
    tracker.on_run(ProgressEvent("run", 3, 4, "", dict(WORK)))      # steps 0..3 committed? step 3 = view 3
    assert tracker.position == 100 + 2 * 20


def test_the_bar_shows_threads_and_ends_full():
    stream = io.StringIO()
    bar = ProgressBar(stream=stream)
    for event in _run_events():
        bar(event)
    assert bar._bar.n == pytest.approx(bar._bar.total)
    bar.close()
    assert "2 threads" in stream.getvalue()


def test_stage_weights_come_from_the_config():
    config = preset_config("offline")
    base = work_units(config, 12)
    more_fit = work_units(dataclasses.replace(
        config, progressive=dataclasses.replace(config.progressive, fit_steps_per_view=40)), 12)
    assert more_fit.view == pytest.approx(base.view + 20) and more_fit.init == base.init
    no_ply = work_units(dataclasses.replace(config, export=dataclasses.replace(config.export, ply=False)), 12)
    # 14 support views (the first camera, its two initial neighbours, 11 more cameras): the
    # distillation runs at least steps_per_view for each of them (DistillConfig.steps_for)
    distill_steps = config.export.distill.steps_for(14)
    assert distill_steps == max(config.export.distill.steps, math.ceil(14 * config.export.distill.steps_per_view))
    assert no_ply.export == pytest.approx(base.export - distill_steps)
    sd15 = preset_config("sd15")
    # a diffusion refiner's view weighs its denoising steps on top of the fitting
    assert work_units(sd15, 12).view >= (sd15.progressive.fit_steps_per_view
                                         + sd15.refiner.num_inference_steps * DIFFUSION_STEP_UNITS)
