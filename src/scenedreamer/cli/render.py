"""`scenedreamer render RUN --out FILE.mp4|DIR|FILE.png`: the run's scene along any path or as a panorama."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = "render a finished run's scene along any camera path, or a 360-degree panorama"


def add_parser(sub) -> None:
    from ..geometry.trajectory import TRAJECTORY_PRESETS
    from ..pipeline.render_run import SCENE_ORBIT

    presets = ", ".join([*TRAJECTORY_PRESETS, SCENE_ORBIT])
    p = sub.add_parser("render", help=HELP, description=HELP + " (see docs/usage/render.md).")
    p.add_argument("run_dir", metavar="RUN", help="a finished run folder")
    p.add_argument("--out", required=True, metavar="FILE.mp4|DIR|FILE.png",
                   help="a video, a folder for PNG frames, or (with --panorama) a PNG file")
    p.add_argument("--trajectory", default="", metavar="PRESET|FILE",
                   help=f"camera path: a preset ({presets}; presets start at the run's first camera) or a "
                        "transforms.json in the run's world (default: the run's own path, interpolated)")
    p.add_argument("--frames", type=int, default=None,
                   help="cameras along the path (default: as the run's video; 60 for a preset)")
    p.add_argument("--resolution", default=None, metavar="WxH",
                   help="frame size (default: the run's; a panorama's default is 2048x1024)")
    p.add_argument("--what", default="rgb", choices=("rgb", "depth", "rgbd"),
                   help="colour, colour-mapped depth (near red, far blue), or both side by side")
    p.add_argument("--panorama", action="store_true", help="one equirectangular 360-degree panorama (2:1)")
    p.add_argument("--at", default=None, metavar="X,Y,Z",
                   help="panorama position in the run's world, scene units (default: the first camera)")
    p.add_argument("--source", default="scene-ply", choices=("scene-ply", "checkpoint"),
                   help="render scene.ply (what users take away; fast) or scene.pt (the fitted representation)")
    p.add_argument("--fps", type=int, default=None, help="video frame rate (default: the run's)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")
    p.add_argument("--force", action="store_true", help="replace an earlier output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.run_contract import ensure_not_run_file, require_finished_run
    from ..export.panorama_xmp import write_panorama
    from ..export.video import write_video
    from ..geometry.panorama import cube_cameras
    from ..pipeline import coverage
    from ..pipeline import render_run as rr
    from .common import parse_device, parse_size
    from .progress import StageBar

    # every refusal before anything is loaded or written
    out = Path(args.out)
    ensure_not_run_file(out)        # a run's own files and folders are never a render's output
    kind = rr.output_kind(out, args.panorama)
    source = args.source.replace("-", "_")
    if args.panorama and (args.trajectory or args.frames is not None):
        raise UserInputError("--panorama: renders one image from --at; --trajectory and --frames do not apply")
    if not args.panorama and args.at is not None:
        raise UserInputError("--at: only with --panorama")
    max_side = 8192 if args.panorama else 4096
    resolution = parse_size(args.resolution, "--resolution", max_side) if args.resolution else None
    if args.panorama:
        resolution = resolution or (2048, 1024)
        rr.check_panorama_size(*resolution)
    position = rr.parse_position(args.at) if args.at is not None else None
    if args.fps is not None and not 1 <= args.fps <= 240:
        raise UserInputError(f"--fps {args.fps}: must be between 1 and 240")
    device = parse_device(args.device)
    root = require_finished_run(args.run_dir, rr.source_file(source))
    rr.check_output(out, kind, args.force)
    if kind != "folder":
        rr.remove_stale_temp_files(out)     # temps a killed or failed render of this output left

    inputs = rr.load_render_inputs(root, source, device)
    scene = coverage.CoverageRecorder(inputs.scene)         # tallies each frame's empty fraction
    at = position if position is not None else inputs.run_cameras.centers[0].float().cpu()
    cameras = None if args.panorama else rr.path_cameras(inputs, args.trajectory, args.frames, resolution)
    if args.panorama or args.trajectory:                    # another path than the cameras': look first
        warning = coverage.coverage_warning(coverage.predicted_empty_fraction(
            inputs.scene, cube_cameras(at, coverage.PREVIEW_SIDE) if args.panorama else cameras),
            args.panorama, args.trajectory)
        if warning:
            print(f"scenedreamer render: warning: {warning}", file=sys.stderr)
    bar = None if args.quiet else StageBar("render", "rendering")
    try:
        if args.panorama:
            image = rr.render_panorama(scene, at, *resolution, what=args.what, on_event=bar)
            write_panorama(out, image)          # GPano XMP: photo sites show it as a 360
            count = 1
        else:
            frames = rr.render_frames(scene, cameras, args.what, on_event=bar)
            if kind == "mp4":
                count = write_video(out, frames, fps=args.fps or inputs.fps)
            else:
                count = rr.write_frame_folder(out, frames)
    finally:
        if bar is not None:
            bar.close()
    what = "panorama" if args.panorama else f"{count} frames"
    if kind == "folder":
        coverage.record_in_frames_manifest(out / rr.FRAMES_MANIFEST, scene.fractions)
    empty = coverage.summary([sum(scene.fractions) / len(scene.fractions)] if args.panorama else scene.fractions)
    print(f"wrote {out} ({what}, from {rr.source_file(source)}; {empty})")
    return 0
