"""Issue 21 targets: `make run` (the default offline generation) beside CPU hogs, with the
default thread policy, takes <= 2.5x the quiet time with two `yes > /dev/null` hogs and <= 6x
with eight.

    python -m benchmarks.bench_threads            # the make-run scene (run it on a quiet machine)
    python -m benchmarks.bench_threads --tiny     # a 32x32, 2-view scene: checks the script runs

Each generation runs through the real command line with no OMP_NUM_THREADS set (the policy of
scenedreamer/threads.py decides); the hogs start before it and are ended after. Reports JSON on
stdout: seconds quiet / with 2 hogs / with 8 hogs, the ratios, and the thread count each run
recorded (events.jsonl "run" event).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_RUN = ["a forest lake at sunset", "--preset", "offline", "--quiet"]
TINY = ["--resolution", "32x32", "--frames", "2", "--set", "init.fit_steps=3",
        "--set", "progressive.fit_steps_per_view=2", "--set", "export.video_frames_per_view=1"]
TARGETS = {2: 2.5, 8: 6.0}      # hogs -> allowed slowdown against quiet (issue 21)


def timed_generation(out: Path, tiny: bool, hogs: int) -> tuple[float, float]:
    """(wall seconds, threads recorded) of one generation with ``hogs`` `yes` processes beside it."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    workers = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(hogs)]
    try:
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "scenedreamer.cli", "generate", *MAKE_RUN, *(TINY if tiny else []),
                        "--out", str(out), "--overwrite"], check=True, env=env, capture_output=True)
        seconds = time.monotonic() - start
    finally:
        for hog in workers:
            hog.terminate()
            hog.wait()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    threads = next(e["metrics"].get("threads", 0.0) for e in events if e["stage"] == "run")
    return seconds, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny scene: only checks that the script runs")
    args = parser.parse_args()
    result = {"cpus": len(os.sched_getaffinity(0)), "tiny": args.tiny}
    with tempfile.TemporaryDirectory() as tmp:
        quiet, result["threads_quiet"] = timed_generation(Path(tmp) / "quiet", args.tiny, 0)
        result["seconds_quiet"] = round(quiet, 2)
        for hogs, target in TARGETS.items():
            seconds, result[f"threads_{hogs}_hogs"] = timed_generation(Path(tmp) / f"hogs{hogs}", args.tiny, hogs)
            result[f"seconds_{hogs}_hogs"] = round(seconds, 2)
            result[f"ratio_{hogs}_hogs"] = round(seconds / quiet, 2)
            result[f"target_{hogs}_hogs"] = target
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
