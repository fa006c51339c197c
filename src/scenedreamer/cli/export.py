"""`scenedreamer export RUN --format FORMAT --out PATH`: the run's scene for other tools."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = "export a finished run's scene (splat-ply, points-ply, glb mesh, nerfstudio dataset)"
# format -> the output's required suffix ("" = a folder)
FORMATS = {"splat-ply": ".ply", "points-ply": ".ply", "glb": ".glb", "nerfstudio": ""}
NOT_AVAILABLE = {"spz": "no maintained library for Niantic's SPZ format was found (PyPI's spz 0.0.1 is a "
                        "single release whose source package does not build); use splat-ply"}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=HELP, description=HELP + " (see docs/usage/export.md).")
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")
    p.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, help="file to write (a folder for nerfstudio)")
    p.add_argument("--y-up", action="store_true",
                   help="splat-ply, points-ply: turn the scene 180 degrees about x (+y up); glb is always +y up")
    p.add_argument("--min-opacity", type=float, default=0.5, help="points-ply: keep Gaussians this opaque")
    p.add_argument("--voxel-size", type=float, default=None,
                   help="glb: TSDF voxel edge in scene units (default: automatic, ~256 voxels across)")
    p.add_argument("--device", default="cpu", help="glb: torch device for rendering and fusion")
    p.add_argument("--force", action="store_true", help="replace an earlier output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def _check_file_output(out: Path, suffix: str, fmt: str, force: bool) -> None:
    from ..atomic import check_writable_destination

    if out.suffix.lower() != suffix:
        raise UserInputError(f"--out {out}: a {fmt} export is a {suffix} file")
    if out.is_dir():
        raise UserInputError(f"--out {out}: is a folder")
    if out.exists() and not force:
        raise UserInputError(f"--out {out}: already exists (use --force to replace it)")
    check_writable_destination(out, folder=False)


def _progress(quiet: bool):
    """An event sink drawing one bar per stage of the export (or None), and its closer."""
    from .progress import StageBar

    if quiet:
        return None, lambda: None
    bars = [StageBar("render", "rendering views", unit="view"), StageBar("mesh", "fusing depth", unit="view"),
            StageBar("export", "writing frames", unit="frame")]

    def sink(event):
        for bar in bars:            # one bar on screen at a time: a new stage closes the others
            if bar.stage != event.stage:
                bar.close()
        for bar in bars:
            bar(event)
    return sink, lambda: [bar.close() for bar in bars]


def run(args) -> int:
    from ..export.run_inputs import check_finished_run

    if args.format in NOT_AVAILABLE:
        raise UserInputError(f"--format {args.format}: not available: {NOT_AVAILABLE[args.format]}")
    if args.format not in FORMATS:
        raise UserInputError(f"--format {args.format!r}: unknown (choose from {', '.join(FORMATS)})")
    if not 0.0 <= args.min_opacity <= 1.0:
        raise UserInputError(f"--min-opacity {args.min_opacity}: must be between 0 and 1")
    out = Path(args.out)
    if args.format == "nerfstudio":
        from ..pipeline.run_exports import check_nerfstudio_folder
        check_nerfstudio_folder(out, args.force)
    else:
        _check_file_output(out, FORMATS[args.format], args.format, args.force)
    root = check_finished_run(args.run_dir, "support" if args.format == "nerfstudio" else "scene.ply")
    sink, close = _progress(args.quiet)
    try:
        what = _export(args, root, out, sink)
    finally:
        close()
    print(f"wrote {out} ({what})")
    return 0


def _export(args, root: Path, out: Path, sink) -> str:
    from ..export.points import points_to_y_up

    if args.format == "nerfstudio":
        from ..pipeline.run_exports import nerfstudio_from_run
        nerfstudio_from_run(root, out, on_event=sink)
        return "nerfstudio dataset: transforms.json, images/, depths/"
    if args.format == "glb":
        from ..export.mesh import TriangleMesh, write_glb
        from ..pipeline.run_exports import mesh_config, mesh_from_run
        from .common import parse_device

        mesh = mesh_from_run(root, mesh_config(args.voxel_size), parse_device(args.device), on_event=sink)
        write_glb(out, TriangleMesh(points_to_y_up(mesh.vertices), mesh.faces, mesh.colours))
        return f"{len(mesh.vertices):,} vertices, {len(mesh.faces):,} triangles, +y up"
    from ..export.ply import read_gaussians_ply, write_gaussians_ply
    from ..export.points import gaussian_points, to_y_up, write_points_ply

    scene = read_gaussians_ply(root / "scene.ply")
    if args.format == "splat-ply":
        write_gaussians_ply(out, to_y_up(scene) if args.y_up else scene, include_features=False)
        return f"{scene.num_gaussians:,} Gaussians" + (", +y up" if args.y_up else ", +y down")
    xyz, rgb = gaussian_points(scene, args.min_opacity)
    write_points_ply(out, points_to_y_up(xyz) if args.y_up else xyz, rgb)
    return f"{len(xyz):,} points" + (", +y up" if args.y_up else ", +y down")
