"""A top-down picture of a camera path with its view frusta (matplotlib, Agg backend).

"Top-down" means looking along the world's up direction. Trajectories from our presets have
up = -y (the first camera is OpenCV); files from other tools may use any world, so up is
estimated from the cameras, assuming they have no roll (their x axes are horizontal; see
``_world_up``), which is how paths are normally made. The plot's horizontal axis is the first camera's right
direction, its vertical axis the first camera's forward direction (both flattened).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_path
from ..geometry.trajectory import Trajectory


@dataclass(frozen=True)
class TrajectoryPlotConfig:
    """Tunables of the trajectory plot."""

    frustum_scale: float = 0.08
    """Frustum depth as a fraction of the path's extent (or 1 scene unit for a static path)."""
    max_frusta: int = 40
    """Draw at most this many frusta (evenly spaced); the path line shows every frame."""
    figure_inches: float = 6.0
    """Figure width and height in inches."""
    dpi: int = 120
    """Resolution of the saved PNG."""
    min_turn_spread: float = 0.02
    """Up is estimated from the cameras' x axes when their second eigenvalue (spread over a
    plane) exceeds this; otherwise from the first camera (see ``_world_up``)."""


def _world_up(c2w: np.ndarray, min_spread: float) -> np.ndarray:
    """Unit world-up estimate from OpenCV c2w (N, 4, 4), assuming cameras without roll.

    A camera without roll has a horizontal x axis, so up is perpendicular to every camera's x
    axis: when the x axes spread over the plane (the path turns), up is the direction least
    covered by them (smallest eigenvector of sum x x^T). When they do not (no turning), up is the
    first camera's up (-y), made perpendicular to the common x axis.
    """
    x_axes = c2w[:, :3, 0]
    first_up = -c2w[0, :3, 1]
    eigvals, eigvecs = np.linalg.eigh(x_axes.T @ x_axes / len(x_axes))   # ascending
    if eigvals[1] > min_spread:
        up = eigvecs[:, 0]
    else:
        x = eigvecs[:, 2]
        up = first_up - x * (first_up @ x)
    up = up / max(np.linalg.norm(up), 1e-12)
    return up if up @ first_up >= 0 else -up


def _plane_basis(c2w: np.ndarray, min_spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up direction and two horizontal axes (right, forward of camera 0) of a c2w stack (N,4,4)."""
    up = _world_up(c2w, min_spread)

    def flatten(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        v = v - up * (v @ up)
        n = np.linalg.norm(v)
        return v / n if n > 1e-6 else fallback

    forward = flatten(c2w[0, :3, 2], flatten(np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])))
    right = np.cross(forward, up)                    # OpenCV: forward x up = right
    right = right / np.linalg.norm(right)
    return up, right, forward


def plot_trajectory(traj: Trajectory, path: str | os.PathLike,
                    config: TrajectoryPlotConfig = TrajectoryPlotConfig()) -> None:
    """Draw the camera path seen from above, with frusta, to a PNG at ``path`` (atomic write).

    Positions are in the trajectory's world units; frusta show each camera's horizontal field
    of view, coloured from the first (dark) to the last frame (yellow).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cams = traj.cameras
    c2w = cams.c2w.detach().double().cpu().numpy()
    K = cams.K.detach().double().cpu().numpy()
    up, right, forward = _plane_basis(c2w, config.min_turn_spread)
    centres = c2w[:, :3, 3]
    xy = np.stack([centres @ right, centres @ forward], axis=-1)           # (N, 2)
    extent = float(np.ptp(xy, axis=0).max()) if len(xy) > 1 else 0.0
    depth = config.frustum_scale * (extent if extent > 1e-9 else 1.0 / config.frustum_scale)

    fig, ax = plt.subplots(figsize=(config.figure_inches, config.figure_inches))
    try:
        ax.plot(xy[:, 0], xy[:, 1], "-", color="0.5", lw=1, zorder=1)
        colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(cams)))
        shown = np.unique(np.linspace(0, len(cams) - 1, min(len(cams), config.max_frusta)).round().astype(int))
        for i in shown:
            # the image's left and right edge rays at mid-height, in world, flattened to the plane
            half = 0.5 * cams.width / K[i, 0, 0]
            corners = []
            for sign in (-1.0, 1.0):
                ray_cam = np.array([sign * half, 0.0, 1.0])
                ray = c2w[i, :3, :3] @ ray_cam
                p = centres[i] + depth * ray / max(np.linalg.norm(ray), 1e-9)
                corners.append([p @ right, p @ forward])
            tri = np.array([xy[i], corners[0], corners[1], xy[i]])
            ax.plot(tri[:, 0], tri[:, 1], "-", color=colours[i], lw=1.2, zorder=2)
        ax.scatter(xy[:, 0], xy[:, 1], c=colours, s=8, zorder=3)
        ax.scatter(xy[:1, 0], xy[:1, 1], marker="o", s=60, facecolors="none", edgecolors="red",
                   zorder=4, label="first camera")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("right of first camera (scene units)")
        ax.set_ylabel("forward of first camera (scene units)")
        prompts = len({p for p in traj.prompts if p is not None})
        ax.set_title(f"{len(cams)} cameras, {cams.width}x{cams.height}, seen from above"
                     + (f", {prompts} prompts" if prompts else ""))
        ax.legend(loc="best", fontsize="small")
        ax.grid(True, lw=0.3)
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=config.dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
