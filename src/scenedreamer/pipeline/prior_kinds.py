"""THE table of prior names: name -> the roles it may play, its label and its builder per role.

The method has five roles (ROLES). A role is played either by a built-in stand-in named in
PRIOR_KINDS ("procedural", "oracle", "oracle-exact", "classical", "offline") or by a real model: a
preset from `scenedreamer models list`, a hub id or a local folder (MODEL_BUILDERS, loaded through
priors/loading.py). Everything that asks "which names are stand-ins", "may NAME play ROLE",
"which label does --dry-run show", "which stand-ins render the procedural world" reads this
table (priors_factory.build_priors, config.check_first_view, plan, cli/generate, cli/models).
Adding a stand-in = its module in priors/ + one PriorKind here (or ``register_prior_kind``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import UserInputError

if TYPE_CHECKING:
    import torch

    from .config import GenerateConfig

ROLES: dict[str, str] = {
    "text_to_image": "a first-view generator",
    "inpainter": "an inpainter",
    "depth": "a depth estimator",
    "first_view_depth": "a first-view depth estimator (it fixes the scene's metric scale)",
    "refiner": "a refiner",
}
"""The roles, as priors.<role> names them, with what a prior playing it is (for error lines)."""

STAND_IN_REFINER = "offline"
"""The refiner that runs when refinement is ablated (--no-refinement)."""


class BuildContext:
    """What builders share while build_priors builds one run's priors: the config, the device,
    the procedural world (built once, on first use), the model-load settings and the cache of
    loaded Stable Diffusion pipelines (a model playing two roles is loaded once; a text encoder or
    VAE two models ship alike is held once: priors/shared_components.py)."""

    def __init__(self, config: GenerateConfig, device: torch.device, announce: Callable[[str, str], None]):
        self.config = config
        self.device = device
        self.announce = announce
        self._world = None
        self._load_config = None
        self._sd: dict[tuple[str, bool], Any] = {}
        self._loaded_pipelines = None       # priors.loading.LoadedPipelines, made on first use

    @property
    def world(self):
        """The procedural world's stand-ins (priors/offline.py OfflinePriors) of the run's prompt."""
        if self._world is None:
            from ..priors.offline import build_offline_priors

            pc = self.config.priors
            self._world = build_offline_priors(self.config.prompt, self.config.seed, pc.world, pc.oracle_depth)
        return self._world

    def load_config(self):
        """The priors.loading.ModelLoadConfig of the run (its device and resolved dtype)."""
        if self._load_config is None:
            from ..priors.loading import ModelLoadConfig, resolve_dtype

            pc = self.config.priors
            self._load_config = ModelLoadConfig(
                device=str(self.device), dtype=resolve_dtype(pc.dtype, self.device), offline=pc.offline,
                cpu_offload=pc.cpu_offload, attention_slicing=pc.attention_slicing, cache_dir=pc.cache_dir,
                variant=pc.variant, sequential_offload=pc.sequential_offload,
                channels_last=pc.channels_last)
            warn_fast_preset_in_fp32(self.config, self._load_config)
        return self._load_config

    def sd_pipeline(self, name: str, inpainting: bool):
        """The Stable Diffusion (inpainting) pipeline ``name``, loaded once per run."""
        from ..priors.loading import LoadedPipelines, load_sd_pipeline

        from ..priors.diffusion import configure_sampler

        key = (name, inpainting)
        if key not in self._sd:
            pc = self.config.priors
            self.announce(name, "inpainting" if inpainting else "text-to-image / refiner")
            if self._loaded_pipelines is None:
                self._loaded_pipelines = LoadedPipelines()
            pipe = load_sd_pipeline(name, self.load_config(), inpainting=inpainting,
                                    lora=pc.lora or None, tiny_vae=pc.tiny_vae or None,
                                    loaded=self._loaded_pipelines)
            configure_sampler(pipe, pc.diffusion.sampler)        # the refiner samples with it too
            self._sd[key] = pipe
        return self._sd[key]


FP32_SLOWDOWN = 2.5
"""How much longer a diffusion run takes in fp32 than in native bf16 on the CPU (2.2-2.8x
measured for SD, BENCHMARKS.md; loading.resolve_dtype)."""


def warn_fast_preset_in_fp32(config: GenerateConfig, load_config) -> None:
    """A fast preset (name ending in "-fast") that runs in fp32 on the CPU, because the CPU has
    no native bf16: one warning with the expected time (it still runs)."""
    from ..priors.loading import cpu_has_fast_bf16

    if not config.preset.endswith("-fast") or load_config.dtype != "fp32" or not load_config.device.startswith("cpu"):
        return
    if cpu_has_fast_bf16():             # fp32 by choice on a CPU that has bf16: nothing to warn about
        return
    import warnings

    from .plan import expected_seconds
    from ..threads import current_threads

    minutes = expected_seconds(config, config.trajectory.frames, current_threads()) / 60
    warnings.warn(f"preset {config.preset}: this CPU has no native bf16, so the networks run in fp32, about "
                  f"{FP32_SLOWDOWN:g}x slower than on a CPU with AVX512-BF16/AMX; expect roughly "
                  f"{max(1.0, minutes * FP32_SLOWDOWN):.0f} min (a GPU takes about a minute)", stacklevel=2)


Builder = Callable[[BuildContext, str], Any]
"""builder(context, name) -> the prior object playing the role (priors/base.py interfaces)."""


@dataclass(frozen=True)
class PriorKind:
    """A built-in prior name: what it may play, how it is labelled and how each role is built."""

    name: str
    """what users type (priors.<role> = NAME)"""
    label: str
    """what --dry-run shows for it"""
    roles: Mapping[str, Builder]
    """role -> builder; a role not listed is refused with one line"""
    procedural_world: bool = False
    """it renders the procedural world: it knows no user photo (refused for a photo start)"""
    role_labels: Mapping[str, str] = field(default_factory=dict)
    """role -> label, where the role's label differs from ``label``"""
    refusals: Mapping[str, str] = field(default_factory=dict)
    """role -> why it cannot play that role (added to the refusal line)"""


