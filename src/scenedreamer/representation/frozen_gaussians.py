"""Frozen Gaussians: the part of a long world that no active camera sees, kept on disk.

Fitting a world of hundreds of views touches only the Gaussians near the current cameras (the
active set, in memory as an ordinary GaussianScene with its Adam state); the others are frozen:
not rendered, not optimised, not in RAM. ``freeze`` moves rows out of the active scene into a new
chunk file; ``thaw`` brings back the frozen rows a new region reaches. Freezing keeps a
Gaussian's parameters and its Adam moments, so thawing gives it back exactly as it was.

Storage (the run's checkpoints folder; pipeline/run_contract.py names the files):

    frozen_SSSSS.pt   one chunk: the rows frozen at pipeline step SSSSS, written once (atomically)
                      and never changed: a torch.save dict of plain tensors, "<param>",
                      "<param>.exp_avg", "<param>.exp_avg_sq" for each of gaussians.PARAM_NAMES

and the index (``to_extra``: which chunks exist, their sha256, bounding boxes and which of their
rows are still frozen) travels inside every step checkpoint, so a checkpoint and the immutable
chunk files are the whole world at that step: resume and revert need nothing else. A chunk
whose rows have all been thawed is retired; its file is removed once no kept checkpoint can
name it (``collect_garbage``, before each step checkpoint). Chapter snapshots hard-link chunk files like step checkpoints.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import atomic_write_bytes
from ..errors import UserInputError
from .active_region import box_in_region, points_in_region
from .gaussians import PARAM_NAMES, GaussianScene

CHUNK_PATTERN = r"^frozen_\d{5}\.pt$"
"""The chunk file names (for the run's list of its own files)."""
MOMENTS = ("exp_avg", "exp_avg_sq")
"""Adam's per-row state kept with each frozen row (torch.optim.Adam's state names)."""
SIGMAS = 3.0
"""A Gaussian reaches this many standard deviations (its largest axis) from its centre: its ball
decides whether a region sees it."""


def chunk_name(step: int) -> str:
    return f"frozen_{step:05d}.pt"


@dataclass
class FrozenChunk:
    """One chunk file: ``count`` rows, their centres' box [low, high] widened by the largest
    reach (``SIGMAS`` x scale) among them, and ``alive`` (count,) bool: rows still frozen."""

    name: str
    sha256: str
    low: Tensor
    high: Tensor
    alive: Tensor

    def to_extra(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "low": self.low, "high": self.high, "alive": self.alive}


@dataclass
class FrozenGaussians:
    """The frozen rows of a world (module docstring). ``folder``: where the chunk files are."""

    folder: Path
    chunks: list[FrozenChunk] = field(default_factory=list)
    retired: dict[str, int] = field(default_factory=dict)
    """chunk name -> the step at which its last frozen row was thawed (its file is still on disk)"""
    _balls: dict[str, Tensor] = field(default_factory=dict, repr=False)
    """chunk name -> (count, 4) float32: each row's centre and reach (``SIGMAS`` x its largest
    scale), computed from the chunk's saved rows: the compact form a region is tested against,
    so a step reads a chunk file only when some row of it is thawed. A cache (16 bytes a row, not
    saved): filled when a chunk is written or first read, the same values either way."""

    # ---------------------------------------------------------------- index
    @property
    def count(self) -> int:
        """Frozen rows in the world."""
        return sum(int(c.alive.sum()) for c in self.chunks)

    def is_empty(self) -> bool:
        return not self.chunks and not self.retired

    def to_extra(self) -> dict[str, Any]:
        """The index as plain data for a checkpoint's ``extra`` (tensors and JSON-like values)."""
        return {"chunks": [c.to_extra() for c in self.chunks], "retired": dict(self.retired)}

    @classmethod
    def from_extra(cls, folder: str | os.PathLike, data: dict[str, Any] | None) -> "FrozenGaussians":
        """The index saved by ``to_extra`` (None or {}: nothing frozen)."""
        data = data or {}
        chunks = [FrozenChunk(c["name"], c["sha256"], c["low"], c["high"], c["alive"].bool())
                  for c in data.get("chunks", [])]
        return cls(Path(folder), chunks, {str(k): int(v) for k, v in data.get("retired", {}).items()})

    # ---------------------------------------------------------------- moving rows
    def freeze(self, scene: GaussianScene, optimizer_state: dict | None, rows: Tensor,
               step: int) -> dict | None:
        """Move the rows ``rows`` (N,) bool of ``scene`` into a new chunk (named by ``step``: one
        freeze per step) and out of the scene and ``optimizer_state`` (Adam's state_dict over
        scene.param_groups(), or None). Returns the optimizer state of the remaining rows."""
        if not bool(rows.any()):
            return optimizer_state
        name = chunk_name(step)
        if any(c.name == name for c in self.chunks) or name in self.retired:
            raise RuntimeError(f"frozen Gaussians: step {step} already wrote {name}")
        taken = _take_rows(scene, optimizer_state, rows)
        payload = io.BytesIO()
        saved = {k: v.detach().cpu().contiguous() for k, v in taken.items()}
        torch.save(saved, payload)
        data = payload.getvalue()
        atomic_write_bytes(self.folder / name, data)
        balls = _balls_of(saved)            # the file's values: a reopened store computes the same
        self._balls[name] = balls
        means, reach = balls[:, :3], balls[:, 3].amax()
        self.chunks.append(FrozenChunk(name, hashlib.sha256(data).hexdigest(), means.amin(0) - reach,
                                       means.amax(0) + reach, torch.ones(means.shape[0], dtype=torch.bool)))
        return _remove_rows(scene, optimizer_state, rows)

    def thaw(self, scene: GaussianScene, optimizer_state: dict | None, planes: Tensor,
             step: int) -> dict | None:
        """Append to ``scene`` (and ``optimizer_state``) every frozen row whose ball reaches into
        the region ``planes`` (P, 6, 4; active_region.py), with its saved moments. Chunks left
        with no frozen row are retired at ``step``. Returns the grown optimizer state."""
        still = []
        for chunk in self.chunks:
            if not box_in_region(planes, chunk.low, chunk.high):
                still.append(chunk)
                continue
            wanted = chunk.alive & self._reaching(chunk, planes)
            if bool(wanted.any()):
                rows = self._load(chunk)
                optimizer_state = _append_rows(scene, optimizer_state, {k: v[wanted] for k, v in rows.items()})
                chunk.alive = chunk.alive & ~wanted
            if bool(chunk.alive.any()):
                still.append(chunk)
            else:
                self.retired[chunk.name] = step
                self._balls.pop(chunk.name, None)
        self.chunks = still
        return optimizer_state

    def whole(self, scene: GaussianScene, planes: Tensor | None = None) -> GaussianScene:
        """A new GaussianScene of the whole world: ``scene``'s rows, then every frozen row
        (chunk by chunk), or only the frozen rows reaching into the region ``planes`` when given;
        the same config, device and scene extent. ``scene`` and the index are not changed."""
        parts = {name: [getattr(scene, name).detach()] for name in PARAM_NAMES}
        for chunk in self.chunks:
            if planes is not None and not box_in_region(planes, chunk.low, chunk.high):
                continue
            wanted = chunk.alive if planes is None else chunk.alive & self._reaching(chunk, planes)
            if not bool(wanted.any()):
                continue
            rows = self._load(chunk)
            for name in PARAM_NAMES:
                parts[name].append(rows[name][wanted].to(parts[name][0]))
        world = GaussianScene(scene.config, device=scene.means.device, num=0, dtype=scene.means.dtype)
        for name in PARAM_NAMES:
            setattr(world, name, nn.Parameter(torch.cat(parts[name])))
        world.scene_extent.copy_(scene.scene_extent)
        world.densify_state.reset(world.num_gaussians)
        return world

    def collect_garbage(self, step: int, kept_checkpoints: int) -> None:
        """Before the checkpoint of ``step`` is written: forget the chunks retired so long ago
        that no checkpoint on disk names them, before or after this one is committed (the
        ``kept_checkpoints`` newest are kept; a chunk retired at step r is named by checkpoints
        before r only), and
        remove every chunk file of an earlier step that the index no longer knows (those, and
        any a kill left behind between this call and the next). Called the same way by a run
        and its resumed twin, so both write the same index."""
        for name, retired_at in list(self.retired.items()):
            if retired_at <= step - kept_checkpoints:
                del self.retired[name]
        known = {c.name for c in self.chunks} | set(self.retired)
        for path in self.folder.glob("frozen_*.pt"):
            digits = path.stem.removeprefix("frozen_")
            if digits.isdigit() and int(digits) < step and path.name not in known:
                path.unlink(missing_ok=True)

    def _reaching(self, chunk: FrozenChunk, planes: Tensor) -> Tensor:
        """(count,) bool: the chunk's rows whose ball reaches into the region ``planes``."""
        balls = self._balls.get(chunk.name)
        if balls is None:
            balls = self._balls[chunk.name] = _balls_of(self._load(chunk))
        return points_in_region(planes, balls[:, :3], balls[:, 3])

    def _load(self, chunk: FrozenChunk) -> dict[str, Tensor]:
        path = self.folder / chunk.name
        try:
            data = path.read_bytes()
        except OSError as err:
            raise UserInputError(f"{path}: frozen Gaussians of this run cannot be read ({err.strerror})") from None
        if hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise UserInputError(f"{path}: frozen Gaussians are corrupt (checksum mismatch with the checkpoint)")
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# ---- rows of a scene and its Adam state ------------------------------------------------------
def _balls_of(rows: dict[str, Tensor]) -> Tensor:
    """(count, 4) float32: the centres of saved ``rows`` and their reach (``SIGMAS`` x largest scale)."""
    reach = SIGMAS * rows["log_scales"].float().exp().amax(-1, keepdim=True)
    return torch.cat([rows["means"].float(), reach], -1)


def _state_of(optimizer_state: dict | None, index: int) -> dict | None:
    if optimizer_state is None:
        return None
    return optimizer_state["state"].get(index)


def _take_rows(scene: GaussianScene, optimizer_state: dict | None, rows: Tensor) -> dict[str, Tensor]:
    """The parameters and Adam moments of ``rows`` (zeros where Adam has no state yet)."""
    taken = {}
    for index, name in enumerate(PARAM_NAMES):
        param = getattr(scene, name).detach()
        taken[name] = param[rows]
        state = _state_of(optimizer_state, index)
        for moment in MOMENTS:
            value = state.get(moment) if state is not None else None
            taken[f"{name}.{moment}"] = value[rows] if value is not None else torch.zeros_like(param[rows])
    return taken


def _remove_rows(scene: GaussianScene, optimizer_state: dict | None, rows: Tensor) -> dict | None:
    keep = ~rows
    for index, name in enumerate(PARAM_NAMES):
        setattr(scene, name, nn.Parameter(getattr(scene, name).detach()[keep]))
        state = _state_of(optimizer_state, index)
        if state is not None:
            for moment in MOMENTS:
                if moment in state:
                    state[moment] = state[moment][keep]
    scene.densify_state.reset(scene.num_gaussians)
    return optimizer_state


def _append_rows(scene: GaussianScene, optimizer_state: dict | None, rows: dict[str, Tensor]) -> dict | None:
    for index, name in enumerate(PARAM_NAMES):
        current = getattr(scene, name).detach()
        setattr(scene, name, nn.Parameter(torch.cat([current, rows[name].to(current)])))
        state = _state_of(optimizer_state, index)
        if state is not None:
            for moment in MOMENTS:
                if moment in state:
                    state[moment] = torch.cat([state[moment], rows[f"{name}.{moment}"].to(state[moment])])
    scene.densify_state.reset(scene.num_gaussians)
    return optimizer_state
