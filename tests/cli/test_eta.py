"""The progress bar's ETA (issue 21 item 2): the arithmetic of WorkTracker.eta on synthetic event
times (no clock, no waiting). benchmarks/bench_eta.py measures it on real runs."""

from __future__ import annotations

import io

import pytest

from scenedreamer.cli.progress import ProgressBar, WorkTracker
from scenedreamer.events import ProgressEvent

WORK = dict(work_init=100.0, work_view=20.0, work_export=40.0)
VIEWS = 5           # the initialisation (view 1) + 4 progressive views
T0 = 1_000_000.0    # the events' clock (UNIX seconds)


def simulate(init_s: float, view_s: float, export_s: float, fits: int = 10):
    """(event, tracker after it) for a run whose initialisation, each progressive view and the
    export take the given seconds, fitting evenly within each stage."""
    tracker = WorkTracker()
    out = []

    def feed(event):
        (tracker.on_run if event.stage == "run" else tracker.on_event)(event)
        out.append((event, tracker.eta(event.time)))

    feed(ProgressEvent("run", 0, VIEWS, "", dict(WORK), time=T0))
    now = T0
    for view in range(1, VIEWS + 1):
        length = init_s if view == 1 else view_s
        for k in range(1, fits + 1):
            feed(ProgressEvent("fit", k, fits, time=now + length * k / fits))
        now += length
        feed(ProgressEvent("view", view, VIEWS, time=now))
    feed(ProgressEvent("export", 0, 4, time=now))
    for k in range(1, fits + 1):
        feed(ProgressEvent("fit", k, fits, time=now + export_s * k / fits))
    feed(ProgressEvent("export", 4, 4, time=now + export_s))
    return tracker, out


def test_eta_is_exact_when_the_weights_match_the_costs():
    # 1 s per unit everywhere: at the end of the initialisation 4 views x 20 + 40 units are left
    tracker, out = simulate(init_s=100.0, view_s=20.0, export_s=40.0)
    after_init = next(eta for event, eta in out if event.stage == "view" and event.step == 1)
    assert after_init == pytest.approx(4 * 20 + 40)
    after_view2 = next(eta for event, eta in out if event.stage == "view" and event.step == 2)
    assert after_view2 == pytest.approx(3 * 20 + 40)
    assert out[-1][1] == pytest.approx(0.0)


def test_views_are_timed_by_their_own_rate_once_one_is_done():
    # views cost 3x their weight against the initialisation: after the first progressive view the
    # ETA uses the views' rate (3 s/unit), not the run's average
    tracker, out = simulate(init_s=100.0, view_s=60.0, export_s=120.0)
    real_left = {event.step: T0 + 100 + 60 * (VIEWS - 1) + 120 - event.time
                 for event, _ in out if event.stage == "view"}
    etas = {event.step: eta for event, eta in out if event.stage == "view"}
    for step in range(2, VIEWS + 1):
        assert etas[step] == pytest.approx(real_left[step])
    # right after the initialisation only its rate is known: 1 s/unit, a third of the truth
    assert etas[1] == pytest.approx((4 * 20 + 40) * 1.0)


def test_the_first_view_corrects_the_estimate_halfway_through_it():
    # halfway through the first progressive view, its own rate (3 s/unit) is trusted
    tracker, out = simulate(init_s=100.0, view_s=60.0, export_s=120.0)
    first = [(event, eta) for event, eta in out if event.stage == "fit"][10:20]     # view 2's fitting
    # the 6th of 10 fitting events is the first past CURRENT_STAGE_TRUSTED of the stage's weight
    # (the fitting fills 0.95 of it: 0.95 * 6 / 10 = 0.57 >= 0.5, 0.95 * 5 / 10 < 0.5)
    before, after = first[4], first[5]
    real_left = {e.time: T0 + 100 + 60 * (VIEWS - 1) + 120 - e.time for e, _ in (before, after)}
    assert before[1] < 0.5 * real_left[before[0].time]      # still the initialisation's rate
    # its own rate: within 20 % (the 5 % of a stage's weight after its fitting is not yet seen;
    # the project's target after the first view is 30 %)
    assert after[1] == pytest.approx(real_left[after[0].time], rel=0.20)


def test_time_spent_in_a_stage_is_taken_off_but_never_below_the_later_stages():
    tracker, out = simulate(init_s=100.0, view_s=20.0, export_s=40.0)
    event = next(e for e, _ in out if e.stage == "view" and e.step == 3)
    t = WorkTracker()                           # the run again, up to the end of view 3
    for e, _ in out:
        (t.on_run if e.stage == "run" else t.on_event)(e)
        if e is event:
            break
    at_mark = t.eta(event.time)
    assert t.eta(event.time + 5.0) == pytest.approx(at_mark - 5.0)             # 5 s into view 4
    assert t.eta(event.time + 500.0) == pytest.approx(1 * 20 + 40)             # stalled: later stages only


def test_eta_is_unknown_before_any_work_is_done():
    tracker = WorkTracker()
    assert tracker.eta(T0) is None
    tracker.on_run(ProgressEvent("run", 0, VIEWS, "", dict(WORK), time=T0))
    assert tracker.eta(T0 + 10) is None


def test_a_resumed_run_times_its_views_from_the_resume():
    tracker = WorkTracker()
    tracker.on_run(ProgressEvent("run", 3, VIEWS, "", dict(WORK), time=T0))   # views 1..3 committed
    tracker.on_event(ProgressEvent("view", 4, VIEWS, time=T0 + 40.0))         # one view took 40 s
    assert tracker.eta(T0 + 40.0) == pytest.approx((20 + 40) * 2.0)          # 2 s/unit


def test_the_bar_shows_the_trackers_eta():
    stream = io.StringIO()
    bar = ProgressBar(stream=stream)
    bar(ProgressEvent("run", 0, VIEWS, "", dict(WORK), time=T0))
    bar(ProgressEvent("view", 1, VIEWS, time=T0 + 100.0))
    assert bar._bar.format_dict["eta"] == "?" or ":" in bar._bar.format_dict["eta"]
    left = bar.work.eta(T0 + 100.0)
    assert left == pytest.approx(4 * 20 + 40)
    bar.close()


def test_the_rate_follows_the_recent_views():
    # the machine gets twice as slow after view 3: once RECENT_VIEWS slow views are done, the
    # ETA is the slow rate, not the run's mean
    tracker = WorkTracker()
    views = 2 + 2 * WorkTracker.RECENT_VIEWS
    tracker.on_run(ProgressEvent("run", 0, views, "", dict(WORK), time=T0))
    now = T0 + 100.0
    tracker.on_event(ProgressEvent("view", 1, views, time=now))
    for step in range(2, 2 + 2 * WorkTracker.RECENT_VIEWS):
        now += 20.0 if step <= 1 + WorkTracker.RECENT_VIEWS else 40.0      # 1 s/unit, then 2 s/unit
        tracker.on_event(ProgressEvent("view", step, views, time=now))
    assert tracker.seconds_per_unit(now) == pytest.approx(2.0)
    assert tracker.eta(now) == pytest.approx((20 + 40) * 2.0)
