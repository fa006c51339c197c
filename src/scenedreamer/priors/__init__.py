"""Pretrained priors behind small Protocols, their offline stand-ins, and the one weight loader.

Heavy backends (diffusers, transformers) are imported by their own modules only when used; the
names below are resolved on first use (PEP 562), so importing a light module of this package
(model_registry, the hub look-ups of loading: what `models list` needs) does not import torch.
"""

from importlib import import_module

_EXPORTS = {"DepthEstimator": ".base", "DepthKind": ".depth_kind", "DepthPrediction": ".base",
            "Inpainter": ".base", "TextToImage": ".base", "Refiner": ".refiner",
            "RefinerConfig": ".refiner", "RefinerInput": ".refiner"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The exported name from its module, imported now."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
