"""A running `scenedreamer view` on the suite's shared tiny run (tests/conftest.py tiny_run), for
the viewer tests."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "scenedreamer.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, **kw)


def start_view(run, *extra):
    """(base URL, port, process) of `scenedreamer view RUN --no-browser [extra]` on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scenedreamer.cli", "view", str(run), "--no-browser",
                             "--port", str(port), *map(str, extra)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    # wait for the event (the "serving ... at URL" line, printed once the port is bound), not for
    # a deadline: on a busy machine the start-up (imports, the scene manifest) can take minutes
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(f"view did not start: {line}{proc.stderr.read()}")
    return f"http://127.0.0.1:{port}", port, proc


def stop_view(proc) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def viewer(tiny_run):
    """(base URL, port, process) of `scenedreamer view tiny_run --no-browser` on a free port."""
    url, port, proc = start_view(tiny_run)
    yield url, port, proc
    stop_view(proc)
