"""The support database: every generated view, persisted crash-safe, queryable and replayable.

On disk (one folder)::

    support.sqlite (+ -wal, -shm)   one row per view: camera, provenance, step, prompt, file name
    views/00000042.npys             the view's arrays (storage.py), exact, one file per view
    lock                            held (flock) by the one process that has the database open

Crash safety, the order of one ``add``:
  1. the view file is written to a temp file in views/ and renamed into place (a reader or a
     killed writer sees all of it or nothing);
  2. the row is inserted in its own SQLite transaction (WAL journal) and committed.
A process killed before 2 commits leaves at most an unreferenced file (or a temp file), which the
next ``open`` deletes; after 2 the view is complete. So no row ever names a missing or partial
file, and every view ``add`` returned for is there after a reopen; ``open`` resumes numbering.

Power cuts (SupportConfig.fsync): with fsync=False (default, group commit) the kernel may still
hold the last views' data; ``sync()`` fsyncs them, the folder and the WAL - call it before writing
anything that refers to the views (a checkpoint). With fsync=True step 1 fsyncs the file and the
folder and SQLite runs synchronous=FULL, so each ``add`` is power-cut safe on return. ``open``
checks every row's file size and drops (with a warning) rows whose file is gone or short - only
possible after a power cut between ``sync`` calls, or hand edits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from ..errors import UserInputError
from ..events import EventSink
from ..geometry.cameras import Cameras
from .config import SupportConfig
from .nerfstudio_export import export_nerfstudio
from .overlap import frustum_overlap, pose_distances, rank_neighbours
from .records import Provenance, ViewRecord
from .replay import sample_replay_positions
from .storage import (ViewInfo, decode_record, encode_record, fsync_paths, read_view_file,
                      write_view_file)

DB_FILE = "support.sqlite"
VIEWS_DIR = "views"
LOCK_FILE = "lock"
VIEW_FILE_SUFFIX = ".npys"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS views (
    view_id         INTEGER PRIMARY KEY,
    file            TEXT    NOT NULL,   -- name inside views/
    file_bytes      INTEGER NOT NULL,   -- exact size, checked on open
    array_names     TEXT    NOT NULL,   -- JSON list, file order
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    K               TEXT    NOT NULL,   -- JSON 3x3, pixels
    c2w             TEXT    NOT NULL,   -- JSON 4x4, OpenCV axes
    provenance      TEXT    NOT NULL,
    step            INTEGER NOT NULL,
    prompt          TEXT    NOT NULL,
    extra           TEXT    NOT NULL,   -- JSON object (tensor extras live in the file)
    depth_quantiles TEXT,               -- JSON list, NULL when the view has no valid depth
    created_unix    REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS views_by_step ON views(step);
"""

_COLUMNS = ("view_id, file, file_bytes, array_names, width, height, K, c2w, provenance, step, "
            "prompt, extra, depth_quantiles")


def _row_from_sql(values: tuple) -> ViewInfo:
    (view_id, file, file_bytes, array_names, width, height, K, c2w, provenance, step, prompt,
     extra, depth_quantiles) = values
    return ViewInfo(view_id=int(view_id), file=file, file_bytes=int(file_bytes),
                   array_names=json.loads(array_names), width=int(width), height=int(height),
                   K=json.loads(K), c2w=json.loads(c2w), provenance=Provenance(provenance),
                   step=int(step), prompt=prompt, extra_json=json.loads(extra),
                   depth_quantiles=None if depth_quantiles is None else json.loads(depth_quantiles))


