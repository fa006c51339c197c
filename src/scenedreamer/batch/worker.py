"""What runs for one scene of a batch, inside a worker process (a local child or a Ray worker).

The driver sends the scene's resolved config as plain JSON and its run folder; the worker runs
(or resumes) the generation there and reports a SceneOutcome. Bad input is reported as not worth
retrying, and so is any failure that fails the same way again (a full disk, a bug); only running
out of memory, a dead worker (the executor sees it) or a run lock left by a killed attempt is.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_TASK = "scenedreamer.batch.worker:run_scene"
"""The scene function a batch runs (``module:function``). The only other use is fault
injection in tests; a task takes (config JSON dict, run folder) and returns a SceneOutcome."""


@dataclass(frozen=True)
class SceneOutcome:
    """How one attempt of a scene ended.

    ok: the run folder holds the finished scene; error: one line when not ok; retryable: a
    retry may succeed (False for bad input, which fails the same way every time); seconds: wall
    time of the attempt; peak_rss_mb: the worker process's peak resident memory (MiB).
    """

    ok: bool
    error: str = ""
    retryable: bool = True
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_scene(config_data: dict, run_folder: str) -> SceneOutcome:
    """Generate the scene of ``config_data`` (a GenerateConfig as JSON) into ``run_folder``,
    resuming it from its last committed step when an earlier attempt began it."""
    from ..config_io import from_json_dict
    from ..errors import RunLockedError, UserInputError
    from ..pipeline.config import GenerateConfig
    from ..pipeline.run import run_generation
    from ..pipeline.run_folder import RunFolder

    start = time.monotonic()
    try:
        config = from_json_dict(GenerateConfig, config_data, where=f"{run_folder} config")
        resume = RunFolder(run_folder).holds_run()
        run_generation(config, run_folder, resume=resume)
        return SceneOutcome(ok=True, seconds=time.monotonic() - start, peak_rss_mb=peak_rss_mb())
    except RunLockedError as err:
        # the worker of an attempt that a killed driver left behind may still be exiting (it
        # holds the run's lock until the kernel has delivered its SIGKILL): worth a retry
        time.sleep(2.0)
        return SceneOutcome(ok=False, error=_one_line(err), retryable=True,
                            seconds=time.monotonic() - start, peak_rss_mb=peak_rss_mb())
    except UserInputError as err:
        return SceneOutcome(ok=False, error=_one_line(err), retryable=False,
                            seconds=time.monotonic() - start, peak_rss_mb=peak_rss_mb())
    except Exception as err:        # noqa: BLE001 - every failure becomes an outcome; only memory is retried
        return failed_outcome(err, time.monotonic() - start)


def is_retryable(err: BaseException) -> bool:
    """Whether another attempt of the scene may pass after ``err``: only running out of memory
    (MemoryError, torch's OutOfMemoryError), which depends on what else ran beside it. Bad input,
    a full disk, a permission or a bug fail the same way every time, so they are not retried. (A
    worker that dies, e.g. killed by the kernel's OOM killer, is retried by the executor.)"""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"


def failed_outcome(err: BaseException, seconds: float = 0.0) -> SceneOutcome:
    """The outcome of an attempt that raised ``err``: one line naming the cause (a failure that
    is not the user's input nor the environment is an internal error), retryable per is_retryable."""
    from ..errors import RunFailedError

    if isinstance(err, (RunFailedError, OSError, MemoryError)) or is_retryable(err):
        text = f"{type(err).__name__}: {_one_line(err)}"
    else:
        text = f"internal error ({type(err).__name__}: {_one_line(err)}); please report it"
    return SceneOutcome(ok=False, error=text[:500], retryable=is_retryable(err), seconds=seconds,
                        peak_rss_mb=peak_rss_mb())


def resolve_task(name: str) -> Callable[[dict, str], SceneOutcome]:
    """The function named ``module:function``."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:500] or type(err).__name__


def set_parent_death_signal(parent_pid: int | None = None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so a killed batch driver leaves
    no orphan worker holding a run folder's lock (no-op elsewhere). ``parent_pid``: the driver's
    pid as the driver saw it; a parent that died before this call (the signal is only armed for a
    death after it) ends this process at once instead of leaving it to run on as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)                     # orphaned before the signal was armed: the driver is gone
