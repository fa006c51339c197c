"""`--dry-run`: what a run would do and roughly what it needs, without loading anything."""

from __future__ import annotations

from ..representation.triplane import TriplaneConfig
from .config import GenerateConfig

from .priors_factory import OFFLINE_LABELS as _OFFLINE_NAMES


def _model_line(role: str, name: str) -> tuple[str, float]:
    """('role: description', approx weight size in GB)."""
    from ..priors.model_registry import PRESETS as MODELS

    if name in _OFFLINE_NAMES:
        return f"  {role:<14} {_OFFLINE_NAMES[name]}", 0.0
    if name in MODELS:
        m = MODELS[name]
        return f"  {role:<14} {name} ({m.hub_id}, ~{m.approx_size_gb:.1f} GB fp32)", m.approx_size_gb
    return f"  {role:<14} {name} (hub id or local folder)", 0.0


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
    total_gb = 0.0
    for role, name in (("first view", config.priors.text_to_image), ("inpainting", config.priors.inpainter),
                       ("depth", config.priors.depth), ("first depth", config.priors.first_view_depth or config.priors.depth), ("refiner", config.priors.refiner if config.ablation.refinement else "offline")):
        line, gb = _model_line(role, name)
        lines.append(line)
        total_gb += gb
    view_bytes = config.width * config.height * (3 * 4 + 4 + 2)
    rep_mb = representation_bytes(config) / 2**20
    half = config.priors.dtype in ("fp16", "bf16")
    lines += [
        "  expected memory:",
        f"    representation ~{rep_mb:.0f} MB (+ optimiser state x2)",
        f"    support database ~{n_views * view_bytes / 2**20:.0f} MB on disk",
        f"    network weights ~{total_gb * (0.5 if half else 1.0):.1f} GB ({config.priors.dtype}"
        f"{', CPU offload' if config.priors.cpu_offload else ''})",
    ]
    return "\n".join(lines)
