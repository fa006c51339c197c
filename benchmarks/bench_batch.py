"""Issue 11 target: 4 tiny offline scenes through the Ray executor take <= 1.3x the local
executor's time on 2 CPU cores, Ray start-up included.

    python -m benchmarks.bench_batch [--scenes 4]

Both batches run the same prompt file into fresh folders through the real command line; wall
time of each whole command is reported (JSON on stdout).
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

TINY = ["--resolution", "32x32", "--frames", "2", "--representation", "gaussians", "--set", "init.fit_steps=3",
        "--set", "progressive.fit_steps_per_view=2", "--set", "export.video_frames_per_view=1", "--quiet"]
PROMPTS = ["a forest lake", "a small kitchen", "a city street", "a snowy mountain", "a desert canyon",
           "a living room", "a harbour at dusk", "a pine forest"]


def timed_batch(prompts: Path, out: Path, executor: str, extra: tuple[str, ...] = ()) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "scenedreamer.cli", "batch", str(prompts), "--out", str(out),
                    "--executor", executor, *extra, *TINY], check=True, env=env, capture_output=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(PROMPTS[:args.scenes]) + "\n")
        local = timed_batch(prompts, Path(tmp) / "local", "local")
        # the like-for-like row: Ray on 2 CPUs runs two scenes at once, so does --workers 2
        local2 = timed_batch(prompts, Path(tmp) / "local2", "local", ("--workers", "2"))
        ray = timed_batch(prompts, Path(tmp) / "ray", "ray")
    print(json.dumps({"scenes": args.scenes, "local_s": round(local, 1), "local_workers2_s": round(local2, 1),
                      "ray_s": round(ray, 1), "ratio": round(ray / local, 2),
                      "ratio_vs_workers2": round(ray / local2, 2), "target_ratio": 1.3}))


if __name__ == "__main__":
    main()
