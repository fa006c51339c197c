"""How much of a render shows the scene: only what the run's cameras saw exists.

A render looking where no camera looked shows empty (transparent, black) pixels. `render`
reports the empty fraction of every frame (a summary line, and frames.json for a PNG folder),
and before a long render it looks at the path at a small size and warns when more than half of
the frames would be empty, naming a path that covers them.

``CoverageRecorder`` wraps a SceneRepresentation: each ``render`` call passes through and its
accumulated opacity (B, H, W) is tallied, so the renderers themselves stay unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from ..geometry.cameras import Cameras
from ..representation.base import SceneRepresentation

EMPTY_OPACITY = 0.5
"""A pixel whose accumulated opacity is below this shows mostly background: it counts as empty
(the same half-way cut the viewer's splats use for "there is something here")."""
WARN_EMPTY_FRACTION = 0.5
"""Warn before rendering when the frames would be more than this empty on average (issue 21)."""
PREVIEW_SIDE = 32
"""Pixels on the longer side of the quick preview render that predicts the empty fraction."""
PREVIEW_CAMERAS = 12
"""At most this many cameras, evenly spread along the path, are previewed."""


def empty_fraction(opacity: Tensor) -> float:
    """Fraction of the pixels of ``opacity`` (any shape, accumulated alpha in [0, 1]) that are
    empty (opacity < EMPTY_OPACITY)."""
    return float((opacity.detach().float() < EMPTY_OPACITY).float().mean()) if opacity.numel() else 1.0


def empty_fraction_reference(opacity: Tensor) -> float:
    """The slow, obviously-correct twin of ``empty_fraction``: a pixel-by-pixel count."""
    values = opacity.detach().float().flatten().tolist()
    return sum(1 for v in values if v < EMPTY_OPACITY) / len(values) if values else 1.0


class CoverageRecorder:
    """A SceneRepresentation stand-in that renders through ``scene`` and keeps the empty
    fraction of every image rendered (``fractions``, one per camera, in render order)."""

    def __init__(self, scene: SceneRepresentation):
        self.scene = scene
        self.fractions: list[float] = []

    def render(self, cameras: Cameras, *args, **kwargs):
        out = self.scene.render(cameras, *args, **kwargs)
        self.fractions.extend(empty_fraction(o) for o in out.opacity)
        return out

    def __getattr__(self, name):           # parameters(), eval(), ... of the wrapped scene
        return getattr(self.scene, name)


def predicted_empty_fraction(scene: SceneRepresentation, cameras: Cameras) -> float:
    """Mean empty fraction of ``cameras`` (N cameras) rendered at PREVIEW_SIDE pixels, at most
    PREVIEW_CAMERAS of them spread along the path: a cheap look before the real render."""
    if len(cameras) == 0:
        return 0.0
    scale = PREVIEW_SIDE / max(cameras.width, cameras.height)
    small = cameras.scaled(max(4, round(cameras.width * scale)), max(4, round(cameras.height * scale)))
    picks = torch.linspace(0, len(cameras) - 1, min(len(cameras), PREVIEW_CAMERAS)).round().long().unique()
    device = next(iter(scene.parameters())).device
    fractions = []
    for i in picks.tolist():
        with torch.no_grad():
            fractions.append(empty_fraction(scene.render(small[i].to(device)).opacity[0]))
    return sum(fractions) / len(fractions)


def coverage_warning(fraction: float, panorama: bool, trajectory: str) -> str:
    """The one-line warning for a render predicted ``fraction`` empty, or '' below the limit;
    it says why and names a path that covers what the user wants."""
    if fraction <= WARN_EMPTY_FRACTION:
        return ""
    seen = "only what the run's cameras saw exists"
    if panorama:
        return (f"about {fraction:.0%} of the panorama will be empty: {seen}; for a full 360-degree scene "
                "generate with --trajectory rotate360 (or render along the run's own path)")
    return (f"about {fraction:.0%} of the frames along '{trajectory}' will be empty: {seen}; render along the "
            "run's own path (leave out --trajectory), or generate with --trajectory orbit/rotate360 to cover it")


def summary(fractions: list[float]) -> str:
    """'empty: mean 12% (max 40%, frame 3)' for the per-frame empty fractions."""
    if not fractions:
        return "empty: nothing rendered"
    worst = max(range(len(fractions)), key=fractions.__getitem__)
    return (f"empty: mean {sum(fractions) / len(fractions):.0%} of each frame "
            f"(max {fractions[worst]:.0%}, frame {worst})")


def record_in_frames_manifest(manifest: Path, fractions: list[float]) -> None:
    """Add ``empty_fraction`` (one per frame, in frame order) to a render's frames.json."""
    from ..atomic import atomic_write_json

    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["empty_fraction"] = [round(f, 4) for f in fractions]
    data["empty_opacity_below"] = EMPTY_OPACITY
    atomic_write_json(manifest, data)
