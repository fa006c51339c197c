"""The run-folder contract: what a run is, what a finished run holds, and which names are its own.

Every command that reads a run (render, export, eval, view, batch) asks this module, and every
command that writes an output asks it whether that output would land on a run's own file:

- A folder IS A RUN when it holds the run marker ``.scenedreamer-run.json`` written by
  ``scenedreamer generate`` (a JSON object with "program": "scenedreamer"). A folder with some
  other program's config.json is "not a run", never "a run still in progress".
- A run is FINISHED when it committed a step (progress.json) and no process holds its lock
  (``.scenedreamer-run.lock``, or the older layout's ``support/lock``).
- A run's OWN NAMES are the top-level files ``RUN_FILES``, the folders ``RUN_FOLDERS`` and
  ``CHAPTERS_DIR`` (and anything under them), the lock and the temp files of these. No command other than
  ``generate`` and ``extend`` replace or write into them (``ensure_not_run_file``); other names beside them
  (e.g. RUN/points.ply) are the user's to choose.

The file layout itself is documented in pipeline/run_folder.py, which writes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Iterable

from ..atomic import temp_name_pattern
from ..errors import UserInputError

CONFIG_NAME = "config.json"
PROGRESS_NAME = "progress.json"
MARKER_NAME = ".scenedreamer-run.json"
LOCK_NAME = ".scenedreamer-run.lock"
SCENE_PLY = "scene.ply"
SCENE_PT = "scene.pt"
TRAJECTORY_NAME = "trajectory.json"
SUPPORT_DIR = "support"
CHAPTERS_NAME = "chapters.json"
CHAPTERS_DIR = "chapters"
"""`scenedreamer extend` records chapters here (pipeline/chapters.py): chapters/NNN/ are folders of
the run's own (a chapter's cameras and its snapshot), removed whole by --overwrite."""

# every top-level file a run writes (besides the lock, which is never removed while held)
RUN_FILES = (MARKER_NAME, CONFIG_NAME, TRAJECTORY_NAME, "events.jsonl", PROGRESS_NAME,
             "adapter.safetensors", SCENE_PT, SCENE_PLY, "scene.json", "video.mp4", "transforms.json",
             "points3D.ply", "licenses.json", CHAPTERS_NAME)
# every sub-folder a run writes, with the names of the files it writes there
RUN_FOLDERS: dict[str, re.Pattern[str]] = {
    "support": re.compile(r"^(support\.sqlite(-wal|-shm|-journal)?|lock)$"),
    "support/views": re.compile(r"^\d{8}\.npys$"),
    "checkpoints": re.compile(r"^(step_\d{4}|frozen_\d{5})\.pt$"),
    "images": re.compile(r"^frame_\d{5}\.png$"),
    "depths": re.compile(r"^frame_\d{5}\.(png|npy)$"),
    "masks": re.compile(r"^frame_\d{5}\.png$"),
}
_OWN_TOP_NAMES = frozenset(RUN_FILES) | {LOCK_NAME, CHAPTERS_DIR} | {sub.split("/")[0] for sub in RUN_FOLDERS}


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a scenedreamer run marker (finished or not)."""
    marker = Path(path) / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return True   # our name, unreadable: still ours (never treat a run as free space)
    return not isinstance(data, dict) or data.get("program", "scenedreamer") == "scenedreamer"


def run_is_writing(root: str | os.PathLike) -> bool:
    """Whether a live process holds the run's lock (the current or the older layout's)."""
    root = Path(root)
    for lock in (root / LOCK_NAME, root / SUPPORT_DIR / "lock"):
        if not lock.is_file() or lock.is_symlink():
            continue
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def require_finished_run(root: str | os.PathLike, needs: str | Iterable[str] = (SCENE_PLY,),
                         open_chapter_allowed: bool = False) -> Path:
    """The run folder ``root`` as a Path, after checking it is a run (marker), finished (a
    committed step, no writer, no extension or revert cut off: only `extend` itself passes
    ``open_chapter_allowed``) and holds every name of ``needs`` (file or folder names relative
    to the run, e.g. "scene.ply", "support"). Otherwise UserInputError, one line naming why."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"{root}: no such run folder")
    if not is_run(root):
        raise UserInputError(f"{root}: not a run folder written by scenedreamer (no {MARKER_NAME})")
    if run_is_writing(root):
        raise UserInputError(f"{root}: run still in progress (another process is writing it)")
    if not (root / PROGRESS_NAME).is_file():
        raise UserInputError(f"{root}: run never committed a step (no {PROGRESS_NAME}); "
                             "resume it with `scenedreamer generate --resume`")
    unfinished = None if open_chapter_allowed else _unfinished_chapter(root)
    if unfinished:
        raise UserInputError(f"{root}: {unfinished}")
    for name in [needs] if isinstance(needs, str) else needs:
        if not (root / name).exists():
            raise UserInputError(f"{root}: run lacks {name}")
    return root


def _unfinished_chapter(root: Path) -> str | None:
    """Why a grown run (chapters.json, pipeline/chapters.py) is not finished: an extension or a
    revert that was cut off leaves outputs that do not match its trajectory. None when it is."""
    path = root / CHAPTERS_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        chapters = data["chapters"]
        reverting_to = data.get("reverting_to")
        unfinished = [c["number"] for c in chapters if not c.get("finished", False)]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{CHAPTERS_NAME} is unreadable; the run's chapters cannot be trusted"
    if reverting_to is not None:
        return (f"a revert to chapter {reverting_to} was interrupted; finish it with "
                f"`scenedreamer extend {root} --revert {reverting_to}`")
    if unfinished:
        return (f"chapter {unfinished[0]} of this run is not finished; go on with "
                f"`scenedreamer extend {root} --resume`")
    return None


def is_finished_run(root: str | os.PathLike) -> bool:
    """Whether ``root`` passes ``require_finished_run`` with nothing more needed (for batch)."""
    try:
        require_finished_run(root, needs=())
    except UserInputError:
        return False
    return True


def run_owning(path: str | os.PathLike) -> tuple[Path, str] | None:
    """(run folder, the run's own name that ``path`` is or lies under) when ``path`` is a run
    folder itself (name "") or one of its own names (see the module docstring); else None.
    Symbolic links and ``..`` are resolved first, so no spelling of the path slips past."""
    real = Path(os.path.realpath(path))
    if is_run(real):
        return real, ""
    child = real
    for parent in real.parents:
        if is_run(parent):
            name = child.name
            if name in _OWN_TOP_NAMES or any(temp_name_pattern(own).match(name) for own in _OWN_TOP_NAMES):
                return parent, name
            return None   # a name of the user's beside the run's files
        child = parent
    return None


def ensure_not_run_file(out: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse (UserInputError, one line) an output path that is a run folder or one of a run's
    own files or folders (even with --force: only `generate` writes those). Creates nothing."""
    owner = run_owning(out)
    if owner is None:
        return
    run, name = owner
    if not name:
        raise UserInputError(f"{flag} {out}: is a run folder written by scenedreamer; "
                             "choose a new file or folder")
    raise UserInputError(f"{flag} {out}: is the run's own {name} ({run}); it is never replaced: "
                         "choose another name")
