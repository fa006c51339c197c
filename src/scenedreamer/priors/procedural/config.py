"""Configuration of the procedural world (every tunable is a documented field)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProceduralWorldConfig:
    """Geometry, sampling and look of the procedural world. Lengths in scene units (~ metres)."""

    ground_height: float = 1.5
    """The ground (floor indoors) lies this far below the first camera: the plane y = +ground_height."""
    sky_depth: float = 100.0
    """z-depth given to sky pixels (and to anything farther than it): the scene's far limit."""
    near: float = 0.05
    """Nothing closer than this z-depth is hit (camera near plane)."""
    terrain_half_extent: float = 160.0
    """The terrain heightmap covers [-e, e]^2 in (x, z); beyond it the border height continues."""
    heightmap_resolution: int = 1024
    """Heightmap texels per side (bilinear between texels: the terrain IS this bilinear surface)."""
    march_steps: int = 96
    """Log-spaced samples per ray through the terrain slab before bisection."""
    march_chunk: int = 8
    """Samples evaluated at once per active ray (rays that hit drop out after each chunk)."""
    bisection_steps: int = 16
    """Bisection iterations that refine a bracketed terrain hit (relative error ~ 0.1 / 2^steps)."""
    texture_resolution: int = 256
    """Texels per side of the tileable detail-noise textures."""
    clear_radius: float = 3.0
    """No tree or rock within this distance of the first camera."""
    path_half_width: float = 2.5
    """No tree or rock within this distance of the z axis (the default forward path stays clear)."""
    scatter_radius: float = 70.0
    """Trees and rocks are scattered within this distance of the first camera."""
    fog_full_fraction: float = 0.75
    """Fog fades any surface fully into the horizon colour between this fraction of sky_depth
    and sky_depth, so that the far limit has no visible seam."""
    shadow_map_resolution: int = 1024
    """Texels per side of the baked ground shadow map of trees and rocks (0 = no shadows)."""
    shadow_strength: float = 0.75
    """How much of the direct sun a shadow removes (ambient light is kept)."""
    antialias: int = 1
    """Odd supersampling factor of the colour (3 = 3x3 samples per pixel, 9x the cost). The
    centre sample of each pixel is its centre, so depth stays the exact pixel-centre depth."""
    room_width: float = 7.0
    """Indoor: room size along x (centred on the first camera)."""
    room_height: float = 3.0
    """Indoor: floor-to-ceiling height."""
    room_back: float = 3.0
    """Indoor: distance from the first camera to the wall behind it."""
    room_front: float = 9.0
    """Indoor: distance from the first camera to the wall in front of it."""

    def __post_init__(self) -> None:
        from ...errors import UserInputError

        if not 0 < self.near < self.sky_depth:
            raise UserInputError(f"procedural world config: need 0 < near < sky_depth, got {self.near}, {self.sky_depth}")
        if self.shadow_map_resolution != 0 and self.shadow_map_resolution < 8:
            raise UserInputError("procedural world config: shadow_map_resolution must be 0 or >= 8")
        if self.heightmap_resolution < 8 or self.texture_resolution < 8:
            raise UserInputError("procedural world config: heightmap_resolution and texture_resolution must be >= 8")
        if self.march_steps < 1 or self.march_chunk < 1 or self.bisection_steps < 0:
            raise UserInputError("procedural world config: march_steps, march_chunk >= 1 and bisection_steps >= 0")
        if self.antialias < 1 or self.antialias % 2 == 0:
            raise UserInputError(f"procedural world config: antialias must be an odd integer >= 1, got {self.antialias}")
