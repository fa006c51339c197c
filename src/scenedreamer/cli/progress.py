"""Terminal progress for the CLI: a tqdm bar fed by ProgressEvents (UI code lives only here)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from ..events import ProgressEvent


class ProgressBar:
    """An EventSink drawing the run's view progress with an ETA; fitting metrics in the postfix;
    model loading ("load" events) as one line per model."""

    def __init__(self, stream=None):
        self._bar: tqdm | None = None
        self._stream = stream or sys.stderr

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "load":          # model loading, before the first view: one line each
            tqdm.write(f"{event.message} [{event.step}/{event.total}]", file=self._stream)
            return
        if event.stage in ("run", "view"):
            if self._bar is None:
                self._bar = tqdm(total=event.total, initial=event.step, unit="view", desc="generating",
                                 file=self._stream, dynamic_ncols=True)
            self._bar.n = event.step
            if event.message:
                self._bar.set_description_str(event.message[:60] if event.stage == "view" else "generating")
            self._bar.refresh()
            if event.stage == "run" and event.message:
                self._bar.write(f"using {event.message}", file=self._stream)
        elif self._bar is not None:
            post = {k: f"{v:.4g}" for k, v in list(event.metrics.items())[:3]}
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
