"""The fitting loop: optimise a SceneRepresentation on the support database.

One step: pick support views (the focus views and replayed old ones), cut a random square PATCH of
each (a crop is just a camera with a shifted principal point and a smaller size, so SSIM has
neighbourhoods and the NeRF gets the crop's known depth as its sampling hint), render the patches,
and minimise

    colour (L1 + SSIM) + depth (relative L1 on known depth) + optional opacity / distortion / TV,

with per-pixel weights: 0 on invalid pixels, ``inpainted_weight`` on generated ones, 1 on original
content. Learning rates follow a warmup + exponential decay schedule over the call's steps.
The function is plain: all state it keeps between calls is the returned FitState.

Representation hooks, declared with defaults on SceneRepresentation: ``render_with_extras``
returns the render plus the per-ray "distortion" and "free_space" terms (line-of-sight losses)
when the representation has them, ``total_variation()`` the TV penalty or None, and the
``sample_generator`` attribute receives the fit's generator (sample placement) during a fit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import InternalError, RunFailedError, UserInputError
from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..support.records import ViewRecord
from .base import RenderOutput, SceneRepresentation
from .losses import depth_loss, l1_colour_loss, psnr, ssim_loss, weighted_mean
from .config import FitConfig


class SupportViews(Protocol):
    """The read API of the support database that fitting needs."""

    def get(self, view_id: int) -> ViewRecord: ...
    def ids(self) -> list[int]: ...
    def __len__(self) -> int: ...
    def sample_replay(self, n: int, generator: torch.Generator) -> list[int]: ...


class FitDivergedError(RunFailedError):
    """A loss or gradient became NaN/inf. ``state`` is the last good FitState (the representation's
    parameters were not touched by the failing step)."""

    def __init__(self, message: str, state: "FitState") -> None:
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class FitState:
    """What fitting carries between calls: the global step and the optimizer's state_dict.

    Save it with ``checkpoint.save_checkpoint(path, rep, optimizer_state=s.optimizer_state,
    extra=s.to_extra())`` and get it back with ``FitState.from_checkpoint(ckpt)``.
    """

    step: int = 0
    optimizer_state: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_extra(self) -> dict[str, Any]:
        return {"fit_step": self.step, "fit_metrics": dict(self.metrics)}

    @staticmethod
    def from_checkpoint(ckpt: Any) -> "FitState":
        """FitState from a loaded checkpoint.Checkpoint (step 0 if it holds none)."""
        extra = ckpt.extra or {}
        return FitState(step=int(extra.get("fit_step", 0)), optimizer_state=ckpt.optimizer_state,
                        metrics=dict(extra.get("fit_metrics", {})))


def learning_rate_factor(step_in_call: int, steps: int, config: FitConfig) -> float:
    """Warmup (linear from 1/warmup) then exponential decay to ``lr_final_ratio`` at the call's end."""
    warm = min(1.0, (step_in_call + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    progress = step_in_call / max(steps - 1, 1)
    return warm * math.exp(math.log(config.lr_final_ratio) * progress)


def make_optimizer(representation: SceneRepresentation, config: FitConfig) -> torch.optim.Adam:
    """Adam over the representation's parameter groups; each group remembers its base lr."""
    groups = []
    for g in representation.param_groups():
        g = dict(g)
        g["lr"] = g["lr"] * config.lr_scale
        g["base_lr"] = g["lr"]
        groups.append(g)
    return torch.optim.Adam(groups, eps=config.adam_eps)


@dataclass(frozen=True)
class PatchBatch:
    """Training patches of one step: cameras (P crops) and their targets (P, p, p[, 3])."""

    cameras: Cameras
    rgb: Tensor
    depth: Tensor
    valid: Tensor
    inpainted: Tensor


def crop_camera(view: ViewRecord, top: int, left: int, size: int) -> Cameras:
    """The camera that sees exactly the (size x size) crop of ``view`` starting at (top, left)."""
    K = view.K.clone().float()
    K[0, 2] -= left
    K[1, 2] -= top
    return Cameras(K, view.c2w.float(), size, size)


def sample_patches(views: list[ViewRecord], patch_size: int, generator: torch.Generator) -> PatchBatch:
    """One random square crop per view (the crop side is clipped to the smallest view)."""
    size = min([patch_size] + [min(v.height, v.width) for v in views])
    cams, rgb, depth, valid, inp = [], [], [], [], []
    for v in views:
        top = int(torch.randint(0, v.height - size + 1, (1,), generator=generator, device=generator.device))
        left = int(torch.randint(0, v.width - size + 1, (1,), generator=generator, device=generator.device))
        sl = (slice(top, top + size), slice(left, left + size))
        cams.append(crop_camera(v, top, left, size))
        rgb.append(v.rgb[sl])
        depth.append(v.depth[sl])
        valid.append(v.valid[sl])
        inp.append(v.inpainted[sl])
    return PatchBatch(Cameras.cat(cams), torch.stack(rgb), torch.stack(depth), torch.stack(valid),
                      torch.stack(inp))


class _ViewCache:
    """LRU cache of database reads within one fit() call (views are immutable once stored)."""

    def __init__(self, database: SupportViews, capacity: int) -> None:
        self.database, self.capacity = database, max(1, capacity)
        self.cache: OrderedDict[int, ViewRecord] = OrderedDict()

    def get(self, view_id: int) -> ViewRecord:
        if view_id in self.cache:
            self.cache.move_to_end(view_id)
            return self.cache[view_id]
        view = self.database.get(view_id)
        self.cache[view_id] = view
        if len(self.cache) > self.capacity:
            self.cache.popitem(last=False)
        return view


def choose_views(database: SupportViews, view_ids: list[int] | None, count: int, replay_fraction: float,
                 generator: torch.Generator) -> list[int]:
    """View ids for one step: focus views (uniform) plus ``replay_fraction`` replayed ones."""
    if not view_ids:
        return database.sample_replay(count, generator)
    n_replay = int(round(count * replay_fraction)) if len(database) > len(view_ids) else 0
    picks = torch.randint(0, len(view_ids), (count - n_replay,), generator=generator, device=generator.device)
    chosen = [view_ids[int(i)] for i in picks]
    if n_replay > 0:
        chosen += database.sample_replay(n_replay, generator)
    return chosen


def _clone_state(obj: Any) -> Any:
    """Deep copy of an optimizer state_dict (tensors cloned) so later steps cannot mutate it."""
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone_state(v) for v in obj]
    return obj


def _snapshot(step: int, optimizer: torch.optim.Optimizer, metrics: dict[str, float]) -> FitState:
    """A FitState that later optimiser steps cannot change."""
    return FitState(step, _clone_state(optimizer.state_dict()), dict(metrics))


def _grads_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads)  # one fused pass; NaN/inf propagate into the norms
    return bool(torch.isfinite(torch.stack(norms)).all())


