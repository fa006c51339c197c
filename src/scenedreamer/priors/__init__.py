"""Pretrained priors behind small Protocols, their offline stand-ins, and the one weight loader."""

from .base import DepthEstimator, DepthKind, DepthPrediction, Inpainter, TextToImage

__all__ = ["DepthEstimator", "DepthKind", "DepthPrediction", "Inpainter", "TextToImage"]
