"""Pretrained priors behind small Protocols, their offline stand-ins, and the one weight loader.

Heavy backends (diffusers, transformers) are imported by their own modules only when used; the
names below are resolved on first use (PEP 562), so importing a light module of this package
(model_registry, the hub look-ups of loading: what `models list` needs) does not import torch.
"""

from ..lazy_exports import lazy_exports

__all__ = ["DepthEstimator", "DepthKind", "DepthPrediction", "Inpainter", "Refiner", "RefinerConfig",
           "RefinerInput", "TextToImage"]

_HOMES = {
    "DepthEstimator": ".base", "DepthKind": ".config", "DepthPrediction": ".base", "Inpainter": ".base",
    "TextToImage": ".base", "Refiner": ".refiner", "RefinerConfig": ".config", "RefinerInput": ".refiner",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
