"""Issue 21 item 2: `generate --dry-run` states the expected time on this machine.

For each scene of benchmarks/bench_eta.py, runs the dry run's own computation in a fresh process
(the CLI's automatic thread choice, machine_speed's calibration, pipeline/plan.py
``expected_seconds``) and compares it with the wall time `generate` took, read from
benchmarks/results/eta.json (quiet) and benchmarks/results/threads.json (beside two CPU hogs):
those were measured on the reference box, so the comparison is meaningful there only; on another
machine pass ``--measured FILE``, the JSON ``bench_eta`` printed there (its "scenes" -> "seconds"),
and ``--out FILE`` so the reference box's results are not overwritten. With
``--hogs 2`` the dry run itself runs beside two `yes > /dev/null` hogs, as
bench_threads.py ran the make-run scene: the automatic thread count and the calibration must
not count the busy cores twice.

    python -m benchmarks.bench_dry_run_time [--hogs 2] [--write]
    python -m benchmarks.bench_eta > eta_here.json     # on another machine: its own runs first
    python -m benchmarks.bench_dry_run_time --measured eta_here.json --out results/dry_run_time_other.json

Also prints the calibration's CPU seconds (machine_speed.calibration_cpu_seconds, the fastest
of its repeats; the median over 5 fresh processes) -- the figure REFERENCE_CPU_SECONDS holds
for the reference box.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROMPT = "a forest lake at sunset"
SCENES = {"make-run": [], "24-views": ["--frames", "24"], "nerf": ["--representation", "nerf"]}

CHILD = """
import json, sys
from scenedreamer.cli import build_parser
from scenedreamer.cli.generate import build_config
from scenedreamer import threads
from scenedreamer.machine_speed import slowdown_against_reference
from scenedreamer.pipeline.plan import expected_seconds
config = build_config(build_parser().parse_args(["generate", sys.argv[1], "--preset", "offline", *sys.argv[2:]]))
choice = threads.configure(None, start_torch=False)
slowdown = slowdown_against_reference()
print(json.dumps({"threads": choice.threads, "slowdown": slowdown,
                  "expected_s": expected_seconds(config, config.trajectory.frames, choice.threads, slowdown)}))
"""


def dry_run_figures(argv: list[str]) -> dict:
    """The dry run's thread count, slowdown and expected seconds for the offline preset + argv."""
    out = subprocess.run([sys.executable, "-c", CHILD, PROMPT, *argv], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibration_seconds(processes: int = 5) -> float:
    """Median over fresh processes of machine_speed.calibration_cpu_seconds()."""
    code = "from scenedreamer.machine_speed import calibration_cpu_seconds as c; print(c())"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True, cwd=ROOT).stdout) for _ in range(processes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=0, help="CPU hogs (`yes > /dev/null`) beside the dry run")
    parser.add_argument("--write", action="store_true", help="store benchmarks/results/dry_run_time.json")
    parser.add_argument("--measured", type=Path, default=RESULTS / "eta.json",
                        help="bench_eta's JSON with the measured wall times (default: the reference box's)")
    parser.add_argument("--out", type=Path, default=None, help="where --write stores the result")
    args = parser.parse_args(argv)
    eta = json.loads(args.measured.read_text())["scenes"]
    hogged = json.loads((RESULTS / "threads.json").read_text())
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.hogs)]
    try:
        result = {"hogs": args.hogs, "measured_from": str(args.measured), "calibration_cpu_s":
                  round(calibration_seconds(), 5), "scenes": {}}
        for name, extra in SCENES.items():
            figures = dry_run_figures(extra)
            measured = eta[name]["seconds"] if args.hogs == 0 and name in eta else (
                hogged["seconds_2_hogs"] if args.hogs == 2 and name == "make-run" else None)
            row = {**figures, "expected_s": round(figures["expected_s"], 1), "measured_s": measured,
                   "error": None if measured is None else round(figures["expected_s"] / measured - 1, 3)}
            result["scenes"][name] = row
            error = "-" if row["error"] is None else f"{row['error']:+.1%}"
            print(f"{name:9s} threads {row['threads']}  slowdown {row['slowdown']:.2f}  "
                  f"expected {row['expected_s']:7.1f} s  measured {measured if measured is not None else '-'} s  "
                  f"error {error}", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(f"calibration: {result['calibration_cpu_s']} CPU s (median of 5 processes)")
    if args.write:
        name = "dry_run_time.json" if args.hogs == 0 else f"dry_run_time_{args.hogs}_hogs.json"
        (args.out or RESULTS / name).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
