"""Box filters shared by the image-space priors (each with its slow, obviously-correct twin).

Two border rules, named apart because they give different values near the border:
``box_mean_zero_padded`` treats outside pixels as 0 (weighted sums that are divided by a box of
the weights later), ``box_mean_clipped`` averages only the pixels inside the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def box_mean_zero_padded(x: Tensor, radius: int) -> Tensor:
    """Mean over a (2r+1)^2 window of (N, C, H, W), zero padded (== ``avg_pool2d(x, 2r+1, 1, r)``).

    Separable (column then row), so the cost does not grow with the square of the radius;
    ``box_mean_zero_padded_reference`` is the one-pass twin the tests compare against.
    """
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0))
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius))


def box_mean_zero_padded_reference(x: Tensor, radius: int) -> Tensor:
    """Slow, obviously-correct twin of ``box_mean_zero_padded``: one square average pool."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius)


def box_mean_clipped(x: Tensor, radius: int) -> Tensor:
    """Mean of (H, W) ``x`` over the (2r+1)^2 window around each pixel, clipped at the border.

    Fast path (average pooling that does not count padding); ``box_mean_clipped_reference`` is its twin.
    """
    if radius <= 0:
        return x.float()
    pooled = F.avg_pool2d(x.float()[None, None], kernel_size=2 * radius + 1, stride=1, padding=radius,
                          count_include_pad=False)
    return pooled[0, 0]


def box_mean_clipped_reference(x: Tensor, radius: int) -> Tensor:
    """Slow, obviously-correct twin of ``box_mean_clipped``: a loop over pixels and clipped windows."""
    height, width = x.shape
    out = torch.empty(height, width, dtype=torch.float64)
    xd = x.double()
    for i in range(height):
        for j in range(width):
            window = xd[max(0, i - radius): i + radius + 1, max(0, j - radius): j + radius + 1]
            out[i, j] = window.mean()
    return out.float()
