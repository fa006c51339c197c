"""`scenedreamer view RUN`: serve a run's scene in a local web page (three.js + Spark, vendored)."""

from __future__ import annotations

import sys

HELP = "show a run's scene.ply and cameras in a local web viewer"


def add_parser(sub) -> None:
    p = sub.add_parser("view", help=HELP,
                       description=HELP + " (served on 127.0.0.1; see docs/usage/view.md).")
    p.add_argument("run", metavar="RUN", help="a run folder written by `scenedreamer generate` (needs scene.ply)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only). Another address "
                        "exposes the run's files to the network; a warning is printed")
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
    server = make_server(args.run, host=host, port=args.port, quiet=not args.log_requests)
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
