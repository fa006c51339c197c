"""`scenedreamer extend RUN ...`: grow a finished run along a new path, as a numbered chapter."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = "grow a finished run along a new camera path (a chapter); list or revert chapters"


def add_parser(sub) -> None:
    p = sub.add_parser("extend", help=HELP,
                       description=HELP + ". The new cameras join the same support database and representation; "
                       "the run's outputs are rewritten over the whole world (see docs/usage/extend.md).")
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder (written by scenedreamer generate)")
    p.add_argument("--trajectory", default=None, metavar="PRESET|FILE",
                   help="the chapter's path: a transforms.json file in the run's world frame, or a preset "
                        "(orbit, rotate360, lookaround, forward, ...) continued from the run's last camera")
    p.add_argument("--surround", action="store_true",
                   help="the chapter's path is planned: turns (and looks down and up) at the run's first camera "
                        "until the 360-degree panorama from it is covered (excludes --trajectory and --frames)")
    p.add_argument("--frames", type=int, default=None,
                   help="cameras a preset adds (default: the run's trajectory.frames)")
    p.add_argument("--prompt", default="", help="what the new cameras show (default: the run's prompt)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting for this chapter; only progressive.*, fit.* and export.* "
                        "may change between chapters (VALUE is JSON, or a plain string); repeatable")
    p.add_argument("--resolution", default=None, metavar="WxH",
                   help="accepted only when it is the run's own (the resolution cannot change)")
    p.add_argument("--representation", default=None, metavar="KIND",
                   help="accepted only when it is the run's own (the representation cannot change)")
    p.add_argument("--seed", type=int, default=None,
                   help="accepted only when it is the run's own (the seed cannot change)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted chapter")
    p.add_argument("--history", action="store_true", help="list the run's chapters and exit")
    p.add_argument("--revert", type=int, default=None, metavar="N",
                   help="return the run to the end of chapter N (byte-identical files) and drop later chapters")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def _chapter_inputs(args: argparse.Namespace):
    """The chapter's ChapterInputs from the options (None when none is given)."""
    from ..pipeline.extend import ChapterInputs
    from .common import parse_size

    given = [name for name in ("trajectory", "frames", "resolution", "representation", "seed")
             if getattr(args, name) is not None] + (["prompt"] if args.prompt else []) + (["set"] if args.set else [])
    if not given and not args.surround:
        return None
    if args.surround and args.trajectory is not None:
        raise UserInputError("--surround and --trajectory exclude each other (--surround plans the path itself)")
    if args.surround and args.frames is not None:
        raise UserInputError("--frames: --surround chooses its own number of cameras")
    if args.trajectory is None and not args.surround:
        raise UserInputError("--trajectory PATH.json|PRESET (or --surround): the chapter's path is required")
    if args.surround:
        args.trajectory = ""
    if not args.surround and not args.trajectory.strip():
        raise UserInputError("--trajectory is empty: name a trajectory file or a preset")
    settings: dict = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--set {item!r}: expected KEY=VALUE")
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    width = height = None
    if args.resolution:
        width, height = parse_size(args.resolution, "--resolution", 4096)
    return ChapterInputs(trajectory=args.trajectory, frames=args.frames, prompt=args.prompt, settings=settings,
                         width=width, height=height, representation=args.representation, seed=args.seed,
                         surround=args.surround)


def run(args: argparse.Namespace) -> int:
    from ..pipeline import extend as ext
    from .progress import ProgressBar

    modes = [flag for flag, on in (("--resume", args.resume), ("--history", args.history),
                                   ("--revert", args.revert is not None)) if on]
    if len(modes) > 1:
        raise UserInputError(f"{' and '.join(modes)} exclude each other")
    inputs = _chapter_inputs(args)
    if (args.history or args.revert is not None) and inputs is not None:
        raise UserInputError(f"{modes[0]}: takes no chapter options (--trajectory, --surround, --prompt, --frames, "
                             "--set ...)")
    if args.history:
        print(ext.format_history(ext.history(args.run_dir)))
        return 0
    if args.revert is not None:
        chapter = ext.revert_run(args.run_dir, args.revert)
        print(f"{args.run_dir}: reverted to the end of chapter {chapter.number} (steps 0-{chapter.last_step})")
        return 0
    bar = None if args.quiet else ProgressBar()
    try:
        chapter = ext.extend_run(args.run_dir, inputs, resume=args.resume, on_event=_with_plan_line(bar))
    finally:
        if bar is not None:
            bar.close()
    written = [n for n in ("scene.ply", "video.mp4", "transforms.json") if (Path(args.run_dir) / n).exists()]
    print(f"chapter {chapter.number} (steps {chapter.first_step}-{chapter.last_step}) added to {args.run_dir} "
          f"({', '.join(written)} rewritten over the whole world)")
    if chapter.trajectory.startswith("surround") and (Path(args.run_dir) / "scene.ply").exists():
        print(_panorama_line(Path(args.run_dir)))
    return 0


def _with_plan_line(bar):
    """The progress sink, printing the --surround plan (a "surround" event, sent before the bar
    starts) as one line on stderr unless --quiet."""
    if bar is None:
        return None

    def sink(event) -> None:
        if event.stage == "surround":
            import sys

            print(event.message, file=sys.stderr)
        bar(event)
    return sink


def _panorama_line(root: Path) -> str:
    """'panorama from the first camera: 97.1% covered (target 95%)', measured on a render of the
    grown scene.ply (the real measure; pipeline/surround.py)."""
    from ..pipeline.render_run import load_render_inputs
    from ..pipeline.surround import SurroundConfig, panorama_empty_fraction

    inputs = load_render_inputs(root, "scene_ply")
    covered = 1.0 - panorama_empty_fraction(inputs.scene, inputs.run_cameras.centers[0].float())
    target = SurroundConfig().target_coverage
    return f"panorama from the first camera: {covered:.1%} covered (target {target:.0%})"
