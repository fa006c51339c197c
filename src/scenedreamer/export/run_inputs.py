"""Loading a finished run folder's outputs for the render/export commands (see pipeline/run_folder.py).

Refuses (UserInputError, one line naming the file) a folder that is not a run, a run still in
progress (no progress.json commit, or its support database lock held by a live process) and a
run lacking the file a command needs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import UserInputError


def check_finished_run(root: str | os.PathLike, needs: str) -> Path:
    """The run folder ``root`` as a Path, after checking it is finished and holds ``needs``
    (a file name relative to the folder, e.g. "scene.ply")."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"{root}: no such run folder")
    if not (root / "config.json").exists():
        raise UserInputError(f"{root}: not a run folder (no config.json)")
    if not (root / "progress.json").exists():
        raise UserInputError(f"{root}: run still in progress or never committed a step (no progress.json)")
    lock = root / "support" / "lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserInputError(f"{root}: run still in progress (its support database is open)") from None
        finally:
            os.close(fd)
    if not (root / needs).exists():
        raise UserInputError(f"{root}: run lacks {needs}")
    return root
