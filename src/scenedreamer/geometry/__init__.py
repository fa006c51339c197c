"""Pure geometry functions (torch, batched, any device). Imports nothing above it."""

from .cameras import Cameras

__all__ = ["Cameras"]
