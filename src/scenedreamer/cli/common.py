"""Argument parsing shared by several subcommands (one-line UserInputError for bad values)."""

from __future__ import annotations

from ..errors import UserInputError


def parse_size(text: str, flag: str = "--resolution", max_side: int = 4096) -> tuple[int, int]:
    """'WxH' -> (W, H) in pixels, each between 1 and ``max_side``."""
    parts = text.lower().split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise UserInputError(f"{flag} {text!r}: expected WxH, e.g. 256x256") from None
    if w <= 0 or h <= 0:
        raise UserInputError(f"{flag} {text!r}: width and height must be positive")
    if w > max_side or h > max_side:
        raise UserInputError(f"{flag} {text!r}: at most {max_side} pixels a side")
    return w, h


def parse_device(name: str, flag: str = "--device") -> str:
    """A torch device name that exists here ('auto' = CUDA when available, else CPU)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserInputError(f"{flag} {name!r}: not a torch device (cpu, cuda, cuda:1, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"{flag} {name}: CUDA is not available on this machine")
    return name
