"""`scenedreamer generate PROMPT ...`: text + camera path -> a 3D scene in a run folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = "generate a 3D scene from a text prompt along a camera trajectory"


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help=HELP, description=HELP + ". Writes a run folder (see docs/usage/generate.md).")
    p.add_argument("prompt", nargs="?", default=None,
                   help="the scene description, e.g. \"a forest lake at sunset\" (required unless --list-settings)")
    p.add_argument("--preset", default="offline",
                   help="named configuration: offline (no downloaded weights; procedural world stand-ins), sd15, sd2, "
                        "sd15-fast, sd2-fast (few-step sampling, tiny autoencoder, Depth Anything V2 Small)")
    p.add_argument("--trajectory", default=None, metavar="PRESET|FILE",
                   help="a trajectory preset name (orbit, rotate360, lookaround, lookdown, forward, back_and_forth, "
                        "spiral) or a nerfstudio transforms.json file")
    p.add_argument("--frames", type=int, default=None, help="cameras along a preset trajectory")
    p.add_argument("--image", default=None, metavar="PATH",
                   help="start from this photo: it becomes the first view (scaled and centre-cropped to the "
                        "resolution; the crop is reported), its depth from the first-view depth network")
    p.add_argument("--image-depth", default=None, metavar="PATH",
                   help="the photo's z-depth in metres (.npy, or 16-bit PNG in millimetres), same size as the "
                        "photo; lets the offline preset start from a photo")
    p.add_argument("--out", default="runs/scene", help="run folder to write (default: runs/scene)")
    p.add_argument("--seed", type=int, default=None, help="random seed (same seed + config = same scene)")
    p.add_argument("--resolution", default=None, metavar="WxH", help="view size in pixels, e.g. 256x256")
    # the names come from the representation kinds table, checked in build_config (importing the
    # table here would load torch for every `scenedreamer --help`)
    p.add_argument("--representation", default=None, metavar="KIND",
                   help="the unified 3D representation: nerf (the method's tri-plane NeRF) or gaussians "
                        "(default: the preset's; offline: gaussians, the faster path; sd15/sd2: nerf)")
    p.add_argument("--device", default=None, help="torch device: auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default=None,
                   help="network weights/compute dtype (default auto: fp16 on CUDA, bf16 on a CPU with fast bf16, "
                        "else fp32; fp16 on the CPU is refused); config.json records what ran")
    p.add_argument("--config", default=None, metavar="FILE", help="start from a saved config.json instead of a preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field by dotted path, e.g. --set fit.lr_scale=0.5 "
                        "(VALUE is JSON, or a plain string); repeatable")
    for name, what in [("refinement", "the 3D-aware refiner"), ("adapter", "the feature adapter"),
                       ("replay", "replay of old views"), ("consistency", "local consistency regularisation")]:
        p.add_argument(f"--no-{name}", action="store_true", help=f"ablation: switch off {what}")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--list-settings", action="store_true",
                   help="print every setting --set reaches (for this preset and options) with its value and meaning, and exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan (views, resolution, models, memory) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def parse_resolution(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H), both positive integers up to 4096 (UserInputError otherwise)."""
    from .common import parse_size

    return parse_size(text, "--resolution", 4096)


def apply_override(config, dotted: str, value, full: str | None = None):
    """A copy of a nested frozen dataclass config with the field at ``dotted`` set to ``value``
    (``full``: the whole dotted key, for error messages)."""
    full = full or dotted
    head, _, rest = dotted.partition(".")
    names = {f.name for f in dataclasses.fields(config)}
    if head not in names:
        raise UserInputError(f"--set {full}: {type(config).__name__} has no field {head!r}")
    if rest:
        child = getattr(config, head)
        if not dataclasses.is_dataclass(child):
            raise UserInputError(f"--set {full}: {head!r} is not a group of settings")
        return dataclasses.replace(config, **{head: apply_override(child, rest, value, full)})
    return dataclasses.replace(config, **{head: value})