# ---- builders of the stand-ins ------------------------------------------------------------------

def _world_text_to_image(ctx: BuildContext, name: str):
    return ctx.world.text_to_image


def _world_inpainter(ctx: BuildContext, name: str):
    return ctx.world.inpainter


def _world_depth(ctx: BuildContext, name: str):
    return ctx.world.depth


def _exact_depth(ctx: BuildContext, name: str):
    from ..priors.offline import OracleDepthEstimator

    return OracleDepthEstimator(ctx.world.world)


def _classical_inpainter(ctx: BuildContext, name: str):
    from ..priors.classical import ClassicalInpainter

    return ClassicalInpainter(ctx.config.priors.classical)


def _classical_depth(ctx: BuildContext, name: str):
    from ..priors.classical import ClassicalDepthCompleter

    return ClassicalDepthCompleter(ctx.config.priors.depth_completion)


def _offline_refiner(ctx: BuildContext, name: str):
    from ..priors.offline_refiner import OfflineRefiner

    ocfg = ctx.config.offline_refiner
    if not ctx.config.ablation.consistency:      # the same switch as on the diffusion refiner
        ocfg = replace(ocfg, consistency_weight=0.0)
    return OfflineRefiner(ocfg)


PRIOR_KINDS: dict[str, PriorKind] = {kind.name: kind for kind in (
    PriorKind("procedural", "procedural world (offline stand-in)",
              {"text_to_image": _world_text_to_image, "inpainter": _world_inpainter, "depth": _world_depth,
               "first_view_depth": _world_depth}, procedural_world=True),
    PriorKind("oracle", "procedural world oracle (offline stand-in)",
              {"inpainter": _world_inpainter, "depth": _world_depth, "first_view_depth": _world_depth},
              procedural_world=True),
    PriorKind("oracle-exact", "procedural world exact metric depth (offline stand-in for a metric network)",
              {"depth": _exact_depth, "first_view_depth": _exact_depth}, procedural_world=True),
    PriorKind("classical", "OpenCV Telea/NS + PatchMatch (classical)",
              {"inpainter": _classical_inpainter, "depth": _classical_depth},
              role_labels={"depth": "completion of the view's known depth (classical, no network)"},
              refusals={"first_view_depth": "it completes depth from known pixels and cannot give the first "
                                            "view its depth; set priors.first_view_depth to a depth network "
                                            "or \"oracle-exact\""}),
    PriorKind(STAND_IN_REFINER, "composite of render + local frame (offline stand-in)",
              {"refiner": _offline_refiner}),
)}
"""Every prior name that is not a model, in the order error lines list them."""


