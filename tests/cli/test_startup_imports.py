"""Start-up stays light (issue 21 item 2): `scenedreamer --help` and a command's own `--help`
do not import torch (checked in a fresh interpreter's sys.modules, not by the clock)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PROBE = ("import sys\nfrom scenedreamer.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n")


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["view", "--help"], ["batch", "--help"]])
def test_help_does_not_import_torch(argv):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "NO-TORCH", out.stderr
    assert "usage: scenedreamer" in out.stdout
