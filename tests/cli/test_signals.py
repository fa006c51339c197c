"""Issue 20 item 6: SIGTERM or SIGINT at any moment (start-up included, a fit in progress
included) ends `generate` promptly with ONE stderr line saying how to resume: no traceback, no
process left computing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--resolution", "32x32", "--frames", "3", "--representation", "gaussians", "--quiet",
        # a fit that would run for hours, reporting every step: the signal lands inside it
        "--set", "init.fit_steps=1000000", "--set", "fit.log_every=1"]
EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}
WAIT_S = 120
"""Longest wait for a state (handlers installed, first fit event); generous for a busy machine,
it is a deadline for a failure report, not a sleep."""
END_S = 20
"""The process must be gone this long after the signal. The requirement is 5 s on a quiet
machine (a fit step at 32x32 takes milliseconds); the margin is for a loaded CI machine."""


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "scenedreamer.cli", "generate", "a forest", *TINY,
                             "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"generate ended before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never reached: {what}")
        time.sleep(0.02)


def _handlers_installed(pid: int) -> bool:
    """Both SIGINT and SIGTERM are caught (the CLI installs them first thing at import)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return all(caught & (1 << (sig - 1)) for sig in (signal.SIGINT, signal.SIGTERM))


def _fitting(events: Path) -> bool:
    try:
        lines = events.read_text().splitlines()
    except OSError:
        return False
    # (the last line may be half-written: only complete ones are read)
    return any(json.loads(line).get("stage") == "fit" for line in lines if line.endswith("}"))


def _assert_ended_in_one_line(proc: subprocess.Popen, sig: int, resume_hint: bool) -> str:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=END_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {END_S} s after {sig.name}")
    assert proc.returncode == EXIT[sig], err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    if resume_hint:
        assert lines[0].endswith("interrupted; resume with --resume"), err
    with pytest.raises(ProcessLookupError):      # reaped: nothing left computing
        os.kill(proc.pid, 0)
    return lines[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_start_up_is_one_line(tmp_path, sig):
    proc = _start(tmp_path / "run")
    _wait_for(lambda: _handlers_installed(proc.pid), proc, "the signal handlers")
    _assert_ended_in_one_line(proc, sig, resume_hint=False)


@pytest.mark.slow         # ~30 s each on a busy 2-core machine (start-up and the first view)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_fit_ends_the_run_with_how_to_resume(tmp_path, sig):
    proc = _start(tmp_path / "run")
    events = tmp_path / "run" / "events.jsonl"
    _wait_for(lambda: _fitting(events), proc, "the first fit event in events.jsonl")
    _assert_ended_in_one_line(proc, sig, resume_hint=True)
