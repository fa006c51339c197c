"""Progress events: how long-running algorithms report progress without importing any UI.

An algorithm takes ``on_event: EventSink | None`` and calls ``emit(on_event, ...)``. Front ends
(the CLI's progress bar, the ``events.jsonl`` writer) are sinks; they live in cli.py / pipeline.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    stage: short machine name of the stage ("fit", "init", "view", "export", ...).
    step, total: progress within the stage (total may be 0 when unknown).
    message: human text; metrics: numbers worth logging (loss, psnr, ...).
    time: UNIX seconds when the event was made.
    """

    stage: str
    step: int = 0
    total: int = 0
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


EventSink = Callable[[ProgressEvent], None]


def emit(sink: EventSink | None, stage: str, step: int = 0, total: int = 0, message: str = "",
         **metrics: float) -> None:
    """Send a ProgressEvent to ``sink`` if there is one (no-op otherwise)."""
    if sink is not None:
        sink(ProgressEvent(stage=stage, step=step, total=total, message=message,
                           metrics={k: float(v) for k, v in metrics.items()}))
