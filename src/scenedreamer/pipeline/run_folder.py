"""The run folder: what a generation run writes, and the commit record that makes it resumable.

    RUN/config.json            resolved GenerateConfig (plain JSON, loadable back)
    RUN/trajectory.json        the camera path used (nerfstudio transforms.json layout)
    RUN/events.jsonl           progress events, one JSON object a line
    RUN/progress.json          commit record: last completed step + its checkpoint (written last)
    RUN/support/               the support database (SQLite + arrays)
    RUN/checkpoints/step_NNNN.pt   representation + fitting state (+ refiner adapter and its optimiser) after each completed step
    RUN/adapter.safetensors    refinement adapter weights (diffusion refiner only)
    RUN/scene.pt               final representation checkpoint
    RUN/scene.ply              standard 3DGS splats
    RUN/video.mp4              render along the trajectory
    RUN/transforms.json, images/, depths/   the support views as a nerfstudio dataset

A step is complete when progress.json names it; everything a step writes before that is either
ignored (checkpoint files of later steps) or rolled back on resume (support views of later steps).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write_json
from ..config_io import config_diff, load_config, save_config
from ..errors import UserInputError
from .config import GenerateConfig

CONFIG_NAME = "config.json"
PROGRESS_NAME = "progress.json"
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class Progress:
    """last_step: the last completed pipeline step (-1: none; 0: initialisation; k: trajectory
    camera k). checkpoint: file name (under checkpoints/) of the state after that step."""

    last_step: int = -1
    checkpoint: str = ""


class RunFolder:
    """Paths and commit records of one run folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # paths -----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def support_dir(self) -> Path:
        return self.root / "support"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def adapter_path(self) -> Path:
        return self.root / "adapter.safetensors"

    def holds_run(self) -> bool:
        return self.config_path.exists() or self.support_dir.exists()

    # lifecycle -------------------------------------------------------------
    def prepare(self, config: GenerateConfig, resume: bool, overwrite: bool) -> Progress:
        """Create, resume or overwrite the folder. Returns the progress to continue from.

        Refuses (UserInputError) a folder that already holds a run unless resume or overwrite,
        and a resume whose saved config differs from ``config`` (naming the differences).
        """
        if self.root.exists() and not self.root.is_dir():
            raise UserInputError(f"{self.root}: output path exists and is not a folder")
        if resume:
            if not self.config_path.exists():
                raise UserInputError(f"{self.root}: nothing to resume (no {CONFIG_NAME})")
            saved = load_config(GenerateConfig, self.config_path)
            diff = config_diff(saved, config)
            if diff:
                shown = "; ".join(diff[:4]) + (" ..." if len(diff) > 4 else "")
                raise UserInputError(f"{self.root}: cannot resume a run made with another config ({shown})")
            return self.read_progress()
        if self.holds_run():
            if not overwrite:
                raise UserInputError(f"{self.root}: folder already holds a run "
                                     "(use --resume to continue it or --overwrite to replace it)")
            self._clear()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserInputError(f"{self.root}: cannot create the output folder ({err.strerror})") from None
        save_config(self.config_path, config)
        return Progress()

    def _clear(self) -> None:
        for child in self.root.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def read_progress(self) -> Progress:
        path = self.root / PROGRESS_NAME
        if not path.exists():
            return Progress()
        try:
            data = json.loads(path.read_text())
            return Progress(last_step=int(data["last_step"]), checkpoint=str(data["checkpoint"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserInputError(f"{path}: corrupt progress record") from None

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:04d}.pt"

    def commit_step(self, step: int) -> None:
        """Record ``step`` as completed (its checkpoint must already be written) and prune old
        checkpoints. This single atomic write is what makes the step durable."""
        atomic_write_json(self.root / PROGRESS_NAME,
                          {"last_step": step, "checkpoint": self.checkpoint_path(step).name})
        for old in sorted(self.checkpoints_dir.glob("step_*.pt"))[:-KEEP_CHECKPOINTS]:
            if old.name != self.checkpoint_path(step).name:
                old.unlink(missing_ok=True)
