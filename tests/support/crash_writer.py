"""The writer process of test_crash_safety: adds views in a loop and prints each view id on its
own line once ``add`` has returned for it (so the parent knows which views are committed).

usage: python crash_writer.py FOLDER MODE ARM_AFTER HEIGHT WIDTH
  MODE "loop": run until killed from outside.
  MODE "kill_mid_file": after ARM_AFTER adds, SIGKILL itself in the middle of writing a view file.
  MODE "kill_before_commit": after ARM_AFTER adds, SIGKILL itself after the view file is in place
      but before its row is committed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from support_views import make_record  # noqa: E402

from scenedreamer.support import SupportConfig, SupportDatabase  # noqa: E402
from scenedreamer.support import storage  # noqa: E402


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(mode: str, database: SupportDatabase) -> None:
    """Install the self-kill of ``mode``."""
    if mode == "kill_mid_file":
        real_save = storage.np.save
        calls = {"n": 0}

        def save_then_die(fh, array, **kwargs):
            real_save(fh, array, **kwargs)
            calls["n"] += 1
            if calls["n"] == 2:          # rgb and depth written, the masks not yet
                fh.flush()
                _die()

        storage.np.save = save_then_die
    elif mode == "kill_before_commit":
        @contextlib.contextmanager
        def die_instead():
            _die()
            yield

        database._transaction = die_instead


def main() -> None:
    folder, mode, arm_after, height, width = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    database = SupportDatabase.open(folder, config=SupportConfig(fsync=False))
    added = 0
    while True:
        if mode != "loop" and added == arm_after:
            arm(mode, database)
        seed = max(database.ids()) + 1 if len(database) else 0
        view_id = database.add(make_record(seed, height=height, width=width))
        assert view_id == seed, (view_id, seed)
        print(view_id, flush=True)
        added += 1


if __name__ == "__main__":
    main()
