"""Speed targets of `scenedreamer eval` on a 60-frame 512x512 path (run on a quiet machine):

- issue 10: NIQE + BRISQUE + both consistency metrics <= 60 s on 2 cores;
- issue 25: the WorldScore-style metrics (`--worldscore`: SfM with pycolmap, forward-backward
  flow) add <= 2 min on 2 cores (timed as the difference of a second run with --worldscore).

    python -m benchmarks.bench_eval [RUN] [--frames N] [--resolution WxH]
    (default RUN: runs/demo, the `make run` scene; 60 frames at 512x512)

The whole command is timed (start-up, rendering 60 path frames at 512x512 from scene.ply and the
support / held-out views, every metric, the report and plots); CLIP is off (`--clip-model ''`:
its weights are not on this machine, and the target names the other metrics). Writes
benchmarks/results/eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _eval(run: Path, out: Path, frames: int, resolution: str, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "scenedreamer.cli", "eval", str(run), "--frames", str(frames), "--resolution",
           resolution, "--clip-model", "", "--out", str(out), "--quiet", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads((out / "metrics.json").read_text())["runs"][0]["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=Path("runs/demo"))
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--resolution", default="512x512")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        seconds, metrics = _eval(args.run, Path(tmp) / "base", args.frames, args.resolution, [])
        ws_seconds, ws_metrics = _eval(args.run, Path(tmp) / "ws", args.frames, args.resolution, ["--worldscore"])
    summary = {k: v.get("value") for k, v in ws_metrics.items()}
    reasons = {k: v["reason"] for k, v in ws_metrics.items() if not v["available"]}
    label = f"{args.frames} frames at {args.resolution}"
    results = {"run": str(args.run), "path": label, "eval_s": round(seconds, 2),
               "eval_worldscore_s": round(ws_seconds, 2), "worldscore_added_s": round(ws_seconds - seconds, 2),
               "targets": {"eval_s": 60, "worldscore_added_s": 120}, "metrics": summary, "unavailable": reasons,
               "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "load_average_start": load, "load_average_end": os.getloadavg()[0]}}
    print(f"eval of {label}: {seconds:.1f} s (target 60 s); with --worldscore {ws_seconds:.1f} s "
          f"(+{ws_seconds - seconds:.1f} s, target +120 s); " +
          ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if v is not None))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
