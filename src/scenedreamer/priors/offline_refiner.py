"""The offline refiner: a stand-in for the diffusion refiner when no diffusion weights exist.

It is NOT generative and says so in its label. It runs the same ``Refiner`` interface so the
whole pipeline works offline, and does what a refiner must do at minimum: decide, per pixel,
whether to trust the scene's render or the local frame (warp of support views + inpaint), and
join the two without a visible seam.

- Render trusted where it is opaque: a smooth ramp of opacity from ``opacity_low`` (not trusted)
  to ``opacity_high`` (trusted); in between, the render is composited over the local frame.
- Floaters are not trusted: rendered pixels whose depth disagrees with the warp's depth by more
  than ``floater_depth_tolerance`` (relative), when the view carries ``local_depth``.
- Empty / low-opacity / floater pixels take the local frame.
- The trust map is smoothed edge-aware (a guided filter, He et al. 2010, guided by the local
  frame's luminance), so the seam is spread over a few pixels except along real scene edges,
  where a sharp switch is invisible.
- Well-observed pixels (opacity >= ``keep_threshold``, not floaters) are the render's exactly,
  as in the diffusion refiner.

``train_adapter`` is a no-op returning {}; ``save_adapter``/``load_adapter`` write/read a small
JSON marker so the pipeline's resume logic works the same with either refiner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor

from ..atomic import atomic_write_json
from ..errors import UserInputError
from ..events import EventSink
from .filters import box_mean_clipped
from .refiner import RefinerInput, floater_mask, render_over_local
from .config import OfflineRefinerConfig

OFFLINE_MARKER_FORMAT = "scenedreamer-offline-refiner/1"
"""Format tag of the marker file the offline refiner writes in place of adapter weights."""

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights: the guide image of the seam filter."""


class OfflineRefiner:
    """Deterministic render/local-frame compositor behind the Refiner interface (no diffusion)."""

    label = "offline refiner (render + local-frame composite, edge-aware seam; not generative)"
    adapter = None  # no trainable adapter: the compositor has no weights

    def __init__(self, config: OfflineRefinerConfig = OfflineRefinerConfig()):
        self.config = config

    def refine(self, view: RefinerInput, prompt: str, generator: torch.Generator) -> Tensor:
        """(H, W, 3) float32 in [0, 1]: render where trusted, local frame elsewhere, smooth seam;
        then pulled toward the local frame on warp-known pixels by ``consistency_weight``.

        prompt and generator are unused (the result is deterministic).
        """
        cfg = self.config
        floaters = floater_mask(view, cfg.floater_depth_tolerance)
        over = render_over_local(view, floaters)                         # (H, W, 3)
        trust = render_trust(view.opacity, floaters, cfg.opacity_low, cfg.opacity_high)
        unknown_factor = torch.where(view.local_known, torch.ones_like(trust),
                                     torch.full_like(trust, cfg.unknown_render_trust))
        trust = trust * unknown_factor
        local = view.local_rgb.float()
        # Guide by the local frame: it is complete and seam-free, so its edges are scene edges
        # (the composite would carry the render/local switch itself and keep the seam sharp).
        guide = (local * local.new_tensor(LUMA_WEIGHTS)).sum(-1)          # (H, W) luminance
        trust = guided_filter(guide, trust, cfg.seam_radius_px, cfg.seam_edge_eps).clamp(0.0, 1.0)
        out = (trust[..., None] * over + (1.0 - trust[..., None]) * local).clamp(0.0, 1.0)
        keep = (view.opacity >= cfg.keep_threshold) & ~floaters & (unknown_factor > 0)
        out = torch.where(keep[..., None], view.rendered_rgb.float(), out)
        if cfg.consistency_weight > 0:
            w = cfg.consistency_weight
            out = torch.where(view.local_known[..., None], w * local + (1.0 - w) * out, out)
        return out

    def train_adapter(self, batches: Iterable[tuple[RefinerInput, Tensor]], steps: int,
                      generator: torch.Generator, on_event: EventSink | None = None,
                      prompt: str = "") -> dict[str, float]:
        """No adapter: nothing to train. Returns {}."""
        return {}

    def save_adapter(self, path: str | Path) -> None:
        """Write a small JSON marker (atomic) so resume logic treats both refiners alike."""
        atomic_write_json(path, {"format": OFFLINE_MARKER_FORMAT, "label": self.label})

    def training_state(self) -> None:
        """No adapter, so no training state: None."""
        return None

    def load_training_state(self, state: dict) -> None:
        """There is no adapter to restore: UserInputError (a checkpoint from another refiner)."""
        raise UserInputError("refiner: the offline refiner has no adapter; this checkpoint holds "
                             "adapter state from a diffusion refiner")

    def load_adapter(self, path: str | Path) -> None:
        """Check the marker written by ``save_adapter``; UserInputError if missing or foreign."""
        path = Path(path)
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserInputError(f"{path}: adapter file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise UserInputError(f"{path}: not an offline-refiner marker (diffusion adapter weights "
                                 "need the diffusion refiner)") from None
        if not isinstance(marker, dict) or marker.get("format") != OFFLINE_MARKER_FORMAT:
            raise UserInputError(f"{path}: not an offline-refiner marker")


def render_trust(opacity: Tensor, floaters: Tensor, low: float, high: float) -> Tensor:
    """(H, W) float32 in [0, 1]: smoothstep of opacity from ``low`` to ``high``; 0 on floaters."""
    x = ((opacity.float() - low) / (high - low)).clamp(0.0, 1.0)
    return torch.where(floaters, torch.zeros_like(x), x * x * (3.0 - 2.0 * x))


def guided_filter(guide: Tensor, source: Tensor, radius: int, eps: float,
                  box: Callable[[Tensor, int], Tensor] = box_mean_clipped) -> Tensor:
    """Edge-aware smoothing of ``source`` (H, W) along the edges of ``guide`` (H, W) (He et al. 2010).

    In each window the output is a linear function of the guide, a * guide + b, fitted to the
    source by ridge regression (regulariser ``eps``); the per-window fits are averaged. ``box`` is
    the window mean (the reference twin can be passed in tests).
    """
    guide, source = guide.float(), source.float()
    mean_g, mean_s = box(guide, radius), box(source, radius)
    cov_gs = box(guide * source, radius) - mean_g * mean_s
    var_g = box(guide * guide, radius) - mean_g * mean_g
    a = cov_gs / (var_g + eps)
    b = mean_s - a * mean_g
    return box(a, radius) * guide + box(b, radius)
