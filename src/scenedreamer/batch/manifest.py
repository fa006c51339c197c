"""The batch manifest: DIR/manifest.sqlite, one row a scene, updated atomically as scenes start
and end (each change is one SQLite transaction in WAL mode, so `batch --status` can read it while
the batch runs and a killed batch leaves the last committed state).

Only the batch driver writes it (workers report back to the driver), so it also works on a
shared file system where several hosts run scenes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError

MANIFEST_NAME = "manifest.sqlite"
STATUSES = ("pending", "running", "done", "failed")
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scenes (
    position INTEGER NOT NULL,
    name TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    run_folder TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    ended REAL,
    seconds REAL,
    peak_rss_mb REAL,
    error TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class SceneRow:
    """One scene as the manifest records it (times are UNIX seconds; seconds = the last
    attempt's wall time; peak_rss_mb = the worker's peak resident memory, MiB)."""

    position: int
    name: str
    prompt: str
    seed: int
    run_folder: str
    config: str
    status: str
    attempts: int
    started: float | None
    ended: float | None
    seconds: float | None
    peak_rss_mb: float | None
    error: str


class Manifest:
    """Open with ``Manifest.open(folder)``; close with ``close()`` (or use as a context manager)."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self._db = connection

    @classmethod
    def open(cls, folder: str | Path, create: bool = True) -> "Manifest":
        """Open (and with ``create`` make) the manifest of the batch folder ``folder``."""
        path = Path(folder) / MANIFEST_NAME
        if not create and not path.is_file():
            raise UserInputError(f"{folder}: no batch manifest here ({MANIFEST_NAME} missing)")
        try:
            if create:
                Path(folder).mkdir(parents=True, exist_ok=True)
            uri = path.resolve().as_uri() + ("" if create else "?mode=ro")
            connection = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
            if create:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(_SCHEMA)
                connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),))
            version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as err:
            raise UserInputError(f"{path}: not a readable batch manifest ({err})") from None
        except OSError as err:
            raise UserInputError(f"{folder}: cannot create the batch folder ({err.strerror})") from None
        if version is None or version[0] != str(_SCHEMA_VERSION):
            connection.close()
            raise UserInputError(f"{path}: batch manifest of an unknown version")
        return cls(path, connection)

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ reading
    def rows(self) -> list[SceneRow]:
        """Every scene, in prompt-file order."""
        cur = self._db.execute("SELECT position, name, prompt, seed, run_folder, config, status, attempts, started, "
                               "ended, seconds, peak_rss_mb, error FROM scenes ORDER BY position")
        return [SceneRow(*r) for r in cur.fetchall()]

    def row(self, name: str) -> SceneRow:
        rows = [r for r in self.rows() if r.name == name]
        if not rows:
            raise KeyError(name)
        return rows[0]

    def settings(self) -> dict | None:
        """The batch-wide settings recorded when the batch was first started (None: new)."""
        got = self._db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        return None if got is None else json.loads(got[0])

    # ------------------------------------------------------------------ writing
    def register(self, settings: dict, scenes: list[tuple[str, str, int, str, str]]) -> None:
        """Record a new batch: its settings and (name, prompt, seed, run_folder, config JSON) of
        every scene, all pending, in one transaction."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('settings', ?)", (json.dumps(settings, sort_keys=True),))
            self._db.executemany(
                "INSERT INTO scenes (position, name, prompt, seed, run_folder, config, status) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                [(i, *scene) for i, scene in enumerate(scenes)])

    def mark_running(self, name: str, new_try: bool = True) -> None:
        """An attempt of ``name`` starts now; ``new_try=False``: it resumes an attempt that was cut
        off (Ctrl-C, a killed driver), which is not counted again in ``attempts``."""
        with self._transaction():
            self._db.execute("UPDATE scenes SET status = 'running', attempts = attempts + ?, started = ?, "
                             "ended = NULL, error = '' WHERE name = ?", (1 if new_try else 0, time.time(), name))

    def mark_ended(self, name: str, status: str, seconds: float | None, peak_rss_mb: float | None,
                   error: str = "") -> None:
        """The current attempt of ``name`` ended with ``status`` (done / failed / pending when
        it will be retried or was interrupted)."""
        if status not in STATUSES:
            raise ValueError(f"unknown scene status {status!r}")
        with self._transaction():
            self._db.execute("UPDATE scenes SET status = ?, ended = ?, seconds = ?, peak_rss_mb = ?, error = ? "
                             "WHERE name = ?", (status, time.time(), seconds, peak_rss_mb, error, name))

    def _transaction(self):
        db = self._db

        class _Tx:
            def __enter__(self_inner):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()


def summary_table(rows: list[SceneRow]) -> str:
    """A plain-text table of the scenes and a count per status."""
    header = ("scene", "status", "tries", "time", "peak mem", "error")
    lines = [header]
    for r in rows:
        lines.append((r.name, r.status, str(r.attempts), "" if r.seconds is None else f"{r.seconds:.1f} s",
                      "" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f} MiB", r.error[:80]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    text.append(f"{len(rows)} scenes: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(text)
