"""Chapters of a grown world: the record of every extension of a run, and their snapshots.

    RUN/chapters.json                 the chapter records (written atomically; see ``Chapter``)
    RUN/chapters/NNN/trajectory.json  the cameras chapter NNN added (world frame, run resolution)
    RUN/chapters/NNN/snapshot/        the run's own files as they were when chapter NNN ended

Chapter 0 is the run as `generate` made it; its snapshot is taken when the run is first
extended, before anything changes. Chapter k >= 1 is one `scenedreamer extend`; it gets its
snapshot when it ends, after its outputs are written. Reverting to chapter N restores every run
file from N's snapshot (so the outputs are byte-identical to what they were) and forgets the
later chapters.

Snapshot files are hard links where the program never rewrites a file in place (support view
files and step checkpoints are written once, under a new name or by rename) and copies where it
does (the SQLite database, events.jsonl) or might (everything else), so a later chapter can never
change a snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import atomic_write_json, is_temp_file
from ..errors import UserInputError
from .run_contract import CHAPTERS_DIR, CHAPTERS_NAME, LOCK_NAME, RUN_FILES, RUN_FOLDERS

SNAPSHOT_DIR = "snapshot"
CHAPTER_TRAJECTORY = "trajectory.json"
LINKED_FOLDERS = ("support/views", "checkpoints")
"""Run sub-folders whose files are written once (never in place): snapshots hard-link them."""


@dataclass(frozen=True)
class Chapter:
    """One chapter of a run.

    number: 0 for the generated run, k for the k-th extension.
    first_step, last_step: the pipeline steps (trajectory cameras of the whole world, counted
        from the first camera of chapter 0) this chapter generated; chapter 0 includes step 0,
        the scene context initialisation.
    trajectory: what the user gave: a trajectory file path, or "preset NAME[, N cameras]".
    input_sha256: sha256 of every file the chapter read (its trajectory file), by path.
    prompt: the chapter's --prompt ("" = the run's prompt); chapter 0: the run's prompt.
    settings: the chapter's --set overrides, dotted key -> value.
    seconds: wall time of the call that finished the chapter (a resumed chapter: its last call
        only; None for chapter 0, which `generate` made).
    finished: its outputs and snapshot are written.
    """

    number: int
    first_step: int
    last_step: int
    trajectory: str
    input_sha256: dict = field(default_factory=dict)
    prompt: str = ""
    settings: dict = field(default_factory=dict)
    seconds: float | None = None
    finished: bool = False


class ChapterBook:
    """The chapters of the run in ``root`` (``chapters.json`` and ``chapters/``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def path(self) -> Path:
        return self.root / CHAPTERS_NAME

    def folder(self, number: int) -> Path:
        return self.root / CHAPTERS_DIR / f"{number:03d}"

    def exists(self) -> bool:
        return self.path.is_file()

    # records ----------------------------------------------------------------------------------
    def load(self) -> list[Chapter]:
        """The chapter records (empty when the run was never extended). UserInputError for a
        corrupt file or an interrupted revert (which must be finished first)."""
        chapters, reverting_to = self.load_with_revert_marker()
        if reverting_to is not None:
            raise UserInputError(f"{self.path}: a revert to chapter {reverting_to} was interrupted; "
                                 f"run `scenedreamer extend {self.root} --revert {reverting_to}` again")
        return chapters

    def load_with_revert_marker(self) -> tuple[list[Chapter], int | None]:
        """(the chapter records, the chapter an interrupted revert was going to, or None)."""
        if not self.exists():
            return [], None
        try:
            data = json.loads(self.path.read_text())
            reverting_to = data.get("reverting_to")
            if reverting_to is not None and not isinstance(reverting_to, int):
                raise ValueError("reverting_to")
            chapters = [Chapter(**item) for item in data["chapters"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise UserInputError(f"{self.path}: corrupt chapter record") from None
        if [c.number for c in chapters] != list(range(len(chapters))):
            raise UserInputError(f"{self.path}: corrupt chapter record (chapters are not numbered 0, 1, ...)")
        return chapters, reverting_to

    def save(self, chapters: list[Chapter], reverting_to: int | None = None) -> None:
        """Write the records atomically (same bytes for the same records)."""
        data: dict = {"chapters": [asdict(c) for c in chapters]}
        if reverting_to is not None:
            data["reverting_to"] = reverting_to
        atomic_write_json(self.path, data)

    # snapshots --------------------------------------------------------------------------------
    def snapshot(self, number: int) -> Path:
        """Record the run's own files as chapter ``number``'s end state (replacing an unfinished
        snapshot of that chapter). The support database must be closed (its WAL checkpointed)."""
        target = self.folder(number) / SNAPSHOT_DIR
        partial = target.with_name(SNAPSHOT_DIR + ".partial")
        for stale in (partial, target):
            if stale.exists():
                shutil.rmtree(stale)
        for rel in run_file_paths(self.root):
            dest = partial / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(self.root / rel, dest, linked=any(rel.parent == Path(f) for f in LINKED_FOLDERS))
        partial.mkdir(parents=True, exist_ok=True)      # a run with no files still gets a snapshot
        os.replace(partial, target)
        return target

    def restore(self, number: int) -> None:
        """Make the run's own files exactly those of chapter ``number``'s snapshot: each file is
        replaced atomically, files of later chapters are removed."""
        source = self.folder(number) / SNAPSHOT_DIR
        if not source.is_dir():
            raise UserInputError(f"{source}: the snapshot of chapter {number} is missing; cannot revert to it")
        wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
        for rel in sorted(wanted):
            dest = self.root / rel
            if dest.is_file() and os.path.samefile(source / rel, dest):
                # already this chapter's file (a hard link kept since the snapshot); renaming a
                # second link onto it would be a no-op that leaves the temporary name behind
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            temp = dest.with_name(f".{dest.name}.revert-tmp")
            temp.unlink(missing_ok=True)
            _link_or_copy(source / rel, temp, linked=any(rel.parent == Path(f) for f in LINKED_FOLDERS))
            os.replace(temp, dest)
        for rel in run_file_paths(self.root, include_database_side_files=True):
            if rel not in wanted:
                (self.root / rel).unlink()

    def drop_after(self, number: int) -> None:
        """Remove the folders of chapters after ``number``."""
        base = self.root / CHAPTERS_DIR
        if not base.is_dir():
            return
        for entry in sorted(base.iterdir()):
            if entry.is_dir() and entry.name.isdigit() and int(entry.name) > number:
                shutil.rmtree(entry)


def _link_or_copy(source: Path, dest: Path, linked: bool) -> None:
    """A hard link of ``source`` at ``dest`` when ``linked`` and the file system allows one (no
    bytes copied), else a copy."""
    if linked:
        try:
            os.link(source, dest)
            return
        except OSError:
            pass   # a file system without hard links: a copy is as good, only larger
    shutil.copyfile(source, dest)


def run_file_paths(root: Path, include_database_side_files: bool = False) -> list[Path]:
    """Relative paths of the files the program wrote in a run folder (run_contract.RUN_FILES and
    RUN_FOLDERS, without the lock, temp files, the chapter records and, unless asked, SQLite's
    -wal/-shm side files, which a closed database does not need)."""
    found = []
    for name in RUN_FILES:
        if name not in (LOCK_NAME, CHAPTERS_NAME) and (root / name).is_file() and not (root / name).is_symlink():
            found.append(Path(name))
    for sub, pattern in RUN_FOLDERS.items():
        folder = root / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False) or is_temp_file(entry.name) or not pattern.match(entry.name):
                continue
            side_file = entry.name.endswith(("-wal", "-shm", "-journal"))
            if entry.name == "lock" or (side_file and not include_database_side_files):
                continue
            found.append(Path(sub) / entry.name)
    return found
