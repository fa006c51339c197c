"""The event stream of a run: events.jsonl, one JSON object a line, for other front ends."""

from __future__ import annotations

import json
from pathlib import Path

from ..events import EventSink, ProgressEvent


class JsonlEventLog:
    """An EventSink appending each event to a JSON-lines file (flushed per line, so a front end
    tailing the file sees progress live and a killed run keeps every event written so far)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def __call__(self, event: ProgressEvent) -> None:
        self._fh.write(json.dumps(event.to_json_dict()) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def fan_out(*sinks: EventSink | None) -> EventSink:
    """One sink that forwards each event to every given sink."""
    live = [s for s in sinks if s is not None]

    def sink(event: ProgressEvent) -> None:
        for s in live:
            s(event)

    return sink
