"""One generation run into a run folder, as a library call: what `scenedreamer generate` and
`scenedreamer batch` both use (prepare or resume the folder, build the priors, run the method,
log events)."""

from __future__ import annotations

from pathlib import Path

from ..events import EventSink
from .config import GenerateConfig


def run_generation(config: GenerateConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                   on_event: EventSink | None = None) -> Path:
    """Generate (or, with ``resume``, continue) the scene of ``config`` into the run folder ``out``.

    ``overwrite`` replaces a finished or abandoned run that this program wrote there; the two
    flags exclude each other. Progress goes to ``on_event`` and to ``out/events.jsonl``.
    Returns the run folder. Raises UserInputError for bad input (nothing is created then).
    """
    from ..errors import UserInputError
    from .event_log import JsonlEventLog, fan_out
    from .generate import generate_scene
    from .priors_factory import build_priors
    from .run_folder import RunFolder

    if resume and overwrite:
        raise UserInputError("--resume and --overwrite exclude each other")
    run_folder = RunFolder(out)
    progress = run_folder.prepare(config, resume=resume, overwrite=overwrite)
    events = JsonlEventLog(run_folder.events_path)
    try:
        priors = build_priors(config)
        return generate_scene(config, run_folder, priors, progress, on_event=fan_out(events, on_event))
    finally:
        events.close()