def step_losses(representation: SceneRepresentation, batch: PatchBatch,
                config: FitConfig) -> tuple[dict[str, Tensor], RenderOutput]:
    """All loss terms of one batch (each a scalar tensor) plus "total", and the render itself."""
    device = next(representation.parameters()).device
    rgb_t, depth_t = batch.rgb.to(device), batch.depth.to(device)
    valid = batch.valid.to(device)
    weights = valid.float() * torch.where(batch.inpainted.to(device),
                                          torch.tensor(config.inpainted_weight, device=device),
                                          torch.tensor(1.0, device=device))
    background = None if config.background is None else torch.tensor(config.background, device=device)
    hint = torch.where(valid, depth_t, torch.zeros_like(depth_t)) if config.use_depth_hint else None
    out, extras = representation.render_with_extras(batch.cameras, background, hint)
    terms: dict[str, Tensor] = {"l1": l1_colour_loss(out.rgb, rgb_t, weights)}
    total = config.l1_weight * terms["l1"]
    if config.ssim_weight > 0 and out.rgb.shape[1] >= config.ssim_window:
        terms["ssim"] = ssim_loss(out.rgb, rgb_t, weights, config.ssim_window)
        total = total + config.ssim_weight * terms["ssim"]
    if config.depth_weight > 0:
        terms["depth"] = depth_loss(out.depth, depth_t, weights)
        total = total + config.depth_weight * terms["depth"]
    if config.opacity_weight > 0:
        terms["opacity"] = weighted_mean(1.0 - out.opacity, valid.float())
        total = total + config.opacity_weight * terms["opacity"]
    if config.distortion_weight > 0 and "distortion" in extras:
        terms["distortion"] = extras["distortion"].mean()
        total = total + config.distortion_weight * terms["distortion"]
    if config.free_space_weight > 0 and "free_space" in extras:
        terms["free_space"] = weighted_mean(extras["free_space"], weights)
        total = total + config.free_space_weight * terms["free_space"]
    tv = representation.total_variation() if config.tv_weight > 0 else None
    if tv is not None:
        terms["tv"] = tv
        total = total + config.tv_weight * tv
    terms["total"] = total
    return terms, out


