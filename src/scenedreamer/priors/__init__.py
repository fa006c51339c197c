"""Pretrained priors behind small Protocols, their offline stand-ins, and the one weight loader.

Heavy backends (diffusers, transformers) are imported by their own modules only when used.
"""

from .base import DepthEstimator, DepthKind, DepthPrediction, Inpainter, TextToImage
from .refiner import Refiner, RefinerConfig, RefinerInput

__all__ = ["DepthEstimator", "DepthKind", "DepthPrediction", "Inpainter", "Refiner", "RefinerConfig",
           "RefinerInput", "TextToImage"]
