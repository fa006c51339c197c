"""The local executor: each scene attempt in its own child process, at most ``workers`` at once.

A child process per attempt isolates scenes (a crash or an out-of-memory kill costs one attempt,
not the batch) and makes the peak-memory figure that scene's own. No Ray import.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
from dataclasses import dataclass

from .worker import SceneOutcome, failed_outcome, resolve_task, set_parent_death_signal


def _child_main(task: str, config_data: dict, run_folder: str, conn, parent_pid: int | None = None) -> None:
    set_parent_death_signal(parent_pid)
    # threads per scene: the driver decides (OMP_NUM_THREADS is inherited); keep the child's
    # Ctrl-C to the driver, which stops scheduling and ends the children itself
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        outcome = resolve_task(task)(config_data, run_folder)
    except Exception as err:        # noqa: BLE001 - reported, not a traceback and a "died" retry
        outcome = failed_outcome(err)
    conn.send(outcome)
    conn.close()


@dataclass
class _Attempt:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection


class LocalExecutor:
    """Runs scene attempts in spawned child processes (``workers`` at a time)."""

    def __init__(self, workers: int = 1, task: str | None = None):
        from .worker import DEFAULT_TASK

        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.task = task or DEFAULT_TASK
        self._context = multiprocessing.get_context("spawn")
        self._attempts: dict[int, _Attempt] = {}
        self._next = 0

    def describe(self) -> str:
        return f"local executor, {self.workers} worker process{'es' if self.workers > 1 else ''}"

    def capacity(self) -> int:
        """How many more attempts can start now."""
        return self.workers - len(self._attempts)

    def start(self, config_data: dict, run_folder: str) -> int:
        """Start one attempt; returns its handle."""
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(target=_child_main, args=(self.task, config_data, run_folder, send, os.getpid()),
                                        daemon=True)
        process.start()
        send.close()
        handle = self._next
        self._next += 1
        self._attempts[handle] = _Attempt(process, receive)
        return handle

    def wait(self, timeout: float) -> list[tuple[int, SceneOutcome]]:
        """Attempts that ended within ``timeout`` seconds, with their outcomes."""
        if not self._attempts:
            return []
        sentinels = {a.process.sentinel: h for h, a in self._attempts.items()}
        readers = {a.conn: h for h, a in self._attempts.items()}
        ready = multiprocessing.connection.wait(list(sentinels) + list(readers), timeout=timeout)
        ended = {sentinels.get(r, readers.get(r)) for r in ready}
        results = []
        for handle in sorted(ended):
            attempt = self._attempts.pop(handle)
            outcome = None
            try:
                if attempt.conn.poll(0.5):
                    outcome = attempt.conn.recv()
            except (EOFError, OSError):
                outcome = None
            attempt.process.join(timeout=10)
            if outcome is None:
                code = attempt.process.exitcode
                outcome = SceneOutcome(ok=False, error=f"worker process died (exit code {code})", retryable=True)
            attempt.conn.close()
            results.append((handle, outcome))
        return results

    def cancel_all(self) -> None:
        """End every running attempt (their run folders keep what they committed)."""
        for attempt in self._attempts.values():
            attempt.process.terminate()
        for attempt in self._attempts.values():
            attempt.process.join(timeout=10)
            if attempt.process.is_alive():
                attempt.process.kill()
            attempt.conn.close()
        self._attempts.clear()

    def close(self) -> None:
        self.cancel_all()