def fit(representation: SceneRepresentation, database: SupportViews, config: FitConfig, steps: int,
        generator: torch.Generator, state: FitState | None = None, on_event: EventSink | None = None,
        view_ids: list[int] | None = None) -> FitState:
    """Optimise ``representation`` on the support database for ``steps`` steps.

    view_ids: the views to focus on (e.g. the newest); ``replay_fraction`` of every batch still
        comes from ``database.sample_replay`` so old views are not forgotten. None: replay only.
    state: the FitState returned by the previous call (resumes the step counter and Adam moments).
    Emits ProgressEvents (stage "fit", metrics loss and psnr). Raises FitDivergedError (with the
    last good FitState) when a loss or gradient is not finite; UserInputError for bad arguments.
    Returns the new FitState. The representation is left in the train/eval mode it came in.
    """
    if steps < 0:
        raise InternalError(f"fit: steps must be >= 0, got {steps}")
    if len(database) == 0:
        raise UserInputError("fit: the support database is empty; nothing to fit")
    if view_ids is not None:
        known = set(database.ids())
        missing = [v for v in view_ids if v not in known]
        if missing:
            raise InternalError(f"fit: view ids {missing} are not in the support database")
    state = state or FitState()
    optimizer = make_optimizer(representation, config)
    fresh_base_lrs = [g["base_lr"] for g in optimizer.param_groups]
    if state.optimizer_state is not None:
        try:
            optimizer.load_state_dict(_clone_state(state.optimizer_state))
        except (ValueError, KeyError) as err:
            raise UserInputError(f"fit: saved optimizer state does not match the representation ({err})") from None
        # load_state_dict restores the saved lrs; this call's config decides them.
        for g, base in zip(optimizer.param_groups, fresh_base_lrs):
            g["lr"] = g["base_lr"] = base
    cache = _ViewCache(database, config.max_cached_views)
    was_training = representation.training
    representation.train()
    representation.sample_generator = generator
    global_step, metrics = state.step, dict(state.metrics)
    try:
        for k in range(steps):
            factor = learning_rate_factor(k, steps, config)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            ids = choose_views(database, view_ids, config.patches_per_step, config.replay_fraction, generator)
            batch = sample_patches([cache.get(i) for i in ids], config.patch_size, generator)
            terms, rendered = step_losses(representation, batch, config)
            total = terms["total"]
            if not torch.isfinite(total):
                bad = [n for n, t in terms.items() if not torch.isfinite(t).all()]
                raise FitDivergedError(f"fit diverged at step {global_step}: loss terms {bad} are not finite "
                                       f"(views {sorted(set(ids))}); the last good state is kept",
                                       _snapshot(global_step, optimizer, metrics))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.check_gradients and not _grads_finite(optimizer):
                optimizer.zero_grad(set_to_none=True)
                raise FitDivergedError(f"fit diverged at step {global_step}: non-finite gradients "
                                       f"(views {sorted(set(ids))}); the last good state is kept",
                                       _snapshot(global_step, optimizer, metrics))
            optimizer.step()
            representation.post_step(global_step, optimizer, steps_left=steps - k - 1)
            global_step += 1
            if (k + 1) % config.log_every == 0 or k == steps - 1:
                valid = batch.valid.to(rendered.rgb.device)
                metrics = {"loss": float(total.detach()),
                           "psnr": psnr(rendered.rgb, batch.rgb.to(valid.device), valid)}
                emit(on_event, "fit", step=k + 1, total=steps, message=f"fit step {global_step}", **metrics)
    finally:
        representation.train(was_training)
        representation.sample_generator = None
    return _snapshot(global_step, optimizer, metrics)
