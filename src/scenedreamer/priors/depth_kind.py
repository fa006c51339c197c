"""``DepthKind``: what a depth network's output means (torch-free, so that the model registry
and `models list` can name it without importing torch; priors.base re-exports it)."""

from __future__ import annotations

import enum


class DepthKind(enum.Enum):
    """What a depth network's output means."""

    METRIC = "metric"          # z-depth in metres / scene units
    RELATIVE = "relative"      # z-depth up to an unknown scale and shift
    DISPARITY = "disparity"    # inverse depth up to an unknown scale and shift
