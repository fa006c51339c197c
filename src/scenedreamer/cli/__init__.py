"""The `scenedreamer` console script. It only parses arguments and calls library functions.

Each subcommand lives in its own module with ``add_parser(subparsers)`` (which registers the
parser and sets ``func`` to that module's ``run(args) -> int``).
"""

from __future__ import annotations

# Signals first, before any other import (imports are slow: a Ctrl-C or SIGTERM during start-up
# must also end in one line, not a traceback or a silent kill). Until main() is ready to turn a
# signal into its clean exit, a signal is only remembered (_pending) and acted on when main()
# starts; from then on it raises where the program is (between two fitting steps, in a wait...),
# except inside an import, where it waits for the import to finish (see _raise_after_import).
import importlib
import os
import signal
import sys
import threading

_pending: list[int] = []      # signals received before main() armed the handlers
_armed = False
_ORIGINAL = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
"""The handlers before this module was imported: main() puts them back when it returns (a
program or test that calls main() keeps its own Ctrl-C)."""
_IMPORTLIB_DIR = os.path.join(os.path.dirname(importlib.__file__), "")


def _on_signal(signum, frame):
    if not _armed:
        _pending.append(signum)
        return
    caller = _caller_of_outermost_import(frame)
    if caller is not frame:
        _raise_after_import(caller, signum)
        return
    raise _interruption(signum)


def _interruption(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _in_import_machinery(frame) -> bool:
    """Is ``frame`` the import system's own code? An exception raised inside an import leaves a
    half-initialised module behind, which a library's bare ``except`` may then swallow and go on
    with. Sent at random start-up moments, SIGINT made `generate` go on as if never signalled,
    die later of "module 'numpy' has no attribute 'unique'", or (inside torch's import) exit by
    SIGINT after main() had already returned 130."""
    name = frame.f_code.co_filename
    return name.startswith("<frozen importlib.") or name.startswith(_IMPORTLIB_DIR)


def _caller_of_outermost_import(frame):
    """The frame that called the outermost import running at ``frame`` inside main(): the first
    place where an exception is safe. ``frame`` itself when no import is running. (Imports
    around main() itself, as when a program calls main() from a module's body, do not count.)"""
    safe, walk = frame, frame
    while walk is not None and walk.f_code is not main.__code__:
        if _in_import_machinery(walk):
            safe = walk.f_back
        walk = walk.f_back
    return safe


def _raise_after_import(caller, signum: int) -> None:
    """Raise the interruption in ``caller`` as soon as the import it is waiting on returns (its
    next line, its return, or an exception reaching it): the way a debugger stops in a frame,
    by a trace function on that frame alone. Until then every new call pays a no-op trace call,
    which only slows the rest of an import the user has already asked to end. (CPython turns
    tracing off when a trace function raises, so none is left behind; a debugger's or coverage's
    tracer active at that moment stops too.) A second signal meanwhile sets the same stop."""

    def stop_here(frame, event, arg):      # ("line", "return" or "exception": never "call")
        frame.f_trace = None
        raise _interruption(signum)

    caller.f_trace = stop_here
    sys.settrace(lambda frame, event, arg: None)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM -> _on_signal (main thread only: Python allows no other)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)


def _this_process_is_the_cli() -> bool:
    """Whether this import is the start of the `scenedreamer` command (its console script or
    ``python -m scenedreamer.cli``) rather than a program using the package (a benchmark, a
    test, a notebook): only the command holds signals back during start-up; anyone else keeps
    Python's own handling until they call main() (otherwise their process would ignore SIGTERM)."""
    argv = getattr(sys, "orig_argv", sys.argv)
    as_module = "-m" in argv[:-1] and argv[argv.index("-m") + 1] == __name__
    return as_module or os.path.basename(sys.argv[0]) in ("scenedreamer", "scenedreamer.exe")


if _this_process_is_the_cli():
    install_signal_handlers()

import argparse  # noqa: E402 - after the signal handlers on purpose
import sqlite3  # noqa: E402

from ..errors import InternalError, RunFailedError, UserInputError, is_disk_full  # noqa: E402

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
    "extend": "scenedreamer.cli.extend",
}

REPORT_URL = "https://github.com/scenedreamer/scenedreamer/issues"
"""Where an internal error asks to be reported (printed in its one line)."""


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


def _command_of(argv: list[str] | None) -> str:
    """The subcommand named on the command line (for messages before the parser exists)."""
    for arg in (sys.argv[1:] if argv is None else argv):
        if arg in SUBCOMMANDS:
            return arg
    return ""


def main(argv: list[str] | None = None) -> int:
    """Entry point. Exit codes: 0 ok, 2 bad input, 1 run failed or internal error, 130
    interrupted (Ctrl-C / SIGINT), 143 terminated (SIGTERM)."""
    global _armed
    command = _command_of(argv)
    try:
        install_signal_handlers()       # (again: a test may have called main() after changing them)
        _armed = True
        if _pending:                    # a signal that came during start-up ends the run now
            raise _interruption(_pending[0])
        parser = build_parser(list(sys.argv[1:] if argv is None else argv))
        args, unknown = parser.parse_known_args(argv)
        command = args.command
        # only `batch` takes options it does not declare (they are `generate` options for every scene)
        if unknown and not getattr(args, "accepts_unknown", False):
            parser.parse_args(argv)     # exits 2 with argparse's own "unrecognized arguments" line
        _set_threads(args)
        code = args.func(args, unknown) if getattr(args, "accepts_unknown", False) else args.func(args)
        return int(code or 0)
    except UserInputError as err:
        print(f"scenedreamer {command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except RunFailedError as err:
        print(f"scenedreamer {command}: failed: {err}", file=sys.stderr)
        return err.exit_code
    except InternalError as err:
        if os.environ.get("SCENEDREAMER_DEBUG") == "1":
            raise
        print(f"scenedreamer {command}: internal error: {' '.join(str(err).split())}; this is a bug in "
              f"scenedreamer, please report it ({REPORT_URL}) with SCENEDREAMER_DEBUG=1 output", file=sys.stderr)
        return err.exit_code
    except (OSError, sqlite3.Error) as err:
        # the file system said no (disk full, permissions, ...): one line, exit 1; every step a
        # run committed is kept. SCENEDREAMER_DEBUG=1 shows the traceback.
        if os.environ.get("SCENEDREAMER_DEBUG") == "1":
            raise
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        what = "disk full" if is_disk_full(err) else (getattr(err, "strerror", None) or str(err))
        print(f"scenedreamer {command}: failed: {what}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        _ignore_signals()               # one line, whatever comes next
        hint = "; resume with --resume" if command in ("generate", "extend") else \
            "; run the same command again to go on" if command == "batch" else ""
        print(f"scenedreamer {command or 'start-up'}: interrupted{hint}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        _restore_signals()


def _ignore_signals() -> None:
    """After the first signal, further ones are ignored: the process is already ending cleanly
    (a second Ctrl-C must not print a traceback from the middle of the clean-up)."""
    global _armed
    _armed = False
    _pending.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _restore_signals() -> None:
    global _armed
    _armed = False
    if threading.current_thread() is threading.main_thread():
        for sig, handler in _ORIGINAL.items():
            if handler is not None:
                signal.signal(sig, handler)


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
