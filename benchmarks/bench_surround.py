"""Issue 23 item 6: fill the surroundings. Extend a copy of a finished run with `--surround`; is
the 360-degree panorama from its first camera covered, and how long does it take?

A copy of RUN (never RUN itself) is extended by one chapter (`pipeline.extend.extend_run` with
``surround=True``, what `scenedreamer extend RUN --surround` runs). Reported:

- chapter_seconds: wall time of the whole chapter (planning, every new view through the
  progressive loop, the outputs rewritten over the whole world);
- views_added: the cameras the planner chose;
- panorama_covered_before / _after: the covered fraction (accumulated opacity >= 0.5,
  pipeline/coverage.py) of the equirectangular panorama of scene.ply rendered from the run's
  first camera centre (pipeline/surround.py ``panorama_empty_fraction``), before and after
  (target >= 0.95);
- planned_before / planned_after: the planner's own direction-coverage map, for comparison.

Writes benchmarks/results/surround.json (or --out).

    python -m benchmarks.bench_surround runs/demo        # `make run` makes runs/demo
    python -m benchmarks.bench_surround RUN --out /tmp/surround.json   # a tiny check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

PANORAMA_WIDTH = 512
"""Width of the measured panorama (512 x 256 pixels; its cube faces are 130 px)."""


def first_camera_covered(run: Path) -> float:
    """Covered fraction of RUN/scene.ply's panorama from the run's first camera centre."""
    from scenedreamer.pipeline.render_run import load_render_inputs
    from scenedreamer.pipeline.surround import panorama_empty_fraction

    inputs = load_render_inputs(run, "scene_ply")
    return 1.0 - panorama_empty_fraction(inputs.scene, inputs.run_cameras.centers[0].float(), PANORAMA_WIDTH)


def measure(run: Path, work: Path) -> dict:
    from scenedreamer.pipeline.extend import ChapterInputs, extend_run
    from scenedreamer.pipeline.surround import SurroundConfig

    grown = work / "run"
    shutil.copytree(run, grown, symlinks=True)
    before = first_camera_covered(grown)
    plan: dict = {}

    def on_event(event) -> None:
        if event.stage == "surround":
            plan.update(event.metrics, views=event.total)

    started = time.perf_counter()
    chapter = extend_run(grown, ChapterInputs(trajectory="", surround=True), on_event=on_event)
    seconds = time.perf_counter() - started
    after = first_camera_covered(grown)
    target = SurroundConfig().target_coverage
    return {"run": str(run), "chapter_seconds": seconds, "views_added": chapter.last_step - chapter.first_step + 1,
            "panorama_covered_before": before, "panorama_covered_after": after, "target": target,
            "target_ok": after >= target, "planned_before": plan.get("coverage_before"),
            "planned_after": plan.get("coverage_planned"), "panorama_width": PANORAMA_WIDTH,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/demo"),
                        help="a finished run (default runs/demo, which `make run` writes); it is copied, not changed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "surround.json",
                        help="where the results go (default benchmarks/results/surround.json)")
    args = parser.parse_args()
    if not (args.run / "scene.ply").is_file():
        raise SystemExit(f"{args.run}: not a finished run with scene.ply (make one with `make run`)")
    work = Path(tempfile.mkdtemp(prefix="bench_surround_"))
    try:
        result = measure(args.run, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    from scenedreamer.atomic import atomic_write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
