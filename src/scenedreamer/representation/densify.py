"""Adaptive density control for 3D Gaussians (3DGS, Kerbl et al. 2023): grow where the
screen-space positional gradient is large (duplicate small Gaussians, split large ones), prune
transparent or huge ones, and periodically reset opacities.

Written like gsplat's ``strategy/default.py``: hyper-parameters in a frozen ``DensifyConfig``,
the running statistics in an explicit ``DensifyState``, and every change of the Gaussian set also
applied to the optimizer's per-parameter state (Adam moments) in place, so optimisation goes on
without a rebuilt optimizer.

The module being densified must hold these per-Gaussian ``nn.Parameter`` attributes (first
dimension N): ``means`` (N,3), ``log_scales`` (N,3), ``quats`` (N,4) wxyz, ``opacity_logits``
(N,), and any others named in ``param_names`` (they are copied along).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from .rasterize.projection import quat_to_rotmat
from .config import DensifyConfig


@dataclass
class DensifyState:
    """Running statistics since the last densification (one entry per Gaussian).

    grad2d_sum: (N,) sum of screen-space mean-gradient norms over the views that saw it.
    count: (N,) number of views that saw it.
    """

    grad2d_sum: Tensor
    count: Tensor
    generator: torch.Generator | None = field(default=None, repr=False)

    @staticmethod
    def empty(n: int, device: torch.device | str | None = None) -> "DensifyState":
        return DensifyState(torch.zeros(n, device=device), torch.zeros(n, device=device))

    def reset(self, n: int) -> None:
        device = self.grad2d_sum.device
        self.grad2d_sum = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)


@dataclass(frozen=True)
class DensifyReport:
    """What one densification step did (counts of Gaussians)."""

    duplicated: int = 0
    split: int = 0
    pruned: int = 0
    reset_opacity: bool = False


def accumulate_gradients(state: DensifyState, means2d_grad: Tensor, visible: Tensor,
                         width: int, height: int) -> None:
    """Add one render's screen-space gradient norms to the state.

    means2d_grad (B, N, 2): d loss / d projected centres (pixels); visible (B, N) bool.
    Gradients are scaled by half the image size (pixels -> NDC-like units) so the threshold does
    not depend on resolution, as gsplat does.
    """
    scale = means2d_grad.new_tensor([width / 2.0, height / 2.0])
    norms = (means2d_grad * scale).norm(dim=-1) * visible                  # (B, N)
    state.grad2d_sum += norms.sum(0)
    state.count += visible.sum(0).to(state.count.dtype)


ParamFn = Callable[[str, Tensor], Tensor]
StateFn = Callable[[str, Tensor], Tensor]


def update_parameters(module: nn.Module, names: list[str], optimizer: torch.optim.Optimizer | None,
                      param_fn: ParamFn, state_fn: StateFn) -> None:
    """Replace ``module.<name>`` by ``nn.Parameter(param_fn(name, old))`` for every name, and map
    each per-Gaussian optimizer state tensor (e.g. Adam's exp_avg) through ``state_fn`` in place.

    The optimizer keeps its groups and hyper-parameters; only the parameter objects and their
    state change (the group that held the old parameter now holds the new one).
    """
    for name in names:
        old = getattr(module, name)
        new = nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        setattr(module, name, new)
        if optimizer is None:
            continue
        for group in optimizer.param_groups:
            for i, p in enumerate(group["params"]):
                if p is old:
                    group["params"][i] = new
                    state = optimizer.state.pop(old, None)
                    if state is not None:
                        optimizer.state[new] = {
                            k: (state_fn(k, v) if torch.is_tensor(v) and v.ndim > 0
                                and v.shape[0] == old.shape[0] else v)
                            for k, v in state.items()}


def _zeros_like_rows(v: Tensor, n: int) -> Tensor:
    return v.new_zeros((n,) + tuple(v.shape[1:]))


def duplicate(module: nn.Module, names: list[str], optimizer, mask: Tensor) -> int:
    """Append a copy of every Gaussian in ``mask`` (N,) bool; new optimizer state is zero."""
    sel = mask.nonzero().squeeze(1)
    update_parameters(module, names, optimizer,
                      lambda _, p: torch.cat([p, p[sel]]),
                      lambda _, v: torch.cat([v, _zeros_like_rows(v, sel.numel())]))
    return int(sel.numel())


def split(module: nn.Module, names: list[str], optimizer, mask: Tensor, divisor: float,
          generator: torch.Generator | None) -> int:
    """Replace every Gaussian in ``mask`` by two children sampled from it (3DGS split): centres
    drawn from the parent's Gaussian, scales divided by ``divisor``; other attributes copied.
    Children are appended at the end; their optimizer state starts at zero."""
    sel = mask.nonzero().squeeze(1)
    keep = (~mask).nonzero().squeeze(1)
    n = sel.numel()
    scales = torch.exp(module.log_scales.detach()[sel])                     # (n, 3)
    R = quat_to_rotmat(module.quats.detach()[sel])                          # (n, 3, 3)
    noise = torch.randn((2, n, 3), generator=generator, device=scales.device, dtype=scales.dtype)
    offsets = torch.einsum("nij,knj->kni", R, noise * scales)               # (2, n, 3)

    def children(name: str, p: Tensor) -> Tensor:
        parent = p[sel]
        if name == "means":
            kids = (parent.unsqueeze(0) + offsets).reshape(2 * n, 3)
        elif name == "log_scales":
            kids = (parent - math.log(divisor)).repeat(2, *([1] * (p.ndim - 1)))
        else:
            kids = parent.repeat(2, *([1] * (p.ndim - 1)))
        return torch.cat([p[keep], kids])

    update_parameters(module, names, optimizer, children,
                      lambda _, v: torch.cat([v[keep], _zeros_like_rows(v, 2 * n)]))
    return n


def remove(module: nn.Module, names: list[str], optimizer, mask: Tensor) -> int:
    """Delete every Gaussian in ``mask`` (N,) bool, with its optimizer state."""
    keep = (~mask).nonzero().squeeze(1)
    update_parameters(module, names, optimizer, lambda _, p: p[keep], lambda _, v: v[keep])
    return int(mask.sum())


def reset_opacity(module: nn.Module, optimizer, value: float) -> None:
    """Clamp every opacity down to ``value`` and zero the opacity's optimizer state."""
    ceiling = math.log(value / (1.0 - value))
    update_parameters(module, ["opacity_logits"], optimizer,
                      lambda _, p: p.clamp_max(ceiling), lambda _, v: torch.zeros_like(v))


def densify_step(module: nn.Module, names: list[str], optimizer: torch.optim.Optimizer | None,
                 state: DensifyState, config: DensifyConfig, step: int, scene_extent: float,
                 generator: torch.Generator | None = None, steps_left: int | None = None) -> DensifyReport:
    """Apply the schedule at ``step`` (call after the optimizer step). Returns what changed.

    Order as in 3DGS: grow (duplicate, then split) from the accumulated gradients, prune, reset
    the statistics; opacity reset on its own schedule, when the fit call has ``steps_left``
    >= ``config.reset_recovery_steps`` steps after this one to recover (None: not known, reset).
    """
    if not config.enabled or step < config.start_step or step >= config.stop_step:
        return DensifyReport()
    report = DensifyReport()
    if step % config.every == 0 and step > 0:
        if generator is None:
            if state.generator is None:
                state.generator = torch.Generator(device=module.means.device).manual_seed(config.seed)
            generator = state.generator
        mean_grad = state.grad2d_sum / state.count.clamp_min(1)
        n_now = module.means.shape[0]
        high = (mean_grad > config.grad_threshold) & (state.count > 0)
        big = torch.exp(module.log_scales.detach()).amax(-1) > config.grow_scale_relative * scene_extent
        room = max(0, config.max_gaussians - n_now)
        dup_mask = _limit(high & ~big, room)
        n_dup = duplicate(module, names, optimizer, dup_mask)
        split_mask = _limit(high & big, max(0, room - n_dup))
        split_mask = torch.cat([split_mask, split_mask.new_zeros(n_dup)])     # copies are not split
        n_split = split(module, names, optimizer, split_mask, config.split_scale_divisor, generator)
        opac = torch.sigmoid(module.opacity_logits.detach())
        prune_mask = opac < config.prune_opacity
        if config.reset_opacity_every > 0 and step > config.reset_opacity_every:
            too_big = torch.exp(module.log_scales.detach()).amax(-1) > config.prune_scale_relative * scene_extent
            prune_mask |= too_big
        n_pruned = remove(module, names, optimizer, prune_mask)
        state.reset(module.means.shape[0])
        report = DensifyReport(duplicated=n_dup, split=n_split, pruned=n_pruned)
    recovers = steps_left is None or steps_left >= config.reset_recovery_steps
    if config.reset_opacity_every > 0 and step % config.reset_opacity_every == 0 and step > 0 and recovers:
        reset_opacity(module, optimizer, config.reset_opacity_value)
        report = DensifyReport(report.duplicated, report.split, report.pruned, reset_opacity=True)
    return report


def _limit(mask: Tensor, room: int) -> Tensor:
    """Keep at most ``room`` True entries of ``mask`` (the first ones), so growth respects the cap."""
    if int(mask.sum()) <= room:
        return mask
    idx = mask.nonzero().squeeze(1)[room:]
    out = mask.clone()
    out[idx] = False
    return out
