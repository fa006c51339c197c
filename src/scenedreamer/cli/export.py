"""`scenedreamer export RUN --format FORMAT --out PATH`: the run's scene for other tools."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError

HELP = "export a finished run's scene (splat-ply, points-ply)"
FORMATS = ("splat-ply", "points-ply")


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=HELP, description=HELP + " (see docs/usage/export.md).")
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")
    p.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--y-up", action="store_true", help="turn the scene 180 degrees about x (+y up)")
    p.add_argument("--min-opacity", type=float, default=0.5, help="points-ply: keep Gaussians this opaque")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.ply import read_gaussians_ply, write_gaussians_ply
    from ..export.points import gaussian_points, to_y_up, write_points_ply
    from ..export.run_inputs import check_finished_run

    if args.format not in FORMATS:
        raise UserInputError(f"--format {args.format!r}: unknown (choose from {', '.join(FORMATS)})")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserInputError(f"{out}: already exists (use --force to replace it)")
    root = check_finished_run(args.run_dir, "scene.ply")
    scene = read_gaussians_ply(root / "scene.ply")
    if args.y_up:
        scene = to_y_up(scene)
    if args.format == "splat-ply":
        write_gaussians_ply(out, scene, include_features=False)
    else:
        write_points_ply(out, *gaussian_points(scene, args.min_opacity))
    print(f"wrote {out}")
    return 0
