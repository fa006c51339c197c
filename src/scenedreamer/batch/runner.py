"""The batch driver: register the scenes in the manifest, skip finished ones, run the rest on an
executor (local processes or Ray) with retries, and keep the manifest true through Ctrl-C.

The executor interface (LocalExecutor, RayExecutor): ``capacity() -> int``,
``start(config_data, run_folder) -> handle``, ``wait(timeout) -> [(handle, SceneOutcome)]``,
``cancel_all()``, ``close()``, ``describe() -> str``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..config_io import config_diff, to_json_dict
from ..errors import UserInputError
from ..events import EventSink, emit
from .manifest import Manifest, SceneRow
from .worker import SceneOutcome


INTERRUPTED = "interrupted"
"""The error text of an attempt that Ctrl-C / SIGTERM cut off (its next start resumes it)."""


class Executor(Protocol):
    def capacity(self) -> int: ...
    def start(self, config_data: dict, run_folder: str) -> Any: ...
    def wait(self, timeout: float) -> list[tuple[Any, SceneOutcome]]: ...
    def cancel_all(self) -> None: ...
    def close(self) -> None: ...
    def describe(self) -> str: ...


@dataclass(frozen=True)
class SceneJob:
    """One scene to generate: its name (run folder name under the batch folder), prompt, seed
    and resolved GenerateConfig. The manifest's copy of the config is what runs (on a re-run
    too)."""

    name: str
    prompt: str
    seed: int
    config: Any
    seed_fixed: bool = True
    """False when the seed was derived from the batch's seed and the scene (batch.prompts.scene_seed):
    a manifest written before seeds were derived (every scene seed 0) is then still the same batch"""


def prepare_manifest(folder: Path, jobs: list[SceneJob], settings: dict) -> Manifest:
    """Open the batch folder's manifest, registering ``jobs`` for a new batch.

    Re-running the same command finds the same scenes with the same configs and goes on; a
    manifest of another batch (other scenes or settings) is refused, naming the first difference.
    """
    manifest = Manifest.open(folder)
    try:
        rows = manifest.rows()
        if not rows:
            manifest.register(settings, [(j.name, j.prompt, j.seed, str(folder / j.name),
                                          json.dumps(to_json_dict(j.config), sort_keys=True)) for j in jobs])
            return manifest
        _check_same_batch(folder, rows, jobs)
        return manifest
    except BaseException:
        manifest.close()
        raise


def _check_same_batch(folder: Path, rows: list[SceneRow], jobs: list[SceneJob]) -> None:
    names = [r.name for r in rows]
    wanted = [j.name for j in jobs]
    if names != wanted:
        extra = [n for n in wanted if n not in names]
        missing = [n for n in names if n not in wanted]
        what = (f"scene {extra[0]!r} is not in it" if extra else f"its scene {missing[0]!r} is not in the prompt file"
                if missing else "its scenes are in another order")
        raise UserInputError(f"{folder}: holds another batch's manifest ({what}); use another --out")
    for row, job in zip(rows, jobs):
        diff = config_diff(json.loads(row.config), to_json_dict(job.config))
        if not job.seed_fixed:      # a derived seed: the manifest's recorded seed is the scene's
            diff = [d for d in diff if not d.startswith("seed:")]
        if diff:
            raise UserInputError(f"{folder}: holds another batch's manifest (scene {row.name!r}: "
                                 f"{'; '.join(diff[:3])}); use another --out")


def run_batch(manifest: Manifest, jobs: list[SceneJob], executor: Executor, max_retries: int = 1,
              on_event: EventSink | None = None, poll_seconds: float = 0.5) -> list[SceneRow]:
    """Run every scene of ``jobs`` not yet done; returns the manifest's rows at the end.

    A failed attempt is retried while this invocation's attempts <= max_retries (a scene runs at
    most 1 + max_retries times per invocation; a re-run tries failed scenes again); bad input is
    not retried. A start that resumes an attempt a Ctrl-C or a killed driver cut off does not
    count as a new try in the manifest. A KeyboardInterrupt stops scheduling,
    ends running attempts, marks them pending ("interrupted") and is re-raised: re-running the
    same batch resumes them from their last committed step.
    """
    rows = {r.name: r for r in manifest.rows()}
    queue = [j for j in jobs if not _finished(rows[j.name])]
    total = len(jobs)
    done = total - len(queue)
    running: dict[Any, SceneJob] = {}
    tries: dict[str, int] = {}          # attempts in this invocation (the manifest counts all)
    emit(on_event, "batch", done, total, f"{done} of {total} scenes already done; {executor.describe()}")
    try:
        while queue or running:
            while queue and executor.capacity() > 0:
                job = queue.pop(0)
                row = rows[job.name]
                # an attempt that a Ctrl-C or a killed driver cut off resumes: not a new try
                resumed = job.name not in tries and row.attempts > 0 and \
                    (row.status == "running" or (row.status == "pending" and row.error == INTERRUPTED))
                manifest.mark_running(job.name, new_try=not resumed)
                tries[job.name] = tries.get(job.name, 0) + 1
                # the manifest's config runs (its seed is the one recorded, also for an old batch)
                running[executor.start(json.loads(row.config), row.run_folder)] = job
                emit(on_event, "scene", done, total, f"started {job.name}")
            for handle, outcome in executor.wait(poll_seconds):
                job = running.pop(handle)
                attempts = tries[job.name]
                if outcome.ok:
                    manifest.mark_ended(job.name, "done", outcome.seconds, outcome.peak_rss_mb)
                    done += 1
                    emit(on_event, "scene", done, total, f"done {job.name}", seconds=outcome.seconds)
                elif outcome.retryable and attempts <= max_retries:
                    manifest.mark_ended(job.name, "pending", outcome.seconds, outcome.peak_rss_mb, outcome.error)
                    queue.append(job)
                    emit(on_event, "scene", done, total, f"retrying {job.name} (attempt {attempts} failed: "
                                                         f"{outcome.error[:80]})")
                else:
                    manifest.mark_ended(job.name, "failed", outcome.seconds, outcome.peak_rss_mb, outcome.error)
                    done += 1
                    emit(on_event, "scene", done, total, f"failed {job.name}: {outcome.error[:80]}")
    except KeyboardInterrupt:
        executor.cancel_all()
        for job in running.values():
            manifest.mark_ended(job.name, "pending", None, None, INTERRUPTED)
        raise
    finally:
        executor.close()
    return manifest.rows()


def _finished(row: SceneRow) -> bool:
    """Done in the manifest and its run folder still a finished run (the run-folder contract,
    pipeline/run_contract.py); a deleted folder is generated again."""
    from ..pipeline.run_contract import is_finished_run

    return row.status == "done" and is_finished_run(row.run_folder)
