"""Turns the run config's prior names into the objects that play each role of the method.

Which name may play which role, and how each is built, is the table in pipeline/prior_kinds.py:
the built-in stand-ins ("procedural", "oracle", "oracle-exact", "classical", "offline") or a real
model: a preset name from `scenedreamer models list`, a hub id or a local folder, loaded through
priors/loading.py. A requested real model that is missing is an error (MissingWeightsError),
never a silent fallback.
A photo start (config.first_view) replaces the first-view generator by the photo and, with a depth
map, the first-view depth by that map (priors/photo.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import UserInputError
from ..events import EventSink, emit
from ..priors.base import DepthCompleter, DepthEstimator, Inpainter, TextToImage
from ..priors.refiner import Refiner
from .config import GenerateConfig
from .prior_kinds import BuildContext, build_role, check_roles, real_models, role_names

log = logging.getLogger(__name__)

@dataclass
class Priors:
    """The four roles of the method, filled, plus the device everything runs on."""

    text_to_image: TextToImage
    inpainter: Inpainter
    depth: DepthEstimator | DepthCompleter
    refiner: Refiner
    device: torch.device
    first_view_depth: DepthEstimator | None = None
    """depth of the first view (the scene's metric scale); None: ``depth``"""

    def describe(self) -> dict[str, str]:
        """Role -> label, saved in the run's log so every run says what it used."""
        return {"text_to_image": self.text_to_image.label, "inpainter": self.inpainter.label,
                "depth": self.depth.label, "first_view_depth": self.first_depth.label,
                "refiner": self.refiner.label}

    def prompt_reading(self) -> dict | None:
        """How the offline text-to-image stand-in read the prompt (``SceneChoice.as_record()``:
        which words chose the world, light, weather, palette and elements, which were not
        honoured); None for a real network, which reads the prompt itself."""
        world = getattr(self.text_to_image, "world", None)
        choice = getattr(world, "choice", None)
        return choice.as_record() if choice is not None else None

    @property
    def first_depth(self) -> DepthEstimator:
        """The estimator of the first view's depth (build_priors never makes it a DepthCompleter)."""
        return self.first_view_depth or self.depth

    def save_refiner_state(self, path: Path) -> bool:
        """Write the refiner's adapter weights to ``path`` (reusable for later scenes); False
        when the refiner has no adapter."""
        if self.refiner.adapter is None:
            return False
        self.refiner.save_adapter(path)
        return True

    def refiner_training_state(self) -> dict | None:
        """The refiner's trainable state (adapter + optimiser) for step checkpoints, or None."""
        return self.refiner.training_state()

    def load_refiner_training_state(self, state: dict) -> None:
        self.refiner.load_training_state(state)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"priors.device: {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"priors.device: {name!r} requested but CUDA is not available")
    return device


def with_resolved_dtype(config: GenerateConfig) -> GenerateConfig:
    """``config`` with ``priors.dtype`` resolved for its device ("auto" -> fp16 / bf16 / fp32,
    see priors.loading.resolve_dtype): the dtype that will run, which the run's config.json and
    log then state. A run of stand-ins only loads no network, so "auto" is fp32, the
    representation's dtype (as the dry run shows it), whatever the CPU: its config.json must not
    depend on the machine it was made on, or it would not resume on another. UserInputError for
    fp16 on the CPU, before anything is loaded or written."""
    from ..priors.loading import resolve_dtype

    if config.priors.dtype == "auto" and not real_models(config):
        return replace(config, priors=replace(config.priors, dtype="fp32"))
    dtype = resolve_dtype(config.priors.dtype, resolve_device(config.priors.device))
    return replace(config, priors=replace(config.priors, dtype=dtype))


def build_priors(config: GenerateConfig, on_event: EventSink | None = None) -> Priors:
    """Build (load) every prior named by ``config.priors``; each heavy model is loaded once.

    Every name is first checked against the role it plays (prior_kinds.check_roles: one line,
    nothing loaded). Each real model's load is reported to ``on_event`` as a "load" event (step
    i of the models to load, message "loading NAME (role)"): the libraries' own loading bars are
    off (loading.py), so a front end shows loading in its own display."""
    check_roles(config)
    to_load = real_models(config)
    loaded: list[str] = []

    def announce(name: str, role: str) -> None:
        loaded.append(name)
        emit(on_event, "load", len(loaded), len(to_load), f"loading {name} ({role})")

    ctx = BuildContext(config, resolve_device(config.priors.device), announce)
    names = role_names(config)

    # first view: the user's photo (read and checked now, before any run folder exists), or a prior
    given_depth = None
    if config.first_view.image:
        from ..priors.photo import photo_priors

        fv = config.first_view
        text_to_image, given_depth = photo_priors(fv.image, fv.depth, config.width, config.height,
                                                  fv.max_upscale, fv.depth_png_scale)
        log.info("first view: %s", text_to_image.photo.describe())
    else:
        text_to_image = build_role(ctx, "text_to_image", names["text_to_image"])
    inpainter = build_role(ctx, "inpainter", names["inpainter"])
    depth = build_role(ctx, "depth", names["depth"])
    # the first view's depth fixes the metric scale: the given map, the depth prior itself, or its own
    if given_depth is not None:
        first_view_depth = given_depth
    elif names["first_view_depth"] == names["depth"]:
        first_view_depth = None
    else:
        first_view_depth = build_role(ctx, "first_view_depth", names["first_view_depth"])
    refiner = build_role(ctx, "refiner", names["refiner"])
    return Priors(text_to_image, inpainter, depth, refiner, ctx.device, first_view_depth)
