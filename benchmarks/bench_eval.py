"""Issue 10 speed target: `scenedreamer eval` of a 60-frame 512x512 path (NIQE + BRISQUE + both
consistency metrics) <= 60 s on 2 cores (run on a quiet machine):

    python -m benchmarks.bench_eval [RUN]      (default RUN: runs/demo, the `make run` scene)

The whole command is timed (start-up, rendering 60 path frames at 512x512 from scene.ply and the
support / held-out views, every metric, the report and plots); CLIP is off (`--clip-model ''`:
its weights are not on this machine, and the target names the other metrics). Writes
benchmarks/results/eval.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    run = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/demo")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "scenedreamer.cli", "eval", str(run), "--frames", "60", "--resolution",
               "512x512", "--clip-model", "", "--out", str(Path(tmp) / "report"), "--quiet"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        metrics = json.loads((Path(tmp) / "report" / "metrics.json").read_text())["runs"][0]["metrics"]
    summary = {k: v.get("value") for k, v in metrics.items()}
    results = {"run": str(run), "eval_60x512_s": round(seconds, 2), "metrics": summary,
               "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "load_average_start": load, "load_average_end": os.getloadavg()[0]}}
    print(f"eval of 60 frames at 512x512: {seconds:.1f} s; " +
          ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if v is not None))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
