"""Terminal progress for the CLI: a tqdm bar fed by ProgressEvents (UI code lives only here)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..events import ProgressEvent


class WorkTracker:
    """Where a run stands in units of work (pure bookkeeping, no drawing).

    The "run" event carries the stage weights (metrics work_init, work_view, work_export; units
    ~ fitting steps, pipeline/plan.py work_units) and the camera count; within a stage, "fit",
    "video" and "init" events move the position by their share of that stage. The ETA of a bar
    fed by this is then the remaining work at the rate of the work done so far."""

    def __init__(self) -> None:
        self.views = 0
        self.init = self.view = self.export = 0.0
        self.base = 0.0             # work finished before the current stage
        self.stage_units = 0.0      # weight of the current stage
        self.position = 0.0
        self.in_export = False

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

    def on_event(self, event: ProgressEvent) -> None:
        """Move the position for ``event`` (never backwards)."""
        if event.stage == "view":                  # view ``step`` of ``total`` is done
            self.base = self.init + max(0, event.step - 1) * self.view
            self.stage_units = self.view if event.step < self.views else self.export
            self._at(self.base)
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


class ProgressBar:
    """An EventSink drawing the run's progress in units of work (initialisation, each view,
    distillation and exports weighted by their cost) with an ETA; the current view and stage in
    the description, fitting metrics in the postfix; model loading ("load" events) as one line
    per model; the models and thread count used as one line."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"

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
                # smoothing=0: the ETA is the remaining work at the average rate so far (the
                # stages are weighted, so the rate is steady across them)
                self._bar = tqdm(total=self.work.total, initial=self.work.position, desc="generating",
                                 bar_format=self.FORMAT, smoothing=0, file=self._stream, dynamic_ncols=True)
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
