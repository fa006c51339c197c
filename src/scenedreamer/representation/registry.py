"""Representation kinds -> classes: how a checkpoint's ``kind`` becomes a class again.

Each class has ``kind`` (the key), ``config`` (a dataclass instance; ``config_class`` names its
type) and ``from_config(config, device)``. Add a representation with one line below.
"""

from __future__ import annotations

from .gaussians import GaussianScene
from .triplane import TriplaneNeRF

REPRESENTATIONS: dict[str, type] = {
    TriplaneNeRF.kind: TriplaneNeRF,
    GaussianScene.kind: GaussianScene,
}
