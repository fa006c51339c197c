"""How many CPU threads a command uses: one policy, set once at start-up.

Torch's OpenMP threads busy-wait for each other; when other programs hold the cores, a thread
that is not running stalls the rest (measured on a 2-core machine, 400 192x192 matmuls:
1 thread 0.27 s quiet / 0.35 s beside two `yes` hogs; 2 threads 0.14 s quiet / 2.17 s beside the
hogs, 0.53 s with OMP_WAIT_POLICY=PASSIVE). So the default is the CPUs this process may use
less the cores other programs keep busy right now, and OpenMP threads sleep instead of spinning.

``choose_threads`` is the pure policy (tested with injected figures); ``usable_cpus`` and
``busy_cores`` measure this machine; ``apply_threads`` sets torch, OpenCV and the environment
that child processes inherit. No UI here: the caller prints the note it returns.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# environment variables that size the thread pools of the numeric libraries beside torch
# (OpenMP, MKL, OpenBLAS, numexpr, Accelerate, OpenCV's parallel_for); child processes
# (batch workers) inherit them and their libraries start with that many threads
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "OPENCV_FOR_THREADS_NUM")

BUSY_SAMPLE_SECONDS = 0.2
"""How long ``busy_cores`` watches /proc/stat (long enough for a few scheduler ticks at 100 Hz,
short enough not to slow start-up noticeably)."""


@dataclass(frozen=True)
class ThreadChoice:
    """threads: the count to use; why: one line saying how it was chosen; warning: a line to
    show the user (more threads asked for than exist), or ''."""

    threads: int
    why: str
    warning: str = ""


def choose_threads(requested: int | None, cpus: int, busy: float, env_threads: int | None = None) -> ThreadChoice:
    """The thread count for ``requested`` (None = automatic) given ``cpus`` usable CPUs,
    ``busy`` cores kept busy by other programs (a float, >= 0) and ``env_threads``, a standing
    OMP_NUM_THREADS from the environment (None when unset).

    Automatic: OMP_NUM_THREADS when the user set it (capped at ``cpus``), else the CPUs left
    free, rounded to the nearest whole core, at least 1. Asked for more than ``cpus``: the
    ``cpus`` that exist, with a warning. ``requested`` < 1 is refused by ``configure`` (one-line
    error); here it is a ValueError.
    """
    cpus = max(1, int(cpus))
    if requested is None and env_threads is not None and env_threads >= 1:
        threads = min(env_threads, cpus)
        return ThreadChoice(threads, f"{threads} (OMP_NUM_THREADS)")
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        if requested > cpus:
            return ThreadChoice(cpus, f"{cpus} (asked for {requested})",
                                f"--threads {requested}: this process may use only {cpus} CPU"
                                f"{'s' if cpus > 1 else ''}; using {cpus}")
        return ThreadChoice(requested, f"{requested} (--threads)")
    free = cpus - max(0.0, float(busy))
    # nearest whole core: another program using 0.3 of a core leaves room for every thread;
    # one using 0.6 would make a thread wait (and, with OpenMP, all of them) most of the time
    threads = max(1, min(cpus, int(math.floor(free + 0.5))))
    return ThreadChoice(threads, f"{threads} of {cpus} CPUs ({busy:.1f} busy with other work)")


def usable_cpus(proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota
    (cgroup v2 cpu.max "QUOTA PERIOD", or v1 cpu.cfs_quota_us / cpu.cfs_period_us)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(Path(cgroup_root))
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota + 0.5)))
    return max(1, cpus)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs' worth of the cgroup quota, or None when unlimited / unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def busy_cores(seconds: float = BUSY_SAMPLE_SECONDS, proc_root: str = "/proc") -> float:
    """Cores that other programs keep busy now: the machine's busy CPU time over a short
    sample (/proc/stat) minus this process's own. The 1-minute load average, which lags by
    minutes, is only the fallback where /proc/stat is missing."""
    stat = Path(proc_root) / "stat"
    try:
        before, own_before, t0 = _cpu_busy_seconds(stat), time.process_time(), time.monotonic()
        time.sleep(seconds)
        after, own_after, t1 = _cpu_busy_seconds(stat), time.process_time(), time.monotonic()
    except (OSError, ValueError, IndexError):
        try:
            return float(os.getloadavg()[0])
        except OSError:
            return 0.0
    others = (after - before) - (own_after - own_before)
    return max(0.0, others / max(t1 - t0, 1e-3))


def _cpu_busy_seconds(stat: Path) -> float:
    """Busy CPU seconds of all cores since boot (user+nice+system+irq+softirq+steal)."""
    fields = stat.read_text().splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError(f"{stat}: no cpu line")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (user + nice + system + irq + softirq + steal) / ticks


def resolve_threads(requested: int | None) -> ThreadChoice:
    """``choose_threads`` with this machine's figures (measures busy cores only when it must)."""
    cpus = usable_cpus()
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    env_threads = int(raw) if raw.isdigit() and int(raw) >= 1 else None
    measure = requested is None and env_threads is None
    return choose_threads(requested, cpus, busy_cores() if measure else 0.0, env_threads)


def apply_threads(threads: int, *, start_torch: bool = True) -> None:
    """Size every thread pool to ``threads``, once, before any parallel work.

    Sets the environment (this process's OpenMP/MKL read it when torch is first imported;
    child processes inherit it), OMP_WAIT_POLICY=PASSIVE unless the user set one (idle OpenMP
    threads sleep instead of spinning on cores other programs need), and, with ``start_torch``
    (commands that compute), imports torch and sets its intra- and inter-op pools and OpenCV's.
    Commands that only plan (--dry-run, --help) pass start_torch=False and stay light.
    """
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["SCENEDREAMER_THREADS"] = str(threads)
    if start_torch or "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass    # already set (or inter-op work ran) in this process: the intra-op count is what matters
    if start_torch or "cv2" in sys.modules:
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:
            pass


def share_per_process(threads: int, processes: int) -> int:
    """Threads for each of ``processes`` processes running at once: a fair share, at least 1."""
    return max(1, threads // max(1, processes))


def current_threads() -> int:
    """The thread count a run records: torch's intra-op pool when torch is loaded, else the
    count ``apply_threads`` set, else the CPUs this process may use."""
    if "torch" in sys.modules:
        import torch

        return int(torch.get_num_threads())
    value = os.environ.get("SCENEDREAMER_THREADS")
    return int(value) if value and value.isdigit() else usable_cpus()


THREADS_HELP = ("CPU threads for torch, OpenCV and BLAS (default: the CPUs this process may use, less those "
                "other programs keep busy now); the run's events.jsonl records the count used")


def add_threads_argument(parser) -> None:
    """The ``--threads N`` option of every command that computes (checked by ``configure``)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)


def configure(requested: int | None, *, processes: int = 1, start_torch: bool = True) -> ThreadChoice:
    """Resolve ``--threads`` (None = automatic) and apply it, once, at start-up.

    ``processes``: worker processes that will run at once (a batch); each gets its share, set
    in the environment they inherit. Raises UserInputError for a count below 1.
    """
    from .errors import UserInputError

    if requested is not None and requested < 1:
        raise UserInputError(f"--threads {requested}: must be a whole number >= 1 (or leave it out for automatic)")
    choice = resolve_threads(requested)
    per_process = share_per_process(choice.threads, processes)
    apply_threads(per_process, start_torch=start_torch and processes <= 1)
    if processes > 1:
        choice = ThreadChoice(per_process, f"{per_process} per scene ({choice.threads} shared by {processes} "
                                           "scenes at once)", choice.warning)
    return choice
