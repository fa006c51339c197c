"""`scenedreamer view RUN`: serve a run's scene in a local web page (three.js + Spark, vendored)."""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "show a run's scene.ply and cameras in a local web viewer"


def add_parser(sub) -> None:
    p = sub.add_parser("view", help=HELP,
                       description=HELP + " (served on 127.0.0.1; see docs/usage/view.md).")
    p.add_argument("run", metavar="RUN", help="a run folder written by `scenedreamer generate` (needs scene.ply), "
                   "or a batch folder (its scenes are listed and one is opened; see --scene)")
    p.add_argument("--scene", default=None, metavar="NAME",
                   help="in a batch folder: the scene to open (default: its first finished scene)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only). Another address "
                        "exposes the run's files to the network; a warning is printed")
    p.add_argument("--collider", default=None, metavar="FILE.glb",
                   help="a GLB mesh to walk on (walk mode, key G): `export --format collider` (its spawn.json "
                        "beside it gives the start and the metric scale) or any `export --format glb`")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser, only print the URL")
    p.add_argument("--log-requests", action="store_true", help="print one line per HTTP request")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import UserInputError
    from ..viewer.server import LOOPBACK_HOSTS, make_server, url_of

    if not 0 <= args.port <= 65535:
        raise UserInputError(f"--port {args.port}: out of range (0-65535)")
    host = args.host.strip()
    if not host:
        raise UserInputError("--host: empty")
    if args.scene is not None or (Path(args.run) / "manifest.sqlite").is_file():
        args.run = batch_scene(args.run, args.scene)
    server = make_server(args.run, host=host, port=args.port, quiet=not args.log_requests,
                         collider=args.collider)
    url = url_of(server)
    if not (host in LOOPBACK_HOSTS or host.startswith("127.")):
        print(f"scenedreamer view: warning: listening on {host}, not only this machine: anyone who can "
              f"reach it can read every file of {args.run}", file=sys.stderr)
    print(f"scenedreamer view: serving {args.run} at {url} (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        import webbrowser

        if not webbrowser.open(url):
            print("scenedreamer view: no browser found; open the URL above", file=sys.stderr)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("scenedreamer view: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def batch_scene(folder: str, scene: str | None) -> str:
    """The run folder of ``scene`` (None: the first finished scene) in the batch ``folder``,
    after printing the batch's scenes (name, status, prompt, run folder). Read-only: the
    manifest is opened without creating or changing anything. UserInputError when the folder
    holds no batch, the scene is not in it, or no scene has finished."""
    from ..batch.manifest import Manifest
    from ..errors import UserInputError

    with Manifest.open(folder, create=False) as manifest:
        rows = manifest.rows()
    runs = {row.name: _run_folder_of(folder, row) for row in rows}
    finished = [row.name for row in rows if (Path(runs[row.name]) / "scene.ply").is_file()]
    print(f"scenedreamer view: {folder} is a batch of {len(rows)} scene{'s' if len(rows) != 1 else ''}:")
    for row in rows:
        mark = "ready" if row.name in finished else row.status
        print(f"  {row.name:<20} {mark:<8} {runs[row.name]}  {row.prompt[:50]!r}")
    if scene is None:
        if not finished:
            raise UserInputError(f"{folder}: no scene of this batch has a scene.ply yet (see scenedreamer batch "
                                 f"--status {folder})")
        scene = finished[0]
        print(f"scenedreamer view: opening {scene} (another: --scene NAME)")
    elif scene not in runs:
        raise UserInputError(f"--scene {scene}: not a scene of {folder} (its scenes: {', '.join(runs)})")
    return runs[scene]


def _run_folder_of(folder: str, row) -> str:
    """The scene's run folder as recorded, or under ``folder`` when the batch was moved."""
    recorded = Path(row.run_folder)
    return str(recorded if recorded.is_dir() else Path(folder) / row.name)
