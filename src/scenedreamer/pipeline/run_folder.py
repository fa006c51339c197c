"""The run folder: what a generation run writes, and the commit record that makes it resumable.

    RUN/config.json            resolved GenerateConfig (plain JSON, loadable back)
    RUN/trajectory.json        the camera path used (nerfstudio transforms.json layout)
    RUN/events.jsonl           progress events, one JSON object a line
    RUN/progress.json          commit record: last completed step + its checkpoint (written last)
    RUN/support/               the support database (SQLite + arrays)
    RUN/checkpoints/step_NNNN.pt   representation + fitting state (+ refiner adapter and its optimiser) after each completed step
    RUN/adapter.safetensors    refinement adapter weights (diffusion refiner only)
    RUN/scene.pt               final representation checkpoint
    RUN/scene.ply              standard 3DGS splats
    RUN/scene.json             which representation produced scene.ply and how
    RUN/licenses.json          licence, id, revision and weight sha256 of every model the run loads
    RUN/video.mp4              render along the trajectory
    RUN/transforms.json, images/, depths/, points3D.ply   the support views as a nerfstudio dataset

    RUN/.scenedreamer-run.json marker: this folder is a run written by scenedreamer (program,
                               version, sha256 of the trajectory file, photo and depth map); --overwrite and --resume need it
    RUN/.scenedreamer-run.lock held (flock) by the one process writing the run
    RUN/chapters.json, RUN/chapters/NNN/   written by `scenedreamer extend` (pipeline/chapters.py)

--overwrite removes only the names above (inside support/, checkpoints/, images/, depths/ and
masks/ only files of the names the program writes there; other files stay, and so does a folder
that still holds them). Symbolic links are unlinked, never followed.

A step is complete when progress.json names it; everything a step writes before that is either
ignored (checkpoint files of later steps) or rolled back on resume (support views of later steps).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import atomic_write_json, is_temp_file, temp_name_pattern
from ..config_io import (MAX_CONFIG_BYTES, config_diff, load_config, read_json_file, save_config,
                         with_moved_defaults, with_unrecorded_fields)
from ..errors import RunLockedError, UserInputError
from .config import GenerateConfig
from .prior_kinds import run_licenses
# the names are the run-folder contract's (what a run is and which names are its own); re-exported
from .run_contract import (CHAPTERS_DIR, CHAPTERS_NAME, CONFIG_NAME, LOCK_NAME, MARKER_NAME, PROGRESS_NAME, RUN_FILES,
                           RUN_FOLDERS, is_run)

__all__ = ["CONFIG_NAME", "LOCK_NAME", "MARKER_NAME", "PROGRESS_NAME", "RUN_FILES", "RUN_FOLDERS",
           "RunFolder", "Progress", "file_sha256"]

KEEP_CHECKPOINTS = 2
RESUME_MAY_CHANGE = ("export.",)
"""Settings a resumed run may take from the new command: the exports are made from the finished
steps at the end and change no committed step (a run of an earlier release, whose video default
was shorter, resumes with today's defaults)."""

log = logging.getLogger(__name__)


def _input_files(config: GenerateConfig) -> list[tuple[str, str]]:
    """(what, path) of every file a run reads besides its own folder."""
    named = [("trajectory file", config.trajectory.file), ("photo", config.first_view.image),
             ("depth map", config.first_view.depth)]
    return [(what, path) for what, path in named if path]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Progress:
    """last_step: the last completed pipeline step (-1: none; 0: initialisation; k: trajectory
    camera k). checkpoint: file name (under checkpoints/) of the state after that step."""

    last_step: int = -1
    checkpoint: str = ""


class RunFolder:
    """Paths and commit records of one run folder."""

    def __init__(self, root: str | Path):
        if str(root).strip() == "":
            raise UserInputError("--out is empty: name the run folder to write, e.g. --out runs/forest")
        self.root = Path(root)
        self._lock_fd: int | None = None
        self.created: bool = False
        """Whether ``prepare`` created the folder itself (so a rollback may remove it)."""
        self.kept_from_run: list[str] = []
        """"key=value" of the settings ``for_resume`` took from the run (with_moved_defaults);
        ``prepare`` names them once it has accepted the resume."""

    # paths -----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def marker_path(self) -> Path:
        return self.root / MARKER_NAME

    @property
    def support_dir(self) -> Path:
        return self.root / "support"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def adapter_path(self) -> Path:
        return self.root / "adapter.safetensors"

    def holds_run(self) -> bool:
        """Whether the folder carries the marker of a run written by this program."""
        return is_run(self.root)

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse (UserInputError) what ``prepare`` would refuse, without writing anything."""
        if resume and overwrite:
            raise UserInputError("--resume and --overwrite exclude each other")
        if self.root.exists() and not self.root.is_dir():
            raise UserInputError(f"{self.root}: output path exists and is not a folder")
        if not self.root.is_dir():
            if resume:
                raise UserInputError(f"{self.root}: nothing to resume (the folder does not exist)")
            return
        if self.holds_run():
            if not resume and not overwrite:
                raise UserInputError(f"{self.root}: folder already holds a run "
                                     "(use --resume to continue it or --overwrite to replace it)")
            if resume and (self.root / CHAPTERS_NAME).exists():
                # its trajectory.json and steps are the grown world's now, not the config's path
                raise UserInputError(f"{self.root}: this run was grown with `scenedreamer extend` ({CHAPTERS_NAME}); "
                                     f"continue it with `scenedreamer extend {self.root} --resume`")
            return
        if resume or overwrite or any(self.root.iterdir()):
            raise UserInputError(f"{self.root}: not a run folder written by scenedreamer (no {MARKER_NAME}); "
                                 "refusing to " + ("resume" if resume else "write into") +
                                 " it: choose an empty or new folder")

    def for_resume(self, config: GenerateConfig) -> GenerateConfig:
        """For a resume: ``config`` as the run was made where the command line cannot say it.

        - A ``priors.dtype`` left to "auto" becomes the dtype the run was made with (its
          config.json): "auto" resolves per machine (bf16 on a CPU that has it), and a run resumed
          on another machine keeps computing in its own dtype; an explicit dtype is compared as
          given.
        - A field the run's config.json does not record (added to the program after the run was
          made) keeps its class default whatever today's preset says
          (config_io.with_unrecorded_fields), so the resume is not refused for a setting the run
          could not record; export settings, which a resume may change, are the command line's.
        - A field that the command leaves at its class default while the run recorded another
          value (the default moved after the run was made, or the run set it) keeps the run's
          value (config_io.with_moved_defaults; logged): the run continues as it was made
          instead of being refused for a change nobody asked for.

        Unchanged when config.json cannot be read (``prepare`` says why)."""
        if not self.config_path.is_file():
            return config
        try:
            saved = load_config(GenerateConfig, self.config_path)
            recorded = read_json_file(self.config_path, what="config file", max_bytes=MAX_CONFIG_BYTES)
        except UserInputError:
            return config
        kept = with_unrecorded_fields(config, saved, recorded)
        if kept.priors.dtype == "auto":
            kept = replace(kept, priors=replace(kept.priors, dtype=saved.priors.dtype))
        kept, moved = with_moved_defaults(kept, saved)
        # what may change on any resume (RESUME_MAY_CHANGE: top-level sections) is the command line's
        config = replace(kept, **{p.rstrip("."): getattr(config, p.rstrip(".")) for p in RESUME_MAY_CHANGE})
        self.kept_from_run = [f"{key}={_dotted(saved, key)!r}" for key in moved
                              if not key.startswith(RESUME_MAY_CHANGE)]
        return config

    # lifecycle -------------------------------------------------------------
    def prepare(self, config: GenerateConfig, resume: bool, overwrite: bool, notes: dict | None = None) -> Progress:
        """Create, resume or overwrite the folder (holding its lock until ``release``). Returns
        the progress to continue from. ``notes`` (config_io.RECORD_KEYS, e.g. the prompt's
        offline reading) are written into a new run's config.json beside the config.

        Refuses (UserInputError) an existing non-empty folder that is not a run, a run unless
        resume or overwrite, a run another process is writing, a resume whose saved config
        differs from ``config`` (naming the differences) or whose trajectory file changed.
        """
        self.check(resume, overwrite)
        if not self.root.exists():
            try:
                self.root.mkdir(parents=True)
            except OSError as err:
                raise UserInputError(f"{self.root}: cannot create the output folder ({err.strerror})") from None
            self.created = True
        self._lock()
        try:
            if resume:
                saved = load_config(GenerateConfig, self.config_path)
                diff = config_diff(saved, config)
                fixed = [d for d in diff if not d.startswith(RESUME_MAY_CHANGE)]
                if fixed:
                    shown = "; ".join(fixed[:4]) + (" ..." if len(fixed) > 4 else "")
                    raise UserInputError(f"{self.root}: cannot resume a run made with another config ({shown})")
                self._check_inputs(config)
                if self.kept_from_run:
                    log.warning("%s: resuming with the run's own values of settings this command leaves at "
                                "their default: %s", self.root, ", ".join(self.kept_from_run))
                if diff:                            # only export settings changed: record the new ones
                    save_config(self.config_path, config, self._record_notes())
                self.remove_stale_temp_files()
                return self.read_progress()
            if overwrite:
                self.remove_run_files()
            atomic_write_json(self.marker_path, self._marker(config))
            save_config(self.config_path, config, notes)
            atomic_write_json(self.root / "licenses.json", run_licenses(config))   # issue 24 item 5
        except BaseException:
            self.release()
            raise
        return Progress()

    def _record_notes(self) -> dict:
        """The record keys (config_io.RECORD_KEYS) of the saved config.json, to keep them."""
        from ..config_io import RECORD_KEYS

        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if k in RECORD_KEYS} if isinstance(data, dict) else {}

    def _marker(self, config: GenerateConfig) -> dict:
        from .. import __version__

        return {"program": "scenedreamer", "version": __version__,
                # the config names these files by path only: their bytes are pinned here
                "input_sha256": {path: file_sha256(path) for _, path in _input_files(config)}}

    def _check_inputs(self, config: GenerateConfig) -> None:
        """UserInputError when a file the run reads (trajectory, photo, depth map) changed since
        the run started: a resumed scene would mix two inputs."""
        inputs = _input_files(config)
        if not inputs:
            return  # presets only: the config (compared by the caller) determines everything
        try:
            marker = json.loads(self.marker_path.read_text())
            saved = dict(marker.get("input_sha256") or {})
            if marker.get("trajectory_sha256") is not None:      # runs made before input_sha256
                saved.setdefault(marker.get("trajectory_file"), marker["trajectory_sha256"])
        except (OSError, ValueError, AttributeError, TypeError):
            raise UserInputError(f"{self.marker_path}: corrupt run marker") from None
        for what, path in inputs:
            if path not in saved:
                continue
            try:
                now = file_sha256(path)
            except OSError as err:
                raise UserInputError(f"{path}: cannot read the {what} of this run ({err.strerror}); "
                                     "cannot resume (restore it, or start a new run)") from None
            if now != saved[path]:
                raise UserInputError(f"{path}: the {what} changed since the run started; "
                                     "cannot resume (restore it, or start a new run)")

    def _lock(self) -> None:
        try:
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise UserInputError(f"{self.root}: cannot write here ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # a run of an older layout holds only the support database's lock
            legacy = self.support_dir / "lock"
            if legacy.is_file() and not legacy.is_symlink():
                probe = os.open(legacy, os.O_RDWR)
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                finally:
                    os.close(probe)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{self.root}: another scenedreamer process is writing this run; "
                                 "wait for it or stop it first") from None
        self._lock_fd = fd

    def lock(self) -> None:
        """Hold the run's lock (as ``prepare`` does) for a writer of an existing run, e.g.
        `extend`; RunLockedError when another process holds it. ``release`` lets it go."""
        self._lock()

    def release(self) -> None:
        """Release the run's lock (idempotent)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove_run_files(self) -> None:
        """Remove what a run writes (RUN_FILES, RUN_FOLDERS' files, their temp files); nothing
        else. Links are unlinked, never followed; a folder keeps what the program did not write."""
        for name in RUN_FILES:
            _unlink(self.root / name)
        self.remove_stale_temp_files()
        for sub in sorted(RUN_FOLDERS, key=len, reverse=True):   # support/views before support
            folder = self.root / sub
            if folder.is_symlink():
                folder.unlink()
                continue
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if (RUN_FOLDERS[sub].match(entry.name) or is_temp_file(entry.name)) and \
                        (entry.is_symlink() or entry.is_file(follow_symlinks=False)):
                    os.unlink(entry.path)
            try:
                folder.rmdir()
            except OSError:
                pass   # still holds files the program did not write: they stay
        self._remove_chapters()

    def _remove_chapters(self) -> None:
        """Remove chapters/NNN/ (each one wholly the program's: `extend` writes it) and then
        chapters/ when nothing else is in it."""
        folder = self.root / CHAPTERS_DIR
        if folder.is_symlink():
            folder.unlink()
            return
        if not folder.is_dir():
            return
        for entry in os.scandir(folder):
            if re.fullmatch(r"\d{3}", entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            elif re.fullmatch(r"\d{3}", entry.name) and entry.is_symlink():
                os.unlink(entry.path)
        try:
            folder.rmdir()
        except OSError:
            pass   # holds something the program did not write

    def remove_stale_temp_files(self) -> None:
        """Delete temp files a killed writer left beside the run's own top-level files, and any
        temp file inside the run's sub-folders (support/views is the database's own business)."""
        patterns = [temp_name_pattern(name) for name in RUN_FILES]
        for entry in os.scandir(self.root):
            if entry.is_file(follow_symlinks=False) and any(p.match(entry.name) for p in patterns):
                os.unlink(entry.path)
        for sub in ("checkpoints", "images", "depths", "masks"):
            folder = self.root / sub
            if folder.is_dir() and not folder.is_symlink():
                for entry in os.scandir(folder):
                    if entry.is_file(follow_symlinks=False) and is_temp_file(entry.name):
                        os.unlink(entry.path)

    def roll_back(self) -> None:
        """Undo a new run that never committed a step: remove what it wrote (and the folder
        when ``prepare`` created it and nothing else is in it)."""
        self.remove_run_files()
        self.release()
        _unlink(self.root / LOCK_NAME)
        if self.created:
            try:
                self.root.rmdir()
            except OSError:
                pass

    def read_progress(self) -> Progress:
        path = self.root / PROGRESS_NAME
        if not path.exists():
            return Progress()
        try:
            data = json.loads(path.read_text())
            return Progress(last_step=int(data["last_step"]), checkpoint=str(data["checkpoint"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserInputError(f"{path}: corrupt progress record") from None

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:04d}.pt"

    def commit_step(self, step: int) -> None:
        """Record ``step`` as completed (its checkpoint must already be written) and prune old
        checkpoints. This single atomic write is what makes the step durable."""
        atomic_write_json(self.root / PROGRESS_NAME,
                          {"last_step": step, "checkpoint": self.checkpoint_path(step).name})
        for old in sorted(self.checkpoints_dir.glob("step_*.pt"))[:-KEEP_CHECKPOINTS]:
            if old.name != self.checkpoint_path(step).name:
                old.unlink(missing_ok=True)


def _unlink(path: Path) -> None:
    """Remove a file or a link (the link itself); leave a real folder of that name alone."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)


def _dotted(config, key: str):
    """The value at the dotted ``key`` of a (nested) config dataclass."""
    for part in key.split("."):
        config = getattr(config, part)
    return config
