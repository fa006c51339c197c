"""`--dry-run`: what a run would do and roughly what it needs, without loading anything."""

from __future__ import annotations

from ..priors.loading import DTYPES
from ..representation.triplane import TriplaneConfig
from .config import GenerateConfig
from .priors_factory import OFFLINE_LABELS as _OFFLINE_NAMES


def _model_line(role: str, name: str) -> str:
    """'role: description' for the plan's list of models."""
    from ..priors.model_registry import PRESETS as MODELS

    if name in _OFFLINE_NAMES:
        return f"  {role:<14} {_OFFLINE_NAMES[name]}"
    if name in MODELS:
        return f"  {role:<14} {name} ({MODELS[name].hub_id})"
    return f"  {role:<14} {name} (hub id or local folder)"


def network_parameters(name: str, config: GenerateConfig) -> int | None:
    """Parameters of one network: exact from a local folder's or cached snapshot's safetensors
    headers, else the preset's fp32 download size / 4; None when unknown (a hub id not cached)."""
    from ..errors import MissingWeightsError
    from ..priors.loading import ModelLoadConfig, resolve_source, weight_parameter_count

    try:
        source = resolve_source(name, ModelLoadConfig(cache_dir=config.priors.cache_dir, offline=True))
    except MissingWeightsError:
        return None
    if source.folder is not None:
        count = weight_parameter_count(source.folder, config.priors.variant)
        if count is not None:
            return count
    return int(source.preset.approx_size_gb * 1e9 / 4) if source.preset is not None else None


def loaded_networks(config: GenerateConfig) -> list[str]:
    """The distinct networks a run loads, each model name once, as build_priors loads them (the
    first view and the refiner share their SD pipeline; a first-view depth network named like
    the depth network is that network)."""
    pc = config.priors
    refiner = pc.refiner if config.ablation.refinement else ""
    names = (pc.text_to_image, pc.inpainter, refiner, pc.depth, pc.first_view_depth)
    return list(dict.fromkeys(n for n in names if n and n not in _OFFLINE_NAMES))


def representation_bytes(config: GenerateConfig) -> int:
    """Rough parameter bytes of the configured representation (float32)."""
    rep = config.representation
    if isinstance(rep, TriplaneConfig):
        planes = 3 * rep.resolution ** 2 * rep.channels
        mlp = rep.hidden_layers * rep.hidden_width ** 2 + rep.hidden_width * (rep.channels + 4 + rep.feature_dim)
        return 4 * (planes + mlp)
    per_gaussian = 3 + 3 + 4 + 1 + 3 * (rep.sh_degree + 1) ** 2 + getattr(rep, "feature_dim", 0)
    views = 1 + len(config.init.neighbour_yaws_deg) + len(config.init.neighbour_pitches_deg) + config.trajectory.frames
    return 4 * per_gaussian * config.width * config.height * views // 4


def describe_plan(config: GenerateConfig, out: str) -> str:
    """A human-readable plan: views, resolution, models, expected memory and output folder."""
    from .priors_factory import with_resolved_dtype
    from .scene_cameras import load_trajectory

    config = with_resolved_dtype(config)
    traj = load_trajectory(config)
    n_init = 1 + len(config.init.neighbour_yaws_deg) + len(config.init.neighbour_pitches_deg)
    n_views = n_init + len(traj.cameras) - 1
    rep = config.representation
    rep_kind = (f"tri-plane feature NeRF (3 x {rep.channels} ch x {rep.resolution}^2, {rep.feature_dim}-d features)"
                if isinstance(rep, TriplaneConfig) else f"3D Gaussians (SH degree {rep.sh_degree})")
    lines = [
        f"scenedreamer generate plan ({config.preset} preset)",
        f"  prompt         {config.prompt!r}",
        f"  output         {out}",
        f"  resolution     {config.width}x{config.height}",
        f"  trajectory     {config.trajectory.file or config.trajectory.preset}: {len(traj.cameras)} cameras",
        f"  support views  {n_views} ({n_init} at initialisation, {len(traj.cameras) - 1} progressive)",
        f"  representation {rep_kind}",
        f"  fitting        {config.init.fit_steps} + {config.progressive.fit_steps_per_view}/view iterations",
        "  ablations      " + ", ".join(f"{k}={'on' if v else 'off'}" for k, v in vars(config.ablation).items()),
        "  models:",
    ]
    for role, name in (("first view", config.priors.text_to_image), ("inpainting", config.priors.inpainter),
                       ("depth", config.priors.depth), ("first depth", config.priors.first_view_depth or config.priors.depth),
                       ("refiner", config.priors.refiner if config.ablation.refinement else "offline")):
        lines.append(_model_line(role, name))
    counts = {name: network_parameters(name, config) for name in loaded_networks(config)}
    weight_bytes = sum(c for c in counts.values() if c) * DTYPES[config.priors.dtype].itemsize
    unknown = [n for n, c in counts.items() if c is None]
    view_bytes = config.width * config.height * (3 * 4 + 4 + 2)
    rep_mb = representation_bytes(config) / 2**20
    lines += [
        "  expected memory:",
        f"    representation ~{rep_mb:.0f} MB (+ optimiser state x2)",
        f"    support database ~{n_views * view_bytes / 2**20:.0f} MB on disk",
        f"    network weights ~{weight_bytes / 1e9:.1f} GB ({len(counts)} network(s), each counted once, "
        f"in {config.priors.dtype}{', CPU offload' if config.priors.cpu_offload else ''})"
        + (f"; size unknown for {', '.join(unknown)}" if unknown else ""),
    ]
    return "\n".join(lines)
