"""MP4 video writing (H.264 through the ffmpeg binary shipped by imageio-ffmpeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from ..atomic import atomic_path


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 numpy (the only place images become bytes for video)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_video(path: str | Path, frames: Iterable[torch.Tensor | np.ndarray], fps: int = 24) -> int:
    """Write frames (each (H, W, 3) float [0, 1] or uint8) to an H.264 MP4, atomically.

    Frame sizes are padded to even numbers (yuv420p needs them). Returns the frame count.
    """
    import imageio.v2 as imageio

    count = 0
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264",
                                    pixelformat="yuv420p", macro_block_size=2, quality=8)
        try:
            for frame in frames:
                arr = to_uint8(frame)
                h, w = arr.shape[:2]
                if h % 2 or w % 2:
                    arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                writer.append_data(arr)
                count += 1
        finally:
            writer.close()
    return count
