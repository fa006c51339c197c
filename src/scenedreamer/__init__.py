"""scenedreamer: text + camera trajectory -> a persistent, 3D-consistent scene.

Layers (dependencies point down only; see docs/design.md):
    geometry/  priors/  support/  representation/  pipeline/  export/ eval/ cli.py
"""

__version__ = "0.1.0"