# ---- builders of real models (any name not in the table) ---------------------------------------

def _model_text_to_image(ctx: BuildContext, name: str):
    from ..priors.diffusion import StableDiffusionTextToImage

    return StableDiffusionTextToImage(ctx.sd_pipeline(name, False), ctx.config.priors.diffusion, label=name)


def _model_inpainter(ctx: BuildContext, name: str):
    from ..priors.diffusion import StableDiffusionInpainter

    return StableDiffusionInpainter(ctx.sd_pipeline(name, True), ctx.config.priors.diffusion, label=name)


def _model_depth(ctx: BuildContext, name: str, role: str = "depth"):
    from ..priors.depth_networks import TransformersDepthEstimator

    ctx.announce(name, role.replace("_", " "))
    return TransformersDepthEstimator.load(name, ctx.load_config(), ctx.config.priors.depth_network)


def _model_refiner(ctx: BuildContext, name: str):
    from ..priors.refiner import DiffusionRefiner

    config = ctx.config
    # the adapter reads as many feature channels as the representation renders
    feature_dim = int(getattr(config.representation, "feature_dim", 0))
    rcfg = replace(config.refiner, feature_channels=feature_dim,
                   use_adapter=config.refiner.use_adapter and config.ablation.adapter,
                   consistency_weight=config.refiner.consistency_weight if config.ablation.consistency else 0.0)
    pipe = ctx.sd_pipeline(name, False)
    offloaded = config.priors.cpu_offload or config.priors.sequential_offload
    return DiffusionRefiner(pipe, rcfg, device=None if offloaded else ctx.device,
                            dtype=ctx.load_config().torch_dtype)


MODEL_BUILDERS: dict[str, tuple[Builder, bool | None]] = {
    "text_to_image": (_model_text_to_image, False),
    "inpainter": (_model_inpainter, True),
    "depth": (_model_depth, None),
    "first_view_depth": (lambda ctx, name: _model_depth(ctx, name, "first_view_depth"), None),
    "refiner": (_model_refiner, False),
}
"""role -> (builder of a real model, what it loads: True an SD inpainting pipeline, False an SD
pipeline, None a depth network), for every name not in PRIOR_KINDS."""


# ---- questions the rest of the program asks ----------------------------------------------------

def register_prior_kind(kind: PriorKind) -> None:
    """Add a stand-in to the table (ValueError for an unknown role or a name already taken)."""
    unknown = set(kind.roles) - set(ROLES)
    if unknown:
        raise ValueError(f"prior kind {kind.name!r}: unknown role(s) {sorted(unknown)} (roles: {list(ROLES)})")
    if kind.name in PRIOR_KINDS and PRIOR_KINDS[kind.name] is not kind:
        raise ValueError(f"prior kind {kind.name!r} is already registered")
    PRIOR_KINDS[kind.name] = kind


def is_stand_in(name: str) -> bool:
    """True when ``name`` is a built-in stand-in, not a model that is loaded."""
    return name in PRIOR_KINDS


def renders_procedural_world(name: str) -> bool:
    """True when ``name`` is a stand-in that renders the procedural world (knows no photo)."""
    kind = PRIOR_KINDS.get(name)
    return kind is not None and kind.procedural_world


def photo_stand_in(role: str) -> str:
    """The first network-free stand-in that plays ``role`` on any picture (not the procedural
    world's): what a photo start swaps a procedural-world stand-in for; "" when there is none."""
    return next((k.name for k in PRIOR_KINDS.values() if role in k.roles and not k.procedural_world), "")


