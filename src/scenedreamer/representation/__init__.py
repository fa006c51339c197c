"""Scene representations: tri-plane feature NeRF (default) and 3D Gaussians, and their fitting."""

from .base import RenderOutput, SceneRepresentation

__all__ = ["RenderOutput", "SceneRepresentation"]
