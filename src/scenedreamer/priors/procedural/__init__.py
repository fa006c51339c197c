"""The procedural world: offline stand-in for text-to-image, inpainting and depth, and ground truth.

``ProceduralWorld.from_prompt(prompt, seed, config).render(cameras) -> WorldRender``.
"""

from .config import ProceduralWorldConfig
from .scene import Material
from .vocabulary import LIGHTINGS, TEMPLATES, VOCABULARY, SceneChoice, parse_prompt
from .world import ProceduralWorld, WorldRender

__all__ = ["LIGHTINGS", "Material", "ProceduralWorld", "ProceduralWorldConfig", "SceneChoice", "TEMPLATES",
           "VOCABULARY", "WorldRender", "parse_prompt"]
