"""Loading a finished run folder for the render/export commands: a thin name for the run-folder
contract's check (pipeline/run_contract.py), kept for callers of the previous release."""

from __future__ import annotations

import os
from pathlib import Path

from ..pipeline.run_contract import require_finished_run


def check_finished_run(root: str | os.PathLike, needs: str) -> Path:
    """The run folder ``root`` as a Path, after ``require_finished_run(root, needs)``: a run
    (marker), finished, holding ``needs`` (e.g. "scene.ply"); else one-line UserInputError."""
    return require_finished_run(root, needs)
