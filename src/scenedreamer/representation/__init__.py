"""Scene representations: tri-plane feature NeRF (default) and 3D Gaussians, and their fitting."""

from ..lazy_exports import lazy_exports

__all__ = ["RenderOutput", "SceneRepresentation"]

_HOMES = {
    "RenderOutput": ".base", "SceneRepresentation": ".base",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
