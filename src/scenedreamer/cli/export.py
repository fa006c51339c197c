"""`scenedreamer export RUN --format FORMAT --out PATH`: the run's scene for other tools."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = ("export a finished run's scene (splat-ply, points-ply, glb mesh, nerfstudio dataset, "
        "compressed spz, gltf-splat, usd splats, walkable collider + spawn.json)")
# format -> the output's required suffix ("" = a folder)
FORMATS = {"splat-ply": ".ply", "points-ply": ".ply", "glb": ".glb", "nerfstudio": "",
           "spz": ".spz", "gltf-splat": ".glb", "usd": ".usd", "collider": ".glb"}
# the splat formats written from scene.ply (export/spz.py, gltf_splat.py, usd_splat.py), always
# +y up as each format defines it (docs/usage/export.md) -> what the summary line says
SPLAT_FORMATS = {"spz": "SPZ v3, RUB axes (+y up)", "gltf-splat": "glTF KHR_gaussian_splatting, +y up",
                 "usd": "OpenUSD ParticleField3DGaussianSplat, +y up"}
NOT_AVAILABLE: dict[str, str] = {}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=HELP, description=HELP + " (see docs/usage/export.md).")
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")
    p.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, help="file to write (a folder for nerfstudio; collider also writes FILE.spawn.json beside it)")
    p.add_argument("--up", choices=["y", "z"], default=None,
                   help="points-ply: y (+y up: three.js, Unity) or z (+z up: Blender, first camera looking "
                        "along +y); splat-ply: y only; default: the run's world (+y down); glb, spz, gltf-splat and usd are always +y up")
    p.add_argument("--y-up", action="store_true", help="the same as --up y (kept for older scripts)")
    p.add_argument("--min-opacity", type=float, default=0.5, help="points-ply: keep Gaussians this opaque")
    p.add_argument("--mesher", choices=("views", "tsdf"), default="views",
                   help="glb: views = each support view's depth where it added content (default; "
                        "keeps near and far detail), tsdf = one fused voxel grid")
    p.add_argument("--voxel-size", type=float, default=None,
                   help="glb --mesher tsdf: voxel edge in scene units (default: automatic, ~256 voxels across)")
    p.add_argument("--with-backdrop", action="store_true",
                   help="glb: also write the backdrop (sky) as a separate node named 'backdrop'")
    p.add_argument("--device", default="cpu", help="glb --mesher tsdf: torch device for the fusion")
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
    bars = [StageBar("render", "rendering views", unit="view"), StageBar("mesh", "meshing", unit="step"),
            StageBar("export", "writing frames", unit="frame")]

    def sink(event):
        for bar in bars:            # one bar on screen at a time: a new stage closes the others
            if bar.stage != event.stage:
                bar.close()
        for bar in bars:
            bar(event)
    return sink, lambda: [bar.close() for bar in bars]


def run(args) -> int:
    from ..pipeline.run_contract import ensure_not_run_file, require_finished_run

    if args.format in NOT_AVAILABLE:
        raise UserInputError(f"--format {args.format}: not available: {NOT_AVAILABLE[args.format]}")
    if args.format not in FORMATS:
        raise UserInputError(f"--format {args.format!r}: unknown (choose from {', '.join(FORMATS)})")
    if not 0.0 <= args.min_opacity <= 1.0:
        raise UserInputError(f"--min-opacity {args.min_opacity}: must be between 0 and 1")
    if args.y_up:
        if args.up not in (None, "y"):
            raise UserInputError(f"--y-up and --up {args.up}: choose one up axis")
        args.up = "y"
    if args.up == "z" and args.format != "points-ply":
        raise UserInputError("--up z: only points-ply can be turned z-up (splat-ply takes --up y)")
    out = Path(args.out)
    ensure_not_run_file(out)        # a run's own files are never an export's output, --force or not
    if args.format == "nerfstudio":
        from ..pipeline.run_exports import check_nerfstudio_folder
        check_nerfstudio_folder(out, args.force)
    else:
        _check_file_output(out, FORMATS[args.format], args.format, args.force)
    if args.format == "collider":                 # its spawn.json beside it: checked the same way, before any work
        ensure_not_run_file(spawn_path(out))
        _check_file_output(spawn_path(out), ".json", "spawn", args.force)
    needs = "support" if args.format in ("nerfstudio", "collider") else "scene.ply"
    root = require_finished_run(args.run_dir, needs)
    sink, close = _progress(args.quiet)
    try:
        what = _export(args, root, out, sink)
    finally:
        close()
    print(f"wrote {out} ({what})")
    return 0


def spawn_path(out: Path) -> Path:
    """The spawn file written beside a collider ``out``: same folder and stem, ".spawn.json"
    (scene.glb -> scene.spawn.json), so two colliders in one folder keep their own."""
    return out.with_name(out.stem + ".spawn.json")


def _export_collider(root: Path, out: Path, sink) -> str:
    import json
    import sys

    from ..atomic import atomic_path
    from ..export.glb import glb_bytes
    from ..export.points import points_to_y_up
    from ..pipeline.run_exports import collider_from_run

    collider, spawn = collider_from_run(root, out.name, on_event=sink)
    m = collider.mesh
    data = glb_bytes([("collider", points_to_y_up(m.vertices), m.faces, m.colours)])
    text = json.dumps(spawn, indent=2) + "\n"
    # both files to temp files first, renamed only when both are written: never one without the other
    with atomic_path(out) as glb_tmp, atomic_path(spawn_path(out)) as spawn_tmp:
        glb_tmp.write_bytes(data)
        spawn_tmp.write_text(text, encoding="utf-8")
    if not spawn["ground_found"]:
        print(f"scenedreamer export: warning: {root}: no ground found under the cameras: the collider has "
              f"no floor and {spawn_path(out).name} no spawn position", file=sys.stderr)
    return (f"{len(m.faces):,} triangles, +y up; spawn {spawn_path(out).name}"
            + ("" if spawn["units_per_metre"] is None else f", {spawn['units_per_metre']:g} units per metre"))


def _export(args, root: Path, out: Path, sink) -> str:
    from ..export.points import points_to_y_up

    if args.format == "nerfstudio":
        from ..pipeline.run_exports import nerfstudio_from_run
        nerfstudio_from_run(root, out, on_event=sink)
        return "nerfstudio dataset: transforms.json, images/, depths/, points3D.ply"
    if args.format == "collider":
        return _export_collider(root, out, sink)
    if args.format == "glb":
        from ..export.glb import write_glb
        from ..pipeline.run_exports import mesh_config, mesh_from_run
        from .common import parse_device

        meshes = mesh_from_run(root, mesh_config(args.voxel_size, args.mesher), parse_device(args.device),
                               on_event=sink, with_backdrop=args.with_backdrop)
        nodes = [(name, points_to_y_up(m.vertices), m.faces, m.colours)
                 for name, m in (("scene", meshes.surface), ("backdrop", meshes.backdrop)) if m is not None]
        write_glb(out, nodes)
        surface = meshes.surface
        extra = "" if meshes.backdrop is None else f", backdrop node {len(meshes.backdrop.faces):,} triangles"
        return f"{len(surface.vertices):,} vertices, {len(surface.faces):,} triangles{extra}, +y up"
    if args.format == "usd":
        from ..export.usd_splat import require_usd
        require_usd()                       # the optional extra: say how to install it, before any work
    from ..export.ply import read_gaussians_ply, write_gaussians_ply
    from ..export.points import gaussian_points, points_to_up, to_y_up, write_points_ply

    scene = read_gaussians_ply(root / "scene.ply")
    if args.format in SPLAT_FORMATS:
        if args.format == "spz":
            from ..export.spz import write_spz as write
        elif args.format == "gltf-splat":
            from ..export.gltf_splat import write_gltf_splat as write
        else:
            from ..export.usd_splat import write_usd_splat as write
        write(out, scene)
        return f"{scene.num_gaussians:,} Gaussians, {SPLAT_FORMATS[args.format]}"
    if args.format == "splat-ply":
        write_gaussians_ply(out, to_y_up(scene) if args.up == "y" else scene, include_features=False)
        return f"{scene.num_gaussians:,} Gaussians" + (", +y up" if args.up == "y" else ", +y down")
    xyz, rgb = gaussian_points(scene, args.min_opacity)
    write_points_ply(out, points_to_up(xyz, args.up), rgb)
    return f"{len(xyz):,} points, " + {None: "+y down", "y": "+y up", "z": "+z up"}[args.up]
