"""The `scenedreamer` console script. It only parses arguments and calls library functions.

Each subcommand lives in its own module with ``add_parser(subparsers)`` (which registers the
parser and sets ``func`` to that module's ``run(args) -> int``).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sqlite3
import sys
import threading

from ..errors import RunFailedError, UserInputError

# subcommand name -> module (imported lazily so `scenedreamer --help` stays fast)
SUBCOMMANDS: dict[str, str] = {
    "generate": "scenedreamer.cli.generate",
    "trajectory": "scenedreamer.cli.trajectory",
    "models": "scenedreamer.cli.models",
    "export": "scenedreamer.cli.export",
    "view": "scenedreamer.cli.view",
    "batch": "scenedreamer.cli.batch",
    "eval": "scenedreamer.cli.eval",
    "render": "scenedreamer.cli.render",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser of the command ``argv`` names (every command when it names none: the
    others get a help line only, so `scenedreamer --help` and `models list` never build a parser
    that needs torch)."""
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    chosen = chosen if chosen in SUBCOMMANDS else None
    parser = argparse.ArgumentParser(
        prog="scenedreamer",
        description="Text + camera path -> a persistent, 3D-consistent scene (3D-SceneDreamer).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in SUBCOMMANDS.items():
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        if argv is None or name == chosen:
            loaded.add_parser(sub)
        else:                           # only its help line: its options may need heavy imports
            sub.add_parser(name, help=loaded.HELP)
    return parser


def _version() -> str:
    from .. import __version__
    return __version__


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so the same clean-up as Ctrl-C runs (finally blocks,
    released locks; committed steps are kept)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point. Exit codes: 0 ok, 2 bad input, 1 run failed, 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM)."""
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    parser = build_parser(list(sys.argv[1:] if argv is None else argv))
    args, unknown = parser.parse_known_args(argv)
    # only `batch` takes options it does not declare (they are `generate` options for every scene)
    if unknown and not getattr(args, "accepts_unknown", False):
        parser.parse_args(argv)     # exits 2 with argparse's own "unrecognized arguments" line
    try:
        _set_threads(args)
        code = args.func(args, unknown) if getattr(args, "accepts_unknown", False) else args.func(args)
    except UserInputError as err:
        print(f"scenedreamer {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except RunFailedError as err:
        print(f"scenedreamer {args.command}: failed: {err}", file=sys.stderr)
        return err.exit_code
    except (OSError, sqlite3.Error) as err:
        # the file system said no (disk full, permissions, ...): one line, exit 1; every step a
        # run committed is kept. SCENEDREAMER_DEBUG=1 shows the traceback.
        if os.environ.get("SCENEDREAMER_DEBUG") == "1":
            raise
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        what = "disk full" if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "full" in str(err) \
            else (getattr(err, "strerror", None) or str(err))
        print(f"scenedreamer {args.command}: failed: {what}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        hint = "; resume with --resume" if args.command == "generate" else \
            "; run the same command again to go on" if args.command == "batch" else ""
        print(f"scenedreamer {args.command}: interrupted{hint}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    return int(code or 0)


def _set_threads(args) -> None:
    """Size the thread pools once, before any parallel work (commands with ``--threads``); a
    batch gives each of its scenes at once its share. Planning-only runs do not start torch."""
    if not hasattr(args, "threads"):
        return
    from ..threads import configure

    plans_only = any(getattr(args, name, False) for name in ("dry_run", "list_settings", "status"))
    workers = (getattr(args, "workers", None) or 1) if args.command == "batch" else 1
    choice = configure(args.threads, processes=workers, start_torch=not plans_only and args.command != "batch")
    if choice.warning:
        print(f"scenedreamer {args.command}: warning: {choice.warning}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