def _fsync_folder(folder: Path) -> None:
    """Make renames/unlinks inside ``folder`` durable (POSIX: fsync the directory)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SupportDatabase:
    """The views the 3D representation is trained on, with provenance, in one folder.

    Open with ``SupportDatabase.open(folder)``; one process at a time (a second open of the same
    folder raises UserInputError until the first is closed). Row metadata (cameras, steps,
    provenance) is held in memory; pixel arrays are read from disk on ``get``. ``get``, ``ids``,
    ``cameras``, ``neighbours`` and ``sample_replay`` may be called from several threads.
    """

    def __init__(self, folder: Path, connection: sqlite3.Connection, lock_fd: int,
                 config: SupportConfig) -> None:
        """Use ``SupportDatabase.open``; this only wires the parts together."""
        self.folder = folder
        self.config = config
        self._views_dir = folder / VIEWS_DIR
        self._conn: sqlite3.Connection | None = connection
        self._lock_fd: int | None = lock_fd
        self._mutex = threading.RLock()
        self._rows: dict[int, ViewInfo] = {}   # insertion (= id) order
        self._next_id = 0
        self._unsynced: list[Path] = []         # view files written without fsync (fsync=False)
        # (position of each id, K (V,3,3), c2w (V,4,4)) of all views; rebuilt after changes
        self._camera_cache: tuple[dict[int, int], Tensor, Tensor] | None = None
        self.dropped_on_open: list[int] = []
        """Ids of rows dropped by ``open`` because their file was missing or short."""

    # --- opening and closing -----------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike, create: bool = True,
             config: SupportConfig = SupportConfig(), committed_step: int | None = None) -> "SupportDatabase":
        """Open (or with ``create``, make) the support database in ``folder`` and resume it.

        Deletes leftovers of a killed writer (temp files, files no committed row names).
        Raises UserInputError naming the folder when it cannot be created or written, holds no
        database and ``create`` is False, holds a file that is not a support database, or is
        open in another SupportDatabase / process.
        """
        folder = Path(folder)
        db_path = folder / DB_FILE
        if not folder.is_dir():
            if folder.exists():
                raise UserInputError(f"{folder}: support database path exists and is not a folder")
            if not create:
                raise UserInputError(f"{folder}: no support database here (folder does not exist)")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserInputError(f"{folder}: cannot create the support database folder "
                                     f"({err.strerror})") from None
        if not create and not db_path.exists():
            raise UserInputError(f"{folder}: no support database here ({DB_FILE} is missing)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserInputError(f"{folder}: support database folder is not writable")
        views_dir = folder / VIEWS_DIR
        if not db_path.exists() and views_dir.is_dir() and any(views_dir.iterdir()):
            # open() deletes unreferenced files in views/: never do that to a folder we did not make
            raise UserInputError(f"{folder}: has a non-empty {VIEWS_DIR}/ folder but no {DB_FILE}; "
                                 "not a support database, refusing to write into it")
        lock_fd = cls._acquire_lock(folder)
        try:
            connection = cls._connect(db_path, config)
            database = cls(folder, connection, lock_fd, config)
            database._load_and_recover(committed_step)
        except BaseException:
            os.close(lock_fd)  # releases the flock
            raise
        return database

    @staticmethod
    def _acquire_lock(folder: Path) -> int:
        try:
            fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserInputError(f"{folder}: support database folder is not writable "
                                 f"({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserInputError(f"{folder}: the support database is already open (in this or "
                                 "another process); close it first") from None
        return fd

    @staticmethod
    def _connect(db_path: Path, config: SupportConfig) -> sqlite3.Connection:
        conn = None
        try:
            # isolation_level=None: we write BEGIN/COMMIT ourselves, one transaction per change.
            conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL is safe against a killed process; FULL also against a power cut.
            conn.execute(f"PRAGMA synchronous={'FULL' if config.fsync else 'NORMAL'}")
            conn.executescript(_SCHEMA)
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) != SCHEMA_VERSION:
                raise UserInputError(f"{db_path}: support database schema version {version[0]}, "
                                     f"this code reads version {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            if conn is not None:
                conn.close()
            raise UserInputError(f"{db_path}: not a readable support database ({err})") from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return conn

    def _load_and_recover(self, committed_step: int | None = None) -> None:
        """Read every row; drop rows whose file is missing/short; delete unreferenced files."""
        assert self._conn is not None
        self._views_dir.mkdir(exist_ok=True)
        rows = [_row_from_sql(r) for r in
                self._conn.execute(f"SELECT {_COLUMNS} FROM views ORDER BY view_id")]
        broken = []
        for row in rows:
            try:
                size = os.stat(self._views_dir / row.file).st_size
            except FileNotFoundError:
                size = -1
            if size == row.file_bytes:
                self._rows[row.view_id] = row
            elif committed_step is not None and row.step <= committed_step:
                # a view of a committed step is never dropped silently: the run would differ
                raise UserInputError(f"{self._views_dir / row.file}: support view of committed step "
                                     f"{row.step} is " + ("missing" if size < 0 else "truncated"))
            else:
                broken.append(row.view_id)
        if broken:
            with self._transaction():
                self._conn.executemany("DELETE FROM views WHERE view_id = ?", [(i,) for i in broken])
            self.dropped_on_open = broken
            warnings.warn(f"{self.folder}: dropped support views {broken}: their array files were "
                          "missing or incomplete", RuntimeWarning, stacklevel=3)
        referenced = {row.file for row in self._rows.values()}
        for entry in os.scandir(self._views_dir):
            if entry.is_file() and entry.name not in referenced:  # temp files and files of uncommitted adds
                Path(entry.path).unlink(missing_ok=True)
        self._next_id = max(self._rows, default=-1) + 1

    def close(self) -> None:
        """Close the SQLite connection (checkpointing the WAL) and release the folder lock."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> "SupportDatabase":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Release the lock of a database that was never closed (best effort, at GC time).
        if getattr(self, "_lock_fd", None) is not None:
            with contextlib.suppress(Exception):
                self.close()

    # --- writing --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._live_connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _live_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"support database {self.folder} is closed")
        return self._conn

    def add(self, record: ViewRecord) -> int:
        """Store ``record``; returns its view_id (0, 1, 2, ... in insertion order).

        Durable on return: a crash after this returns never loses the view. ``record.view_id``
        is ignored (a record read back with ``get`` can be added again as a new view). Raises
        UserInputError naming the field when the record is malformed (see storage.encode_record).
        """
        cfg = self.config
        encoded = encode_record(record, cfg.rgb_storage_dtype, cfg.overlap_depth_quantiles,
                                cfg.depth_stats_stride)
        with self._mutex:
            self._live_connection()
            view_id = self._next_id
            file = f"{view_id:08d}{VIEW_FILE_SUFFIX}"
            path = self._views_dir / file
            file_bytes = write_view_file(path, encoded.arrays, fsync=cfg.fsync)
            row = ViewInfo(view_id=view_id, file=file, file_bytes=file_bytes,
                           array_names=list(encoded.arrays), width=encoded.width,
                           height=encoded.height, K=encoded.K, c2w=encoded.c2w,
                           provenance=encoded.provenance, step=encoded.step, prompt=encoded.prompt,
                           extra_json=encoded.extra_json, depth_quantiles=encoded.depth_quantiles)
            if cfg.fsync:
                _fsync_folder(self._views_dir)
            committed = False
            try:
                with self._transaction() as conn:
                    conn.execute(
                        f"INSERT INTO views ({_COLUMNS}, created_unix) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (view_id, row.file, file_bytes, json.dumps(row.array_names), row.width,
                         row.height, json.dumps(row.K), json.dumps(row.c2w), row.provenance.value,
                         row.step, row.prompt, json.dumps(row.extra_json),
                         None if row.depth_quantiles is None else json.dumps(row.depth_quantiles),
                         time.time()))
                committed = True
            finally:
                if not committed:  # no row names the file: remove it now rather than at next open
                    path.unlink(missing_ok=True)
            self._rows[view_id] = row
            self._next_id = view_id + 1
            self._camera_cache = None
            if not cfg.fsync:
                self._unsynced.append(path)
        return view_id

    def sync(self) -> None:
        """Make every view added so far survive a power cut (with fsync=False, add() only
        guarantees survival of a killed process). Call before writing anything that refers to
        the views, e.g. a pipeline checkpoint: fsyncs the pending view files, the views folder
        and checkpoints the SQLite WAL into the database file (which SQLite fsyncs)."""
        with self._mutex:
            conn = self._live_connection()
            fsync_paths(self._unsynced)
            _fsync_folder(self._views_dir)
            conn.execute("PRAGMA wal_checkpoint(FULL)")
            self._unsynced = []

    def truncate_after_step(self, step: int) -> None:
        """Drop every view with ``record.step > step`` (used by --resume); atomic.

        Later adds continue numbering after the largest remaining id.
        """
        with self._mutex:
            dropped = [row for row in self._rows.values() if row.step > step]
            if not dropped:
                return
            with self._transaction() as conn:
                conn.execute("DELETE FROM views WHERE step > ?", (step,))
            for row in dropped:
                del self._rows[row.view_id]
            # Files go after the commit; a crash in between leaves orphans that open() deletes.
            for row in dropped:
                (self._views_dir / row.file).unlink(missing_ok=True)
            if self.config.fsync:
                _fsync_folder(self._views_dir)
            self._next_id = max(self._rows, default=-1) + 1
            self._camera_cache = None

    # --- reading --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, view_id: object) -> bool:
        return view_id in self._rows

    def ids(self) -> list[int]:
        """All view ids in insertion order."""
        with self._mutex:
            return list(self._rows)

    def view_info(self, view_id: int) -> ViewInfo:
        """A view's metadata (camera, provenance, step, prompt, size) without reading its pixels."""
        with self._mutex:
            if view_id not in self._rows:
                raise KeyError(f"no view {view_id} in the support database {self.folder}")
            return self._rows[view_id]

    def last_step(self) -> int | None:
        """The largest ``step`` of any view, or None when the database is empty."""
        with self._mutex:
            return max((row.step for row in self._rows.values()), default=None)

    def get(self, view_id: int) -> ViewRecord:
        """The stored view, arrays exactly as added (rgb float32, or float16-rounded with
        rgb_storage_dtype="float16"), ``view_id`` set, tensors on the CPU. A view of an older
        database, stored without a backdrop mask, gets one derived from its depth
        (SupportConfig.legacy_backdrop_depth)."""
        row = self.view_info(view_id)
        return decode_record(view_id, read_view_file(self._views_dir / row.file, row.array_names), row,
                             self.config.legacy_backdrop_depth)

    def _stacked_poses(self) -> tuple[dict[int, int], Tensor, Tensor]:
        """(position of each id, K (V, 3, 3), c2w (V, 4, 4)) of all views, float32, cached."""
        with self._mutex:
            if self._camera_cache is None:
                rows = list(self._rows.values())
                self._camera_cache = (
                    {row.view_id: n for n, row in enumerate(rows)},
                    torch.tensor([row.K for row in rows], dtype=torch.float32).reshape(-1, 3, 3),
                    torch.tensor([row.c2w for row in rows], dtype=torch.float32).reshape(-1, 4, 4))
            return self._camera_cache

    def _poses_of(self, ids: list[int]) -> tuple[Tensor, Tensor]:
        position, K, c2w = self._stacked_poses()
        try:
            index = torch.tensor([position[i] for i in ids], dtype=torch.long)
        except KeyError as err:
            raise KeyError(f"no view {err.args[0]} in the support database {self.folder}") from None
        return K[index], c2w[index]

    def cameras(self, ids: list[int] | None = None) -> Cameras:
        """The cameras of ``ids`` (default: all, insertion order) as one CPU float32 batch.

        Raises UserInputError when they do not share one image size, or there are none.
        """
        ids = self.ids() if ids is None else list(ids)
        rows = [self.view_info(i) for i in ids]
        if not rows:
            raise UserInputError(f"{self.folder}: no support views to make cameras from")
        sizes = sorted({(row.width, row.height) for row in rows})
        if len(sizes) != 1:
            raise UserInputError(f"{self.folder}: support views have several image sizes "
                                 f"{sizes} (width, height); ask for ids of one size")
        K, c2w = self._poses_of(ids)
        return Cameras(K, c2w, sizes[0][0], sizes[0][1])

    def _sample_depths(self, row: ViewInfo) -> list[float]:
        return row.depth_quantiles if row.depth_quantiles is not None else list(self.config.fallback_depths)

    def overlaps(self, camera: Cameras, ids: list[int] | None = None) -> Tensor:
        """(len(ids),) float32 frustum overlap in [0, 1] of each view with ``camera`` (a batch
        of 1): the fraction of the camera's frustum sample points the view sees (overlap.py)."""
        if len(camera) != 1:
            raise ValueError(f"overlaps: camera must be a batch of 1, got {len(camera)}")
        query = camera.to("cpu", torch.float32)
        ids = self.ids() if ids is None else list(ids)
        rows = [self.view_info(i) for i in ids]
        K, c2w = self._poses_of(ids)
        result = torch.zeros(len(rows), dtype=torch.float32)
        # One vectorised call per group of views sharing image size and number of sample depths.
        groups: dict[tuple[int, int, int], list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault((row.width, row.height, len(self._sample_depths(row))), []).append(index)
        for (width, height, _), members in groups.items():
            index = torch.tensor(members, dtype=torch.long)
            depths = torch.tensor([self._sample_depths(rows[m]) for m in members], dtype=torch.float32)
            result[index] = frustum_overlap(query, Cameras(K[index], c2w[index], width, height),
                                            depths, self.config.overlap_grid)
        return result

    def neighbours(self, camera: Cameras, k: int, max_distance: float | None = None,
                   min_overlap: float = 0.0) -> list[int]:
        """The ids of the k views best overlapping ``camera`` (a batch of 1, OpenCV axes).

        Ranked by frustum overlap (higher first, see ``overlaps``), ties by pose distance
        (centre distance + SupportConfig.rotation_weight * rotation angle), then by id.
        max_distance: drop views whose camera centre is farther (scene units).
        min_overlap: drop views whose overlap is below this fraction (default keeps all).
        Fewer than k ids come back when fewer views qualify.
        """
        if k < 0:
            raise ValueError(f"neighbours: k must be >= 0, got {k}")
        ids = self.ids()
        if k == 0 or not ids:
            return []
        overlap = self.overlaps(camera, ids)
        _, c2w = self._poses_of(ids)
        centre_distance, pose_distance = pose_distances(camera.c2w[0].cpu(), c2w,
                                                        self.config.rotation_weight)
        keep = overlap >= min_overlap
        if max_distance is not None:
            keep &= centre_distance <= max_distance
        return rank_neighbours(ids, overlap, pose_distance, keep, k)

    def sample_replay(self, n: int, generator: torch.Generator, recent: int | None = None,
                      recent_weight: float | None = None) -> list[int]:
        """n view ids drawn with replacement: the ``recent`` newest views share probability
        ``recent_weight``, the older ones the rest (defaults: SupportConfig.replay_recent,
        replay_recent_weight). Same generator state, same ids."""
        return self._sample_among(self.ids(), n, generator, recent, recent_weight)

    def _sample_among(self, ids: list[int], n: int, generator: torch.Generator, recent: int | None,
                      recent_weight: float | None) -> list[int]:
        recent = self.config.replay_recent if recent is None else recent
        recent_weight = self.config.replay_recent_weight if recent_weight is None else recent_weight
        positions = sample_replay_positions(len(ids), n, generator, recent, recent_weight)
        return [ids[p] for p in positions]

    def subset(self, ids: list[int]) -> "ViewSubset":
        """These views alone, read like the database (get, ids, len, sample_replay over them with
        the same recency weights): a long world's active views (pipeline/active_set.py)."""
        unknown = [i for i in ids if i not in self]
        if unknown:
            raise ValueError(f"subset: view ids {unknown} are not in the support database")
        return ViewSubset(self, ids)

    # --- export ---------------------------------------------------------------------------------
    def export_nerfstudio(self, folder: str | os.PathLike, on_event: EventSink | None = None) -> Path:
        """Write the views as a nerfstudio dataset: folder/transforms.json, images/, depths/
        (and masks/ with SupportConfig.export_masks). Returns the transforms.json path.
        See nerfstudio_export.py for the format."""
        return export_nerfstudio(self.ids(), self.get, str(self.folder), Path(folder), self.config, on_event)


class ViewSubset:
    """Some views of a SupportDatabase (``SupportDatabase.subset``): what fitting and adapter
    training read of it, limited to these ids (in insertion order, so "recent" means the same)."""

    def __init__(self, database: SupportDatabase, ids: list[int]):
        self.database = database
        self._ids = sorted(set(ids))

    def get(self, view_id: int) -> ViewRecord:
        return self.database.get(view_id)

    def ids(self) -> list[int]:
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def sample_replay(self, n: int, generator: torch.Generator, recent: int | None = None,
                      recent_weight: float | None = None) -> list[int]:
        """As SupportDatabase.sample_replay, over these views only."""
        return self.database._sample_among(self._ids, n, generator, recent, recent_weight)
