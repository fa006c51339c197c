"""Grow a finished run: `scenedreamer extend` adds a chapter of cameras to the same world.

A chapter's cameras join the run's trajectory as the next global steps (chapter 0 ends at
step L, chapter 1 holds steps L+1 ... L+M, ...) and go through the method's own progressive
loop (pipeline/generate.py ``generate_next_view`` + ``_commit``: render, warp + inpaint,
refine, aligned depth, local consistency, fit with replay of every old view). Nothing in the
support database is regenerated; the representation keeps fitting the old views (replay).
The run's outputs (scene.pt, scene.ply, transforms.json, video ...) are then rewritten over the
whole world, and the chapter is snapshotted (pipeline/chapters.py) so ``revert_run`` can bring
the run back to it byte for byte.

What changes between chapters: the path (a trajectory file in the run's world frame, or a
preset continued from the run's last camera), the chapter's prompt (written into the new
cameras' per-camera prompts; config.prompt stays, so the offline stand-in keeps reading the
same world) and the settings under ``CHANGEABLE_PREFIXES``. Everything else (resolution,
representation, seed, priors ...) makes the world what it is and is refused, named.

``--surround`` (``ChapterInputs.surround``): the path is planned by pipeline/surround.py (turns at
the first camera until the panorama from it is covered) and written to the chapter's
trajectory.json, whose sha256 the chapter record pins as its input.

The run's trajectory.json is the whole world's path (every chapter's cameras in step order):
render, eval and view read it and so see the whole world. config.json stays chapter 0's.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..geometry.trajectory import Trajectory, make_trajectory
from ..geometry.trajectory_io import read_transforms_json, write_transforms_json
from .chapters import CHAPTER_TRAJECTORY, SNAPSHOT_DIR, Chapter, ChapterBook
from .config import GenerateConfig
from .run_contract import CONFIG_NAME, MARKER_NAME, PROGRESS_NAME, TRAJECTORY_NAME, require_finished_run

log = logging.getLogger(__name__)

CHANGEABLE_PREFIXES = ("progressive.", "fit.", "export.")
"""Settings (--set KEY=VALUE) a chapter may change: how views are fitted and what is exported.
Every other setting shapes the world itself (its resolution, representation, seed, priors ...)."""


@dataclass(frozen=True)
class ChapterInputs:
    """What the user asks of one chapter.

    trajectory: a transforms.json file (cameras in the run's world frame; intrinsics rescaled to
        the run's resolution) or a preset name, continued from the run's last camera.
    frames: cameras a preset adds (None: the run's own trajectory.frames); a file's frames are
        its own (frames must then be None).
    prompt: the new cameras' prompt ("" = the run's prompt); a file's own per-frame prompts win.
    settings: --set overrides, dotted key -> value, each under CHANGEABLE_PREFIXES.
    width, height, representation, seed: options that cannot change between chapters; None,
        or equal to the run's (anything else is refused, named).
    surround: the path is planned (pipeline/surround.py: turns at the first camera until the
        panorama from it is covered); trajectory must then be "" and frames None.
    """

    trajectory: str
    frames: int | None = None
    prompt: str = ""
    settings: dict = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    representation: str | None = None
    seed: int | None = None
    surround: bool = False


# checks ----------------------------------------------------------------------------------------
def _read_events_tail(path: Path) -> dict | None:
    """The last event of an events.jsonl (None when there is none or it cannot be read)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            lines = [line for line in fh.read().splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError, IndexError):
        return None


def _generation_finished(root: Path, world_cameras: int, last_step: int) -> bool:
    """Whether the run committed every camera of its path and finished its export (its last
    event is the export's "done": a run killed during the export has every step but stale or
    missing outputs)."""
    last = _read_events_tail(root / "events.jsonl")
    exported = isinstance(last, dict) and last.get("stage") == "export" and last.get("message") == "done"
    return last_step == world_cameras - 1 and exported


def load_run_config(root: Path) -> GenerateConfig:
    """The run's config.json (chapter 0's config)."""
    from ..config_io import load_config

    return load_config(GenerateConfig, root / CONFIG_NAME)


def chapter_config(base: GenerateConfig, inputs: ChapterInputs) -> GenerateConfig:
    """The config chapter ``inputs`` runs with: the run's, with the chapter's settings. Refuses
    (UserInputError naming the option) a setting or option that cannot change between chapters."""
    from ..config_io import from_json_dict, to_json_dict

    if inputs.width is not None and (inputs.width, inputs.height) != (base.width, base.height):
        raise UserInputError(f"--resolution {inputs.width}x{inputs.height}: the run is {base.width}x{base.height}; "
                             "the resolution cannot change between chapters")
    if inputs.seed is not None and inputs.seed != base.seed:
        raise UserInputError(f"--seed {inputs.seed}: the run's seed is {base.seed}; the seed cannot change "
                             "between chapters")
    if inputs.representation is not None:
        from ..representation.registry import kind_for_cli

        kind = kind_for_cli(inputs.representation)
        if type(base.representation) is not kind.config_class:
            raise UserInputError(f"--representation {inputs.representation}: the run's representation is another "
                                 "kind; the representation cannot change between chapters")
    data = to_json_dict(base)
    for key, value in inputs.settings.items():
        if not key.startswith(CHANGEABLE_PREFIXES):
            raise UserInputError(f"--set {key}: cannot change between chapters (only settings under "
                                 f"{', '.join(p.rstrip('.') for p in CHANGEABLE_PREFIXES)} can)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                raise UserInputError(f"--set {key}: no such setting")
            node = node[part]
        if parts[-1] not in node or parts[-1] == "type":
            raise UserInputError(f"--set {key}: no such setting")
        node[parts[-1]] = value
    try:
        return from_json_dict(GenerateConfig, data, where="--set")
    except UserInputError as err:       # "--set.fit.lr_scale: ..." -> "--set fit.lr_scale: ..."
        raise UserInputError(str(err).replace("--set.", "--set ", 1)) from None
    except (ValueError, TypeError) as err:
        raise UserInputError(f"--set: {' '.join(str(err).split())}") from None


def chapter_cameras(inputs: ChapterInputs, config: GenerateConfig, world: Trajectory) -> Trajectory:
    """The cameras chapter ``inputs`` adds, in the run's world frame at its resolution.

    A file: its cameras as they are (its intrinsics rescaled to the run's resolution). A preset:
    its path of frames + 1 cameras moved rigidly so that its first camera sits on the run's last
    camera, which it would duplicate and is dropped; the intrinsics are the last camera's.
    Prompts: a file frame's own prompt, else the chapter's prompt, else None (the run's).
    """
    prompt = inputs.prompt.strip() or None
    spec = inputs.trajectory
    if spec.endswith(".json") or Path(spec).exists():
        if inputs.frames is not None:
            raise UserInputError(f"--frames: {spec} is a trajectory file; its cameras are its own "
                                 "(--frames goes with a preset)")
        traj = read_transforms_json(spec)
        cams = traj.cameras.scaled(config.width, config.height)
        return Trajectory(cams, [p if p is not None else prompt for p in traj.prompts])
    frames = config.trajectory.frames if inputs.frames is None else inputs.frames
    if frames < 1:
        raise UserInputError(f"--frames {frames}: a chapter adds at least 1 camera")
    preset = make_trajectory(spec, frames + 1, config.width, config.height, fov_deg=config.trajectory.fov_deg)
    last = world.cameras[len(world.cameras) - 1]
    # preset camera 0 is the identity: c2w_new = c2w_last @ c2w_preset keeps the relative motion
    c2w = last.c2w[0].to(preset.cameras.c2w) @ preset.cameras.c2w[1:]
    K = last.K.to(c2w).expand(frames, 3, 3).clone()
    return Trajectory(Cameras(K, c2w, config.width, config.height), [prompt] * frames)


def _join(world: Trajectory, added: Trajectory) -> Trajectory:
    cams = Cameras.cat([world.cameras.to(dtype=torch.float32), added.cameras.to(dtype=torch.float32)])
    return Trajectory(cams, list(world.prompts) + list(added.prompts))


def _input_sha256(inputs: ChapterInputs) -> dict:
    from .run_folder import file_sha256

    spec = inputs.trajectory
    if not spec:
        return {}
    if spec.endswith(".json") or Path(spec).exists():
        return {spec: file_sha256(spec)}
    return {}


def _check_run(root: Path, book: ChapterBook, resume: bool) -> tuple[list[Chapter], Any]:
    """The chapters of a run that may be extended (or resumed), and its progress."""
    from .run_folder import RunFolder

    require_finished_run(root, needs=(CONFIG_NAME, TRAJECTORY_NAME, PROGRESS_NAME, "support", MARKER_NAME),
                         open_chapter_allowed=True)
    chapters = book.load()
    progress = RunFolder(root).read_progress()
    open_chapter = chapters[-1] if chapters and not chapters[-1].finished else None
    if resume and open_chapter is None:
        raise UserInputError(f"{root}: no interrupted extension to resume "
                             "(start a new chapter without --resume)")
    if not resume and open_chapter is not None:
        raise UserInputError(f"{root}: chapter {open_chapter.number} was interrupted; continue it with "
                             f"`scenedreamer extend {root} --resume` (or drop it with --revert "
                             f"{open_chapter.number - 1})")
    if chapters and not open_chapter and progress.last_step != chapters[-1].last_step:
        raise UserInputError(f"{root}: progress.json (step {progress.last_step}) does not match the last "
                             f"chapter (step {chapters[-1].last_step}); --revert {chapters[-1].number} "
                             "restores the chapter's files")
    if not chapters:
        world = read_transforms_json(root / TRAJECTORY_NAME)
        if not _generation_finished(root, len(world.cameras), progress.last_step):
            raise UserInputError(f"{root}: the run is not finished (step {progress.last_step} of "
                                 f"{len(world.cameras) - 1}, or its export was interrupted); "
                                 "resume it first with `scenedreamer generate --resume`")
    return chapters, progress


def _check_unchanged(root: Path, book: ChapterBook, chapters: list[Chapter], progress) -> None:
    """Once the lock is held: the chapters and progress checked before it are still the run's
    (another command may have finished in between)."""
    from .run_folder import RunFolder

    if book.load_with_revert_marker() != (chapters, None) or RunFolder(root).read_progress() != progress:
        raise UserInputError(f"{root}: the run changed while this command started (another scenedreamer "
                             "process wrote it); run the command again")


# the chapter -----------------------------------------------------------------------------------
def extend_run(root: str | Path, inputs: ChapterInputs | None, resume: bool = False,
               on_event: EventSink | None = None) -> Chapter:
    """Add a chapter to the finished run ``root`` (or, with ``resume`` and no ``inputs``, finish
    the interrupted one). Returns the finished chapter's record.

    Everything is checked before anything is written (UserInputError, one line). On the first
    extension, chapter 0 (the generated run) is recorded and snapshotted first. A kill at any
    point leaves the earlier chapters and their snapshots intact; ``resume`` continues from
    the last committed step and ends with the same files as an uninterrupted extension.
    """
    from .run_folder import RunFolder

    root = Path(root)
    book = ChapterBook(root)
    if resume and inputs is not None:
        raise UserInputError("--resume continues the interrupted chapter with its own inputs; give no "
                             "--trajectory, --prompt, --frames or --set with it")
    if not resume and inputs is None:
        raise UserInputError("extend needs --trajectory PATH.json|PRESET or --surround (or --resume, --history, "
                             "--revert N)")
    if inputs is not None and inputs.surround and (inputs.trajectory or inputs.frames is not None):
        raise UserInputError("--surround plans the chapter's path itself; give no --trajectory or --frames with it")
    chapters, progress = _check_run(root, book, resume)
    base = load_run_config(root)

    if resume:
        chapter = chapters[-1]
        config = chapter_config(base, ChapterInputs(trajectory="", settings=chapter.settings))
        before = read_transforms_json(book.folder(chapter.number - 1) / SNAPSHOT_DIR / TRAJECTORY_NAME)
    else:
        config = chapter_config(base, inputs)
        before = read_transforms_json(root / TRAJECTORY_NAME)
        if inputs.surround:
            added = surround_cameras(root, inputs, config, before, on_event)
        else:
            added = chapter_cameras(inputs, config, before)

    run = RunFolder(root)
    run.lock()
    started = time.monotonic()
    try:
        _check_unchanged(root, book, chapters, progress)
        if not resume:
            if not chapters:   # chapter 0 = the run as generated: recorded before anything changes
                book.snapshot(0)
                chapters = [_chapter_zero(root, base, progress.last_step)]
                book.save(chapters)
            number = len(chapters)
            first = chapters[-1].last_step + 1
            folder = book.folder(number)
            folder.mkdir(parents=True, exist_ok=True)
            write_transforms_json(folder / CHAPTER_TRAJECTORY, added)    # before the record names it
            # a planned path's input is the file it was written to (pinned like a --trajectory file)
            pinned = _planned_sha256(root, folder) if inputs.surround else _input_sha256(inputs)
            chapter = Chapter(number=number, first_step=first, last_step=first + len(added) - 1,
                              trajectory=_described(inputs, len(added)), input_sha256=pinned,
                              prompt=inputs.prompt.strip(), settings=dict(inputs.settings))
            chapters = chapters + [chapter]
            book.save(chapters)
        else:
            run.remove_stale_temp_files()
        # the cameras as the chapter's file holds them, in both cases: a resumed chapter follows
        # exactly the cameras (to the last bit) that an uninterrupted one follows
        added = read_transforms_json(book.folder(chapter.number) / CHAPTER_TRAJECTORY)
        world = _join(before, added)
        write_transforms_json(root / TRAJECTORY_NAME, world)          # the whole world's path
        _grow(config, run, world, chapter, on_event)
        book.snapshot(chapter.number)
        chapter = replace(chapter, finished=True, seconds=round(time.monotonic() - started, 3))
        book.save(chapters[:-1] + [chapter])
    finally:
        run.release()
    return chapter


def surround_cameras(root: Path, inputs: ChapterInputs, config: GenerateConfig, world: Trajectory,
                     on_event: EventSink | None = None) -> Trajectory:
    """The cameras ``extend --surround`` adds to the run ``root``: pipeline/surround.py's plan from
    the support database's cameras, at the run's first camera centre with its intrinsics (run
    resolution). Emits one "surround" event (the camera count and the planned coverage of the
    panorama's directions). Refuses (UserInputError) a run whose panorama is already covered."""
    from ..support.database import SupportDatabase
    from .surround import plan_surround

    with SupportDatabase.open(root / "support", create=False, config=config.support) as database:
        existing = database.cameras()
    first = world.cameras[0]
    plan = plan_surround(existing, first.centers[0], first.K[0], config.width, config.height)
    if len(plan.cameras) == 0:
        raise UserInputError(f"{root}: --surround: the panorama from the first camera is already covered "
                             f"({plan.coverage_before:.1%} of its directions); nothing to add")
    emit(on_event, "surround", len(plan.cameras), len(plan.cameras),
         f"--surround: {len(plan.cameras)} cameras turning at the first camera (each at least "
         f"{min(plan.known):.0%} on what exists): panorama directions covered {plan.coverage_before:.0%} -> "
         f"{plan.coverage_after:.0%}", coverage_before=plan.coverage_before, coverage_planned=plan.coverage_after)
    prompt = inputs.prompt.strip() or None
    return Trajectory(plan.cameras, [prompt] * len(plan.cameras))


def _planned_sha256(root: Path, folder: Path) -> dict:
    """{chapter trajectory path relative to the run: sha256} of a planned (--surround) path."""
    from .run_folder import file_sha256

    path = folder / CHAPTER_TRAJECTORY
    return {path.relative_to(root).as_posix(): file_sha256(path)}


def _described(inputs: ChapterInputs, cameras: int) -> str:
    """What the chapter's path was, for --history: the file as given, the preset, or surround."""
    if inputs.surround:
        return f"surround, {cameras} camera{'s' if cameras != 1 else ''}"
    if inputs.trajectory in _input_sha256(inputs):
        return inputs.trajectory
    return f"preset {inputs.trajectory}, {cameras} camera{'s' if cameras != 1 else ''}"


def _chapter_zero(root: Path, config: GenerateConfig, last_step: int) -> Chapter:
    """The record of the run as `generate` made it (its inputs' sha256 from the run marker)."""
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
        pinned = dict(marker.get("input_sha256") or {}) if isinstance(marker, dict) else {}
    except (OSError, ValueError):
        pinned = {}
    spec = config.trajectory
    described = spec.file or f"preset {spec.preset}, {last_step + 1} cameras"
    return Chapter(number=0, first_step=0, last_step=last_step, trajectory=described, input_sha256=pinned,
                   prompt=config.prompt, finished=True)


def _grow(config: GenerateConfig, run, world: Trajectory, chapter: Chapter, on_event: EventSink | None) -> None:
    """The progressive loop over the chapter's steps (from the last committed one), then the
    outputs over the whole world. The events log is closed before returning (the snapshot that
    follows must hold its final bytes)."""
    import sqlite3

    from ..errors import RunFailedError, is_disk_full
    from ..support.database import DB_FILE, SupportDatabase
    from .event_log import JsonlEventLog, fan_out
    from .generate import _commit, _restore, generate_next_view, whole_world
    from .outputs import export_outputs
    from .plan import work_units
    from .priors_factory import build_priors

    priors = build_priors(config, on_event)
    progress = run.read_progress()
    events = JsonlEventLog(run.events_path)
    sink = fan_out(events, on_event)
    try:
        database = SupportDatabase.open(run.support_dir, config=config.support)
        try:
            database.truncate_after_step(progress.last_step)   # views of an uncommitted step go
            state = _restore(run, progress, priors, priors.device)
            total = len(world.cameras)
            work = work_units(config, total)
            emit(sink, "run", progress.last_step, total,
                 f"chapter {chapter.number}: " + "; ".join(f"{r}: {label}" for r, label in priors.describe().items()),
                 threads=torch.get_num_threads(), work_init=work.init, work_view=work.view, work_export=work.export)
            if progress.last_step + 1 == chapter.first_step:
                _warn_if_the_path_starts_in_nothing(state, world, chapter)
            for step in range(progress.last_step + 1, chapter.last_step + 1):
                generate_next_view(config, step, world, database, state, priors, sink)
                _commit(run, step, database, state, priors)
                emit(sink, "view", step + 1, total, f"view {step} added (chapter {chapter.number})")
            export_outputs(config, run, world, database, whole_world(state), priors, sink)
        finally:
            database.close()
    except sqlite3.Error as err:
        db = run.support_dir / DB_FILE
        what = "disk full while writing" if is_disk_full(err) else f"database error ({err}) in"
        raise RunFailedError(f"{what} {db}; the chapters before this one are kept, resume this one with "
                             "`scenedreamer extend RUN --resume`") from None
    finally:
        events.close()


def _warn_if_the_path_starts_in_nothing(state, world: Trajectory, chapter: Chapter) -> None:
    """Log a warning when the chapter's first camera sees mostly nothing of the world: its view
    is then generated whole, with depth that nothing anchors to the world (docs/usage/extend.md).
    ``state``: generate.RunState (of a long world, only what the camera can see is read back)."""
    from .active_set import camera_region
    from .coverage import WARN_EMPTY_FRACTION, predicted_empty_fraction
    from .generate import whole_world

    first = world.cameras[chapter.first_step:chapter.first_step + 1]
    empty = predicted_empty_fraction(whole_world(state, camera_region(first)), first)
    if empty >= WARN_EMPTY_FRACTION:
        log.warning("chapter %d starts where the world shows nothing yet (%.0f%% of its first camera's view is "
                    "empty): that view is generated whole and its depth is not aligned to the world; start the "
                    "path where the run has been (docs/usage/extend.md)", chapter.number, 100 * empty)


# history and revert ----------------------------------------------------------------------------
def history(root: str | Path) -> list[Chapter]:
    """The chapters of the run ``root`` (chapter 0 alone, unrecorded, when never extended)."""
    root = require_finished_run(root, needs=(CONFIG_NAME, PROGRESS_NAME), open_chapter_allowed=True)
    chapters = ChapterBook(root).load()
    if chapters:
        return chapters
    from .run_folder import RunFolder

    return [_chapter_zero(root, load_run_config(root), RunFolder(root).read_progress().last_step)]


def format_history(chapters: list[Chapter]) -> str:
    """One line per chapter: number, steps, seconds, state, trajectory, prompt."""
    lines = ["chapter  steps      seconds  state        trajectory / prompt"]
    for c in chapters:
        seconds = "-" if c.seconds is None else f"{c.seconds:.1f}"
        state = "finished" if c.finished else "interrupted"
        prompt = f"  \"{c.prompt}\"" if c.prompt else ""
        settings = "  " + " ".join(f"{k}={json.dumps(v)}" for k, v in c.settings.items()) if c.settings else ""
        lines.append(f"{c.number:>7}  {c.first_step:>4}-{c.last_step:<4} {seconds:>8}  {state:<11}  "
                     f"{c.trajectory}{prompt}{settings}")
    return "\n".join(lines)


def revert_run(root: str | Path, number: int) -> Chapter:
    """Return the run ``root`` to the end of chapter ``number``: every run file restored from
    its snapshot (byte-identical), later chapters dropped. Crash-safe: the intent is recorded
    first (chapters.json "reverting_to") and a repeated call finishes an interrupted revert."""
    from .run_folder import RunFolder

    root = require_finished_run(root, needs=(CONFIG_NAME,), open_chapter_allowed=True)
    book = ChapterBook(root)
    chapters, pending = book.load_with_revert_marker()
    if pending is not None and pending != number:
        raise UserInputError(f"{book.path}: a revert to chapter {pending} was interrupted; finish it first with "
                             f"`scenedreamer extend {root} --revert {pending}`")
    finished = [c.number for c in chapters if c.finished]
    if number not in finished:
        known = f"chapters {finished[0]}..{finished[-1]}" if finished else "no chapters (never extended)"
        raise UserInputError(f"--revert {number}: {root} has no finished chapter {number} ({known})")
    if not (book.folder(number) / SNAPSHOT_DIR).is_dir():
        raise UserInputError(f"{book.folder(number) / SNAPSHOT_DIR}: the snapshot of chapter {number} is missing; "
                             "cannot revert to it")
    run = RunFolder(root)
    run.lock()
    try:
        if book.load_with_revert_marker() != (chapters, pending):
            raise UserInputError(f"{root}: the run changed while this command started (another scenedreamer "
                                 "process wrote it); run the command again")
        book.save(chapters, reverting_to=number)
        run.remove_stale_temp_files()       # what a killed chapter left is no file of chapter N's
        book.restore(number)
        book.drop_after(number)
        book.save(chapters[:number + 1])
    finally:
        run.release()
    return chapters[number]

