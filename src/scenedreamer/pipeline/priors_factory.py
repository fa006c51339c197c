"""Turns the run config's prior names into the objects that play each role of the method.

Names: "procedural" / "oracle" / "oracle-exact" (the procedural world stand-ins), "classical" (OpenCV +
PatchMatch inpainting; as depth: completion from the view's known depth), "offline" (the refiner
stand-in), or a real model: a preset name from
`scenedreamer models list`, a hub id or a local folder, loaded through priors/loading.py. A
requested real model that is missing is an error (MissingWeightsError), never a silent fallback.
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
from .config import PROCEDURAL_PRIORS, GenerateConfig

log = logging.getLogger(__name__)

OFFLINE_LABELS = {"procedural": "procedural world (offline stand-in)",
                  "oracle": "procedural world oracle (offline stand-in)",
                  "oracle-exact": "procedural world exact metric depth (offline stand-in for a metric network)",
                  "classical": "OpenCV Telea/NS + PatchMatch (classical)",
                  "offline": "composite of render + local frame (offline stand-in)"}
"""Every prior name that is not a model (preset, hub id or folder), with the label --dry-run shows.
Which role accepts which name is decided in build_priors (a wrong role is one line saying so)."""
OFFLINE_NAMES = tuple(OFFLINE_LABELS)


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


def real_models(config: GenerateConfig) -> list[tuple[str, bool | None]]:
    """(name, inpainting) of every real model build_priors will load, each once, in load order
    (inpainting None: a depth network). An SD folder asked for as both a text-to-image and an
    inpainting pipeline is loaded twice (two pipelines) and listed twice; --dry-run counts it so."""
    pc = config.priors
    wanted = []
    if not config.first_view.image:
        wanted.append((pc.text_to_image, False))
    wanted.append((pc.inpainter, True))
    depth_names = [pc.depth]
    if pc.first_view_depth and pc.first_view_depth != pc.depth and not config.first_view.depth:
        depth_names.append(pc.first_view_depth)
    wanted += [(name, None) for name in depth_names]
    if pc.refiner != "offline" and config.ablation.refinement:
        wanted.append((pc.refiner, False))
    unique = []
    for item in wanted:
        if item[0] not in OFFLINE_NAMES and item not in unique:
            unique.append(item)
    return unique


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
    log then state. UserInputError for fp16 on the CPU, before anything is loaded or written."""
    from ..priors.loading import resolve_dtype

    dtype = resolve_dtype(config.priors.dtype, resolve_device(config.priors.device))
    return replace(config, priors=replace(config.priors, dtype=dtype))


