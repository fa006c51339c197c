"""Terminal progress for the CLI: a tqdm bar fed by ProgressEvents (UI code lives only here)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from ..events import ProgressEvent


class WorkTracker:
    """Where a run stands in units of work (pure bookkeeping, no drawing).

    The "run" event carries the stage weights (metrics work_init, work_view, work_export; units
    ~ fitting steps, pipeline/plan.py work_units) and the camera count; within a stage, "fit",
    "video" and "init" events move the position by their share of that stage. The ETA of a bar
    fed by this is then the remaining work at the rate of the work done so far.

    ETA (``eta(now)``, pure arithmetic on the events' own times): the remaining work times a
    seconds-per-unit rate measured on the most telling finished work: the last RECENT_VIEWS
    progressive views once one is done (the initialisation has another mix of prior calls and
    fitting and one-off costs, so its rate is used only until then; recent views follow a machine
    whose load changes), the initialisation's before, the run's average during it. The time
    already spent in the current stage is taken off that stage's share."""

    CURRENT_STAGE_TRUSTED = 0.5
    """Fraction of a stage after which its own rate replaces the previous stages' when no
    progressive view is finished yet (the first progressive view's fitting is then the best
    evidence of what a view costs)."""

    RECENT_VIEWS = 4
    """Progressive views whose mean rate the ETA uses (the most recent ones)."""

    def __init__(self) -> None:
        self.views = 0
        self.init = self.view = self.export = 0.0
        self.base = 0.0             # work finished before the current stage
        self.stage_units = 0.0      # weight of the current stage
        self.position = 0.0
        self.in_export = False
        self.started: tuple[float, float] | None = None     # (time, position) of the "run" event
        self.init_done: tuple[float, float] | None = None   # (time, position) when view 1 was done
        self.last_mark: tuple[float, float] | None = None   # (time, position) of the last stage end
        self.view_marks: list[tuple[float, float]] = []    # (time, position) at each progressive view's end

    @property
    def total(self) -> float:
        return self.init + max(0, self.views - 1) * self.view + self.export

    def on_run(self, event: ProgressEvent) -> None:
        m = event.metrics
        self.views = event.total
        self.init, self.view, self.export = (float(m.get(k, 0.0)) for k in ("work_init", "work_view", "work_export"))
        if not self.init and not self.view:        # an older event log: one unit a view
            self.init, self.view = 1.0, 1.0
        done = event.step                          # last committed step (0: none or only the context)
        self.base = 0.0 if done <= 0 else self.init + (done - 1) * self.view
        self.stage_units = self.init if done <= 0 else self.view
        self.position = self.base
        self.started = self.last_mark = (event.time, self.position)
        # a resumed run is past its initialisation: its views are timed from here
        self.init_done, self.view_marks = (self.started if done > 0 else None), []

    def on_event(self, event: ProgressEvent) -> None:
        """Move the position for ``event`` (never backwards)."""
        if event.stage == "view":                  # view ``step`` of ``total`` is done
            self.base = self.init + max(0, event.step - 1) * self.view
            self.stage_units = self.view if event.step < self.views else self.export
            self._at(self.base)
            self._mark(event.time, initialised=event.step == 1)
        elif event.stage == "export" and not self.in_export:
            self.in_export = True
            self.base = self.init + max(0, self.views - 1) * self.view
            self.stage_units = self.export
            self._at(self.base)
        elif event.stage in ("fit", "video") and event.total:
            # a stage's fitting (and the export's video) fill it up to (nearly) its end
            self._at(self.base + self.stage_units * 0.95 * event.step / event.total)
        if event.stage == "export" and event.total and event.step >= event.total:
            self._at(self.total)

    def _at(self, position: float) -> None:
        self.position = min(self.total, max(self.position, position))

    def _mark(self, when: float, initialised: bool) -> None:
        """A stage ended at ``when``: the initialisation (view 1) or a progressive view."""
        if self.started is None:
            return
        if initialised:
            self.init_done = (when, self.position)
        elif self.init_done is not None:
            self.view_marks.append((when, self.position))
        self.last_mark = (when, self.position)

    def seconds_per_unit(self, now: float) -> float | None:
        """The rate the ETA uses (class docstring); None before any work is measurable."""
        if self.started is None or self.last_mark is None:
            return None
        if self.view_marks:                                  # the recent progressive views only
            marks = [self.init_done, *self.view_marks][-(self.RECENT_VIEWS + 1):]
            (t0, p0), (t1, p1) = marks[0], marks[-1]
            return (t1 - t0) / (p1 - p0) if p1 > p0 else None
        mark_time, mark_pos = self.last_mark
        in_stage = self.position - mark_pos
        if self.init_done is not None and self.stage_units and \
                in_stage < self.CURRENT_STAGE_TRUSTED * self.stage_units:
            (t0, p0), (t1, p1) = self.started, self.init_done   # the initialisation's rate
            return (t1 - t0) / (p1 - p0) if p1 > p0 else None
        if in_stage <= 0:
            return None
        return (now - mark_time) / in_stage                  # the current stage's own rate

    def eta(self, now: float) -> float | None:
        """Seconds of work left at ``now`` (UNIX seconds, the events' clock); None when unknown.
        The current stage's share is its weight at the rate less the time already spent in it
        (never below the later stages' share: a stage that runs long is not yet known to end)."""
        rate = self.seconds_per_unit(now)
        if rate is None:
            return None
        mark_time, mark_pos = self.last_mark
        stage_end = min(self.total, max(self.base + self.stage_units, self.position))
        after_stage = (self.total - stage_end) * rate
        return max(after_stage, (self.total - mark_pos) * rate - (now - mark_time), 0.0)


class _WorkBar(tqdm):
    """A tqdm bar whose format has ``{eta}``: the WorkTracker's estimate (tqdm's own remaining
    time assumes one rate for the whole run)."""

    def __init__(self, *args, work: WorkTracker, **kwargs):
        self.work = work
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        values = super().format_dict
        left = self.work.eta(time.time())
        values["eta"] = "?" if left is None else tqdm.format_interval(left)
        return values


class ProgressBar:
    """An EventSink drawing the run's progress in units of work (initialisation, each view,
    distillation and exports weighted by their cost) with an ETA; the current view and stage in
    the description, fitting metrics in the postfix; model loading ("load" events) as one line
    per model; the models and thread count used as one line."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{eta}{postfix}]"

    def __init__(self, stream=None):
        self._bar: tqdm | None = None
        self._stream = stream or sys.stderr
        self.work = WorkTracker()
        self._view = 0

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "load":          # model loading, before the first view: one line each
            tqdm.write(f"{event.message} [{event.step}/{event.total}]", file=self._stream)
            return
        if event.stage == "run":
            self.work.on_run(event)
            self._view = event.step
            if self._bar is None:
                # the ETA is the WorkTracker's (measured per stage from the events' times)
                self._bar = _WorkBar(total=self.work.total, initial=self.work.position, desc="generating",
                                     bar_format=self.FORMAT, smoothing=0, file=self._stream, dynamic_ncols=True,
                                     work=self.work)
            if event.message:
                threads = event.metrics.get("threads")
                self._bar.write(f"using {event.message}" + (f"; {int(threads)} threads" if threads else ""),
                                file=self._stream)
            return
        if self._bar is None:
            return
        self.work.on_event(event)
        if event.stage == "view":
            self._view = event.step
        self._bar.update(self.work.position - self._bar.n)
        where = "exporting" if self.work.in_export else \
            ("initialising" if self._view <= 0 else f"view {min(self._view + 1, self.work.views)}/{self.work.views}")
        self._bar.set_description_str(where, refresh=False)
        post = {k: f"{v:.4g}" for k, v in list(event.metrics.items())[:2]}
        post["stage"] = event.stage
        self._bar.set_postfix(post, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class StageBar:
    """An EventSink drawing one tqdm bar for the events of one stage (e.g. "eval", "render")."""

    def __init__(self, stage: str, desc: str, unit: str = "frame", stream=None):
        self.stage, self.desc, self.unit = stage, desc, unit
        self._bar: tqdm | None = None
        self._stream = stream or sys.stderr

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage != self.stage:
            return
        if self._bar is None or self._bar.total != event.total:
            self.close()
            self._bar = tqdm(total=event.total, unit=self.unit, desc=self.desc, file=self._stream,
                             dynamic_ncols=True)
        self._bar.n = event.step
        if event.message:
            self._bar.set_description_str(event.message[:60])
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
