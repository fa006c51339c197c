"""Replay sampling: which support views an update of the representation / adapter sees.

The ``recent`` most recently added views share the probability ``recent_weight``; all older
views share ``1 - recent_weight``; each group is uniform inside. So new content is learned fast
while old content keeps being revisited (the method's replay against forgetting). When one group
is empty the other takes all the mass.
"""

from __future__ import annotations

import torch
from torch import Tensor


def replay_weights(num_views: int, recent: int, recent_weight: float) -> Tensor:
    """(num_views,) float64 probabilities over views in insertion order (oldest first).

    recent: how many of the last views are "recent" (>= 0); recent_weight in [0, 1].
    """
    if num_views < 0 or recent < 0 or not 0.0 <= recent_weight <= 1.0:
        raise ValueError(f"replay_weights: need num_views >= 0, recent >= 0, recent_weight in [0, 1]; "
                         f"got {num_views}, {recent}, {recent_weight}")
    n_recent = min(recent, num_views)
    n_old = num_views - n_recent
    weights = torch.zeros(num_views, dtype=torch.float64)
    if n_recent == 0 or n_old == 0:
        weights[:] = 1.0 / max(num_views, 1)
        return weights
    weights[:n_old] = (1.0 - recent_weight) / n_old
    weights[n_old:] = recent_weight / n_recent
    return weights


def sample_replay_positions(num_views: int, n: int, generator: torch.Generator, recent: int,
                            recent_weight: float) -> list[int]:
    """n positions (0 = oldest view) drawn with replacement from replay_weights.

    Deterministic for a given generator state (the generator's device is used for the draw).
    """
    if n < 0:
        raise ValueError(f"sample_replay: n must be >= 0, got {n}")
    if num_views == 0:
        raise ValueError("sample_replay: the support database is empty")
    if n == 0:
        return []
    weights = replay_weights(num_views, recent, recent_weight)
    draws = torch.multinomial(weights.to(generator.device), n, replacement=True, generator=generator)
    return draws.cpu().tolist()
