"""`scenedreamer trajectory`: make, check and plot camera paths (nerfstudio transforms.json).

    scenedreamer trajectory PRESET [--frames N] [preset options] --out FILE.json [--plot FILE.png]
    scenedreamer trajectory --check FILE.json [--plot FILE.png]
    scenedreamer trajectory --list

Only parses arguments and prints; the work is in ``geometry.trajectory``,
``geometry.trajectory_io`` and ``export.trajectory_plot``. Numbers are taken as text and checked by
the library, so every bad value ends as one line and exit code 2 (UserInputError).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields

from ..config_io import field_docs

HELP = "make, check or plot a camera path (nerfstudio transforms.json)"

DEFAULT_FRAMES = 60
"""Frame count when --frames is not given."""
DEFAULT_SIZE = 512
"""Image width and height when --width/--height are not given (pixels)."""
DEFAULT_FOV_DEG = 60.0
"""Horizontal field of view when --fov is not given (degrees)."""


def _option_names() -> dict[str, str]:
    """Preset option field name -> command-line flag, over all presets."""
    from ..geometry.trajectory_presets import TRAJECTORY_PRESETS

    names: dict[str, str] = {}
    for cls in TRAJECTORY_PRESETS.values():
        for f in fields(cls):
            names[f.name] = "--" + f.name.replace("_", "-")
    return names


def preset_lines() -> str:
    """'presets:' then one line per preset (its name and the first line of its docstring), for
    `trajectory --help`; `--list` adds every option."""
    from ..geometry.trajectory_presets import TRAJECTORY_PRESETS

    width = max(len(name) for name in TRAJECTORY_PRESETS)
    lines = ["presets (generate --trajectory NAME, or trajectory NAME --out FILE.json):"]
    for name, cls in TRAJECTORY_PRESETS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")
        lines.append(f"  {name:<{width}}  {summary}")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    """Register `trajectory` on the top-level subparsers."""
    parser = subparsers.add_parser(
        "trajectory", help=HELP,
        epilog=preset_lines(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a preset camera path as nerfstudio-style transforms.json (OpenGL camera axes), "
                    "validate an existing one (--check), or draw one from above (--plot). "
                    "World of presets: the first camera's frame, OpenCV axes (up = -y); angles in "
                    "degrees, distances in scene units. See `--list` for presets and their options.")
    parser.set_defaults(func=run)
    parser.add_argument("preset", nargs="?", default=None, metavar="PRESET",
                        help="preset name (see --list)")
    parser.add_argument("--frames", default=None, metavar="N", help=f"number of cameras (default {DEFAULT_FRAMES})")
    parser.add_argument("--width", default=None, metavar="PX", help=f"image width (default {DEFAULT_SIZE})")
    parser.add_argument("--height", default=None, metavar="PX", help=f"image height (default {DEFAULT_SIZE})")
    parser.add_argument("--fov", default=None, metavar="DEG",
                        help=f"horizontal field of view in degrees (default {DEFAULT_FOV_DEG:g})")
    parser.add_argument("--prompt", action="append", default=None, metavar="TEXT",
                        help="per-segment prompt; repeat to split the path into equal segments")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="write the trajectory here")
    parser.add_argument("--check", default=None, metavar="FILE", help="validate a transforms.json and summarise it")
    parser.add_argument("--plot", default=None, metavar="FILE.png", help="draw the path from above with frusta")
    parser.add_argument("--list", action="store_true", help="list the presets and their options")
    options = parser.add_argument_group("preset options (each applies to the presets that have it)")
    for name, flag in _option_names().items():
        options.add_argument(flag, dest=f"opt_{name}", default=None, metavar="X")


def _int_arg(flag: str, text: str | None, default: int) -> int:
    from ..errors import UserInputError

    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise UserInputError(f"{flag}: expected an integer, got {text!r}") from None


def _float_arg(flag: str, text: str | None, default: float) -> float:
    from ..errors import UserInputError

    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(f"{flag}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UserInputError(f"{flag}: must be finite, got {text!r}")
    return value


def _check_output(flag: str, path: str | None, example: str) -> None:
    """Refuse (UserInputError naming ``flag`` and the path the user gave) an output that cannot
    be written, before anything is: a folder (``example`` is the file name suggested in it) or a
    path whose nearest existing ancestor is not a writable folder."""
    from pathlib import Path

    from ..atomic import check_writable_destination
    from ..errors import UserInputError

    if path is None:
        return
    if str(path) in ("", "."):
        raise UserInputError(f"{flag}: give a file name, e.g. {example}")
    if Path(path).is_dir():
        raise UserInputError(f"{flag} {path}: is a folder; give a file name, e.g. {Path(path) / example}")
    check_writable_destination(path, folder=False, flag=flag)


def _print_summary(title: str, summary: dict) -> None:
    print(title)
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list):
            value = ", ".join(f"{v:.4g}" for v in value)
        print(f"  {key}: {value}")


def _list_presets() -> int:
    from ..geometry.trajectory_presets import TRAJECTORY_PRESETS

    for name, cls in TRAJECTORY_PRESETS.items():
        print(f"{name}: {' '.join((cls.__doc__ or '').split())}")
        docs = field_docs(cls)
        for f in fields(cls):
            rng = {k: v for k, v in f.metadata.items() if v is not None}
            bounds = ", ".join(f"{k} {v:g}" for k, v in rng.items())
            print(f"    --{f.name.replace('_', '-')} (default {f.default:g}{'; ' + bounds if bounds else ''}): "
                  f"{docs.get(f.name, '')}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Make / check / plot a trajectory; returns the exit code (UserInputError -> 2 in main)."""
    from ..errors import UserInputError

    if args.list:
        return _list_presets()
    # every output is checked before the first is written (a bad --plot must not leave --out)
    if args.check is None:           # with --check, --out is refused below
        _check_output("--out", args.out, "trajectory.json")
    _check_output("--plot", args.plot, "trajectory.png")
    given = {name: getattr(args, f"opt_{name}") for name in _option_names()
             if getattr(args, f"opt_{name}") is not None}

    if args.check is not None:
        if args.preset is not None or given or args.out is not None:
            raise UserInputError("--check FILE takes no PRESET, preset options or --out")
        from ..geometry.trajectory_io import read_transforms_json, summarize_trajectory

        traj = read_transforms_json(args.check)
        _print_summary(f"{args.check}: ok", summarize_trajectory(traj))
    else:
        if args.preset is None:
            raise UserInputError("give a PRESET (see --list) or --check FILE")
        from ..geometry.trajectory import make_trajectory
        from ..geometry.trajectory_io import summarize_trajectory, write_transforms_json

        traj = make_trajectory(args.preset, _int_arg("--frames", args.frames, DEFAULT_FRAMES),
                               _int_arg("--width", args.width, DEFAULT_SIZE),
                               _int_arg("--height", args.height, DEFAULT_SIZE),
                               fov_deg=_float_arg("--fov", args.fov, DEFAULT_FOV_DEG),
                               prompts=args.prompt, **given)
        if args.out is not None:
            write_transforms_json(args.out, traj)
        _print_summary(f"{args.out or 'preset ' + args.preset}: {args.preset}", summarize_trajectory(traj))

    if args.plot is not None:
        from ..export.trajectory_plot import plot_trajectory

        plot_trajectory(traj, args.plot)
        print(f"plot: {args.plot}")
    return 0