def build_config(args: argparse.Namespace):
    """The resolved GenerateConfig from a preset (or saved config) and the command-line options."""
    from ..config_io import from_json_dict, load_config, to_json_dict
    from ..pipeline.config import GenerateConfig, preset_config, with_first_view_image
    from ..representation.registry import kind_for_cli

    if args.representation:
        kind_for_cli(args.representation)       # an unknown name: one line naming the known ones
    config = load_config(GenerateConfig, args.config) if args.config else preset_config(args.preset, args.representation)
    if args.prompt is None:
        if not args.list_settings:
            raise UserInputError("give the scene's PROMPT, e.g. scenedreamer generate \"a forest lake at sunset\"")
        args.prompt = config.prompt
    if not args.prompt.strip():
        raise UserInputError("the prompt is empty: describe the scene, e.g. \"a forest lake at sunset\"")
    config = dataclasses.replace(config, prompt=args.prompt.strip())
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.resolution:
        w, h = parse_resolution(args.resolution)
        config = dataclasses.replace(config, width=w, height=h)
    if args.trajectory:
        is_file = args.trajectory.endswith(".json") or Path(args.trajectory).exists()
        traj = config.trajectory
        traj = dataclasses.replace(traj, file=args.trajectory, preset=traj.preset) if is_file else \
            dataclasses.replace(traj, preset=args.trajectory, file="")
        config = dataclasses.replace(config, trajectory=traj)
    if args.frames is not None:
        config = dataclasses.replace(config, trajectory=dataclasses.replace(config.trajectory, frames=args.frames))
    if args.representation:         # another kind than the config's: that kind's default config
        kind = kind_for_cli(args.representation)
        if type(config.representation) is not kind.config_class:
            config = dataclasses.replace(config, representation=kind.default_config())
    if args.device:
        config = dataclasses.replace(config, priors=dataclasses.replace(config.priors, device=args.device))
    if args.dtype:
        config = dataclasses.replace(config, priors=dataclasses.replace(config.priors, dtype=args.dtype))
    ablation = config.ablation
    for name in ("refinement", "adapter", "replay", "consistency"):
        if getattr(args, f"no_{name}"):
            ablation = dataclasses.replace(ablation, **{name: False})
    config = dataclasses.replace(config, ablation=ablation)
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UserInputError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        try:
            config = apply_override(config, key.strip(), value)
        except (ValueError, TypeError) as err:      # a config's own __post_init__ checks
            raise UserInputError(f"--set {key.strip()}: {' '.join(str(err).split())}") from None
        except UserInputError as err:               # name the user's key when a class check did not
            if key.strip() in str(err):
                raise
            raise UserInputError(f"--set {key.strip()}: {' '.join(str(err).split())}") from None
    # after --set: a photo start checks its depth source against the priors the user chose
    if args.image or args.image_depth:      # (a depth map alone is refused by the config's own check)
        config = with_first_view_image(config, args.image or "", args.image_depth or "")
    # round-trip through JSON: validates every overridden value against its declared type
    config = from_json_dict(GenerateConfig, to_json_dict(config), where="config")
    return _fit_resolution_to_priors(config)


def _fit_resolution_to_priors(config):
    """Diffusion models need sizes that are multiples of 8: round (and say so)."""
    from ..pipeline.prior_kinds import is_stand_in

    uses_diffusion = any(not is_stand_in(name)
                         for name in (config.priors.text_to_image, config.priors.inpainter, config.priors.refiner))
    if not uses_diffusion:
        return config
    w, h = (max(64, 8 * round(v / 8)) for v in (config.width, config.height))
    if (w, h) != (config.width, config.height):
        print(f"scenedreamer generate: note: resolution {config.width}x{config.height} rounded to {w}x{h} "
              "(diffusion models need multiples of 8)", file=sys.stderr)
        config = dataclasses.replace(config, width=w, height=h)
    return config


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.list_settings:
        from ..config_io import settings

        for key, value, doc in settings(config):
            print(f"{key} = {value}" + (f"  # {doc}" if doc else ""))
        return 0
    if args.dry_run:            # planning only: nothing on this path imports torch (tests/cli/test_startup.py)
        from ..pipeline.plan import describe_plan

        print(describe_plan(config, args.out))
        return 0
    from ..pipeline.run import run_generation
    from .progress import ProgressBar

    bar = None if args.quiet else ProgressBar()
    try:
        root = run_generation(config, args.out, resume=args.resume, overwrite=args.overwrite, on_event=bar)
    finally:
        if bar is not None:
            bar.close()
    written = [n for n in ("scene.ply", "video.mp4", "transforms.json", "config.json") if (Path(root) / n).exists()]
    print(f"scene written to {root} ({', '.join(written)})")
    return 0
