"""The procedural world: offline stand-in for text-to-image, inpainting and depth, and ground truth.

``ProceduralWorld.from_prompt(prompt, seed, config).render(cameras) -> WorldRender``.
"""

from ...lazy_exports import lazy_exports

__all__ = ["LIGHTINGS", "Material", "ProceduralWorld", "ProceduralWorldConfig", "SceneChoice", "TEMPLATES",
           "VOCABULARY", "WorldRender", "parse_prompt"]

_HOMES = {
    "ProceduralWorldConfig": ".config", "Material": ".scene", "LIGHTINGS": ".vocabulary",
    "TEMPLATES": ".vocabulary", "VOCABULARY": ".vocabulary", "SceneChoice": ".vocabulary",
    "parse_prompt": ".vocabulary", "ProceduralWorld": ".world", "WorldRender": ".world",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
