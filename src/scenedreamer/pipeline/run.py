"""One generation run into a run folder, as a library call: what `scenedreamer generate` and
`scenedreamer batch` both use (validate, prepare or resume the folder, build the priors, run the
method, log events)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..events import EventSink
from .config import GenerateConfig


def check_inputs(config: GenerateConfig):
    """The checks of a run's inputs that need no run folder, as `generate` runs them before
    anything exists, and as `batch` runs them on every line before its manifest exists (one
    function, so the two can never differ). The config's own fields were checked when it was
    built (GenerateConfig: every setting against pipeline/config_bounds.py).

    Checks that the dtype can run on the device (fp16 on the CPU is refused), that the trajectory
    file or preset gives at least 2 cameras at the run's resolution, and that a start photo can
    be read and fits the resolution, and that every model's weights are local (all missing ones
    named at once, with the command that fetches them). Returns (the config with its dtype resolved, as config.json
    records it; the trajectory). Raises UserInputError naming the setting or file.
    """
    from ..errors import MissingWeightsError
    from .plan import missing_models, missing_models_message
    from .priors_factory import with_resolved_dtype
    from .scene_cameras import load_trajectory

    config = with_resolved_dtype(config)                    # the dtype that runs is the one config.json says
    missing = missing_models(config)                        # every missing model at once, nothing written
    if missing:
        raise MissingWeightsError(missing_models_message(config, missing))
    trajectory = load_trajectory(config)                    # the trajectory file / preset is valid
    fv = config.first_view
    if fv.image:                                            # the photo exists, is an image, is big enough
        from ..priors.photo import fit_plan_for, read_photo_size

        fit_plan_for(*read_photo_size(fv.image), config.width, config.height, fv.max_upscale, fv.image)
    return config, trajectory


def run_generation(config: GenerateConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                   on_event: EventSink | None = None) -> Path:
    """Generate (or, with ``resume``, continue) the scene of ``config`` into the run folder ``out``.

    ``overwrite`` replaces a run that this program wrote there (only the files it wrote); the
    two flags exclude each other. Progress goes to ``on_event`` and to ``out/events.jsonl``.
    Returns the run folder. Raises UserInputError for bad input: the config, trajectory and
    folder are checked and the priors built before anything is written, and a new run that is
    refused before its first step is rolled back (no stub is left). Filesystem and SQLite
    failures become RunFailedError naming the file; committed steps are kept.
    """
    from ..errors import RunFailedError, UserInputError, is_disk_full
    from ..support.database import DB_FILE, SupportDatabase
    from .disk_budget import check_disk_space
    from .event_log import JsonlEventLog, fan_out
    from .generate import generate_scene
    from .priors_factory import build_priors
    from .run_folder import RunFolder

    run_folder = RunFolder(out)
    run_folder.check(resume=resume, overwrite=overwrite)   # refusals first: nothing written yet
    if resume:
        config = run_folder.for_resume(config)     # "auto" dtype and fields newer than the run: as it was made
    config, trajectory = check_inputs(config)
    check_disk_space(config, out, resume=resume, overwrite=overwrite,   # a new run must fit on the disk
                     cameras=len(trajectory.cameras))
    priors = build_priors(config, on_event)                 # names and weights exist (loading reported)
    reading = priors.prompt_reading()                       # the offline stand-in's reading of the prompt
    progress = run_folder.prepare(config, resume=resume, overwrite=overwrite,
                                  notes=None if reading is None else {"prompt_reading": reading})
    try:
        if progress.last_step >= 0:
            # every view of a committed step must be intact, or the resumed scene would differ
            SupportDatabase.open(run_folder.support_dir, create=False, config=config.support,
                                 committed_step=progress.last_step).close()
        events = JsonlEventLog(run_folder.events_path)
        try:
            return generate_scene(config, run_folder, priors, progress, on_event=fan_out(events, on_event))
        finally:
            events.close()
    except UserInputError:
        if not resume and run_folder.read_progress().last_step < 0:
            run_folder.roll_back()
        raise
    except sqlite3.Error as err:
        db = run_folder.support_dir / DB_FILE
        what = "disk full while writing" if is_disk_full(err) else f"database error ({err}) in"
        raise RunFailedError(f"{what} {db}; every committed step is kept") from None
    finally:
        run_folder.release()