def build_priors(config: GenerateConfig, on_event: EventSink | None = None) -> Priors:
    """Build (load) every prior named by ``config.priors``; each heavy model is loaded once.

    Each real model's load is reported to ``on_event`` as a "load" event (step i of the models to
    load, message "loading NAME (role)"): the libraries' own loading bars are off (loading.py), so
    a front end shows loading in its own display."""
    pc = config.priors
    to_load = real_models(config)
    loaded: list[str] = []

    def announce(name: str, role: str) -> None:
        loaded.append(name)
        emit(on_event, "load", len(loaded), len(to_load), f"loading {name} ({role})")

    device = resolve_device(pc.device)
    photo_start = bool(config.first_view.image)
    roles = {pc.inpainter, pc.depth, pc.first_view_depth} | (set() if photo_start else {pc.text_to_image})
    world_needed = roles & set(PROCEDURAL_PRIORS)
    offline = None
    if world_needed:
        from ..priors.offline import build_offline_priors

        offline = build_offline_priors(config.prompt, config.seed, pc.world, pc.oracle_depth)

    load_config = None
    sd_cache: dict[tuple[str, bool], object] = {}

    def load_cfg():
        nonlocal load_config
        if load_config is None:
            from ..priors.loading import ModelLoadConfig, resolve_dtype

            load_config = ModelLoadConfig(device=str(device), dtype=resolve_dtype(pc.dtype, device), offline=pc.offline,
                                          cpu_offload=pc.cpu_offload, attention_slicing=pc.attention_slicing,
                                          cache_dir=pc.cache_dir, variant=pc.variant)
        return load_config

    def sd_pipeline(name: str, inpainting: bool):
        from ..priors.loading import load_sd_pipeline

        key = (name, inpainting)
        if key not in sd_cache:
            announce(name, "inpainting" if inpainting else "text-to-image / refiner")
            sd_cache[key] = load_sd_pipeline(name, load_cfg(), inpainting=inpainting)
        return sd_cache[key]

    # first view: the user's photo (read and checked now, before any run folder exists), or a prior
    given_depth = None
    if photo_start:
        from ..priors.photo import photo_priors

        fv = config.first_view
        text_to_image, given_depth = photo_priors(fv.image, fv.depth, config.width, config.height,
                                                  fv.max_upscale, fv.depth_png_scale)
        log.info("first view: %s", text_to_image.photo.describe())
    elif pc.text_to_image == "procedural":
        text_to_image = offline.text_to_image
    elif pc.text_to_image in OFFLINE_NAMES:
        raise UserInputError(f"priors.text_to_image: {pc.text_to_image!r} cannot make a first view "
                             "(use \"procedural\" or a text-to-image model)")
    else:
        from ..priors.diffusion import StableDiffusionTextToImage

        text_to_image = StableDiffusionTextToImage(sd_pipeline(pc.text_to_image, False), pc.diffusion,
                                                   label=pc.text_to_image)

    # inpainting
    if pc.inpainter in ("oracle", "procedural"):
        inpainter = offline.inpainter
    elif pc.inpainter == "classical":
        from ..priors.classical import ClassicalInpainter

        inpainter = ClassicalInpainter(pc.classical)
    elif pc.inpainter == "offline":
        raise UserInputError("priors.inpainter: \"offline\" is a refiner; use \"oracle\", \"classical\" or a model")
    else:
        from ..priors.diffusion import StableDiffusionInpainter

        inpainter = StableDiffusionInpainter(sd_pipeline(pc.inpainter, True), pc.diffusion, label=pc.inpainter)

    # depth (and, optionally, another estimator for the first view, which fixes the metric scale)
    def depth_estimator(name: str, field: str) -> DepthEstimator | DepthCompleter:
        if name == "classical":
            from ..priors.classical import ClassicalDepthCompleter

            return ClassicalDepthCompleter(pc.depth_completion)
        if name in ("oracle", "procedural"):
            return offline.depth
        if name == "oracle-exact":
            from ..priors.offline import OracleDepthEstimator

            return OracleDepthEstimator(offline.world)
        if name in OFFLINE_NAMES:
            raise UserInputError(f"priors.{field}: {name!r} is not a depth estimator "
                                 "(use \"oracle\", \"oracle-exact\" or a model)")
        from ..priors.depth_networks import TransformersDepthEstimator

        announce(name, field.replace("_", " "))
        return TransformersDepthEstimator.load(name, load_cfg(), pc.depth_network)

    depth = depth_estimator(pc.depth, "depth")
    if given_depth is not None:
        first_view_depth = given_depth
    else:
        first_view_depth = depth_estimator(pc.first_view_depth, "first_view_depth") \
            if pc.first_view_depth and pc.first_view_depth != pc.depth else None
        if isinstance(first_view_depth or depth, DepthCompleter):
            raise UserInputError(f"priors.{'first_view_depth' if first_view_depth else 'depth'}: \"classical\" "
                                 "completes depth from known pixels and cannot give the first view its depth; "
                                 "set priors.first_view_depth to a depth network or \"oracle-exact\"")

    # refiner: its adapter reads as many feature channels as the representation renders
    if pc.refiner == "offline" or not config.ablation.refinement:
        from ..priors.offline_refiner import OfflineRefiner

        ocfg = config.offline_refiner
        if not config.ablation.consistency:      # the same switch as on the diffusion refiner
            ocfg = replace(ocfg, consistency_weight=0.0)
        refiner = OfflineRefiner(ocfg)
    elif pc.refiner in OFFLINE_NAMES:
        raise UserInputError(f"priors.refiner: {pc.refiner!r} is not a refiner (use \"offline\" or a diffusion model)")
    else:
        from ..priors.refiner import DiffusionRefiner

        feature_dim = int(getattr(config.representation, "feature_dim", 0))
        rcfg = replace(config.refiner, feature_channels=feature_dim,
                       use_adapter=config.refiner.use_adapter and config.ablation.adapter,
                       consistency_weight=config.refiner.consistency_weight if config.ablation.consistency else 0.0)
        pipe = sd_pipeline(pc.refiner, False)
        refiner = DiffusionRefiner(pipe, rcfg, device=None if pc.cpu_offload else device,
                                   dtype=load_cfg().torch_dtype)

    return Priors(text_to_image, inpainter, depth, refiner, device, first_view_depth)