def role_names(config: GenerateConfig) -> dict[str, str | None]:
    """role -> the name that plays it in a run of ``config`` (None: nothing plays it: the photo
    of a photo start makes the first view, its given depth map the first view's depth). The
    first view's depth is ``priors.first_view_depth``, or ``priors.depth`` when that is ""; the
    refiner is the stand-in when refinement is ablated."""
    pc, fv = config.priors, config.first_view
    return {"text_to_image": None if fv.image else pc.text_to_image,
            "inpainter": pc.inpainter,
            "depth": pc.depth,
            "first_view_depth": None if fv.depth else (pc.first_view_depth or pc.depth),
            "refiner": pc.refiner if config.ablation.refinement else STAND_IN_REFINER}


def _field(role: str, config: GenerateConfig) -> str:
    """The config key the user set for ``role`` (the first view's depth falls back on depth)."""
    if role == "first_view_depth" and not config.priors.first_view_depth:
        return "priors.depth"
    return f"priors.{role}"


def check_roles(config: GenerateConfig) -> None:
    """One UserInputError line when a stand-in is named for a role it cannot play, naming the key
    and the names that can; before anything is loaded or written. Models are checked when loaded."""
    for role, name in role_names(config).items():
        kind = PRIOR_KINDS.get(name) if name is not None else None
        if kind is None or role in kind.roles:
            continue
        can = [f'"{k.name}"' for k in PRIOR_KINDS.values() if role in k.roles]
        why = kind.refusals.get(role)
        raise UserInputError(f"{_field(role, config)}: {name!r} is not {ROLES[role]}"
                             + (f" ({why})" if why else "")
                             + f"; use {', '.join(can) + ' or ' if can else ''}a model (preset, hub id or folder)")


def build_role(ctx: BuildContext, role: str, name: str):
    """The prior object playing ``role`` by ``name`` (a stand-in's builder, or a real model)."""
    kind = PRIOR_KINDS.get(name)
    builder = kind.roles[role] if kind is not None else MODEL_BUILDERS[role][0]
    return builder(ctx, name)


def real_models(config: GenerateConfig) -> list[tuple[str, bool | None]]:
    """(name, inpainting) of every real model build_priors will load, each once, in load order
    (inpainting None: a depth network, or, last, the LoRA and tiny VAE every SD pipeline gets). An SD folder asked for as both a text-to-image and an
    inpainting pipeline is loaded twice (two pipelines) and listed twice; --dry-run counts it so."""
    unique = []
    for role, name in role_names(config).items():
        item = (name, MODEL_BUILDERS[role][1])
        if name is not None and not is_stand_in(name) and item not in unique:
            unique.append(item)
    if any(inpainting is not None for _, inpainting in unique):    # a Stable Diffusion pipeline loads
        pc = config.priors
        unique += [(part, None) for part in (pc.lora, pc.tiny_vae) if part and (part, None) not in unique]
    return unique


def run_licenses(config: GenerateConfig) -> dict:
    """What a run writes to licenses.json: {"models": [record, ...]}, one record per built-in
    stand-in (with the roles it plays) and per real model it loads (priors/licenses.py: id,
    revision, licence, sha256 of each weight file read), in load order."""
    from ..priors.licenses import model_record, stand_in_record
    from ..priors.loading import local_status

    stand_ins: dict[str, list[str]] = {}
    for role, name in role_names(config).items():
        if name is not None and is_stand_in(name):
            stand_ins.setdefault(name, []).append(role)
    records = [stand_in_record(name, roles) for name, roles in stand_ins.items()]
    for name, inpainting in real_models(config):
        status = local_status(name, config.priors.cache_dir)
        records.append(model_record(name, status.folder, status.source.hub_id,
                                    without_vae=inpainting is not None and bool(config.priors.tiny_vae)))
    return {"models": records}


def describe_prior(role: str, name: str) -> str:
    """What --dry-run shows for ``name`` playing ``role``: the stand-in's label, or the model
    preset's hub id, or "hub id or local folder"."""
    from ..priors.model_registry import PRESETS as MODELS

    kind = PRIOR_KINDS.get(name)
    if kind is not None:
        return kind.role_labels.get(role, kind.label)
    if name in MODELS:
        return f"{name} ({MODELS[name].hub_id})"
    return f"{name} (hub id or local folder)"
