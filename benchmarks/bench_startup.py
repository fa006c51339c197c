"""Issue 21 item 2 target: start-up of `scenedreamer --help`, `generate --help` and
`generate PROMPT --dry-run` (offline default) <= 2 s on a quiet machine (lazy imports: none of
them imports torch; tests/cli/test_startup.py checks that, this script times it).

    python -m benchmarks.bench_startup            # 5 runs of each (quiet machine)
    python -m benchmarks.bench_startup --runs 1   # checks that the script runs

Each command runs as the console script would, in a fresh interpreter; wall seconds (median and
worst of the runs) and whether torch was imported (``-X importtime``) go to JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "help": ["--help"],
    "generate --help": ["generate", "--help"],
    "generate --dry-run": ["generate", "a forest lake at sunset", "--dry-run"],
    "models list": ["models", "list"],       # another helper's path (issue 24); timed here for the record
}
TARGET_S = 2.0          # issue 21: <= 2 s


def timed(argv: list[str], cwd: str) -> tuple[float, bool]:
    """(wall seconds, whether torch was imported) of one fresh `scenedreamer ARGV`."""
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "scenedreamer.cli", *argv],
                         capture_output=True, text=True, cwd=cwd)
    seconds = time.monotonic() - start
    torch = any(line.rsplit("|", 1)[-1].strip() == "torch" for line in out.stderr.splitlines()
                if line.startswith("import time:"))
    return seconds, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as cwd:
        for name, argv in COMMANDS.items():
            runs = [timed(argv, cwd) for _ in range(args.runs)]
            seconds = [s for s, _ in runs]
            results[name] = {"median_s": round(statistics.median(seconds), 2), "worst_s": round(max(seconds), 2),
                             "imports_torch": any(t for _, t in runs),
                             "pass": statistics.median(seconds) <= TARGET_S}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
