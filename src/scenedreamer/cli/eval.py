"""`scenedreamer eval RUN [RUN ...]`: the paper's metrics for finished runs, side by side."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = ("evaluate finished runs (CLIP score, NIQE, BRISQUE, 3D consistency, revisits, empty fraction, "
        "ground truth with FLIP; --worldscore: camera control, 3D and photometric consistency)")


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=HELP, description=HELP + "; writes metrics.json, table.md and plots/ "
                       "(see docs/usage/eval.md).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="finished run folders")
    p.add_argument("--out", default=None,
                   help="output folder (default: RUN/eval for one run; required for several)")
    p.add_argument("--frames", type=int, default=30, help="cameras along each run's own path (default 30)")
    p.add_argument("--resolution", default=None, metavar="WxH",
                   help="render the path and held-out frames at this size (default: each run's own)")
    p.add_argument("--clip-model", default="auto",
                   help="CLIP weights for the CLIP score: preset, hub id or folder (downloaded if absent "
                        "unless --offline); default 'auto': clip-vit-b32 only if already cached, never the "
                        "network; '' turns it off")
    p.add_argument("--path", default="", metavar="PRESET",
                   help="render the path frames along this trajectory preset (orbit, back_and_forth, ...) from "
                        "the run's first camera instead of the run's own path")
    p.add_argument("--worldscore", action="store_true",
                   help="add WorldScore-style camera control, 3D and photometric consistency (needs pycolmap)")
    p.add_argument("--device", default="cpu", help="torch device for rendering and CLIP (cpu, cuda, ...)")
    p.add_argument("--offline", action="store_true", help="never contact the model hub")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import __version__
    from ..eval.evaluate import EvalConfig, check_run, evaluate_runs, metric_settings
    from ..eval.report import check_output_folder, write_report
    from .common import parse_device, parse_size
    from .progress import StageBar

    resolution = parse_size(args.resolution, "--resolution", 8192) if args.resolution is not None else None
    config = EvalConfig(frames=args.frames, clip_model=args.clip_model, device=parse_device(args.device),
                        offline=args.offline, resolution=resolution,
                        worldscore=args.worldscore, path=args.path)
    roots = [check_run(r) for r in args.runs]                      # every refusal before any work
    if args.out is None and len(roots) > 1:
        raise UserInputError("--out: required when evaluating several runs")
    out = check_output_folder(Path(args.out) if args.out is not None else roots[0] / "eval")
    _refuse_out_inside_runs(out, roots)
    if args.worldscore:
        from ..eval.worldscore import _require_pycolmap
        _require_pycolmap()
    bar = None if args.quiet else StageBar("eval", "evaluating")
    try:
        evaluations = evaluate_runs(roots, config, on_event=bar)
    finally:
        if bar is not None:
            bar.close()
    write_report(evaluations, out, metric_settings(config), __version__)
    print((out / "table.md").read_text(encoding="utf-8"), end="")
    print(f"wrote {out / 'metrics.json'}, {out / 'table.md'} and {out / 'plots'}/")
    return 0


def _refuse_out_inside_runs(out: Path, roots: list[Path]) -> None:
    """--out may not be a run folder nor lie inside one, except under its own ``eval/`` folder
    (the default): a run's files are the run's (issue 20)."""
    target = out.resolve()
    for root in roots:
        root = root.resolve()
        if target == root or (root in target.parents and not (target == root / "eval" or
                                                             (root / "eval") in target.parents)):
            raise UserInputError(f"--out {out}: inside the run folder {root} (only {root / 'eval'} is eval's); "
                                 f"choose another folder")
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    for folder in (probe, *probe.parents):
        if (folder / "config.json").is_file() and (folder / "progress.json").is_file() and folder.name != "eval" \
                and not any(folder == r.resolve() for r in roots):
            raise UserInputError(f"--out {out}: inside another run folder ({folder}); choose another folder")
