"""Issue 23 item 3: revisit stability. Extend a finished run along a loop that leaves the view and
comes back; does the world stay what it was?

A copy of RUN (never RUN itself) is extended by one chapter (`pipeline.extend.extend_run`) along
a path that turns in place from the run's last camera, in steps of --turn-step degrees, to look
the other way (180 degrees: nothing of the first visit in view) and turns back to the last
camera's exact pose: the return camera. Reported:

- return_psnr_db: the extended scene.ply rendered at the return camera against the first visit's
  support view at that pose (target >= 30 dB);
- old_views_drop_db: the scene.ply's mean PSNR over the run's support views before the extension
  minus after it, both over the same (old) views (target <= 0.5 dB);
- return_psnr_before_db: the same view's PSNR before the extension (scene.ply's own fidelity
  there: the return target cannot be met by a scene.ply that did not meet it before);
- the chapter's seconds and the number of cameras it added.

scene.ply is rendered as bench_scene_export renders it (the reference 3DGS viewer's conventions).

    python -m benchmarks.bench_extend_revisit runs/demo            # `make run` makes runs/demo
    python -m benchmarks.bench_extend_revisit RUN --turn-step 90 --work /tmp/x   # a tiny check
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

RETURN_TARGET_DB = 30.0
"""Issue 23 item 3: the return camera's render matches the first visit's view at >= 30 dB."""
DROP_TARGET_DB = 0.5
"""Issue 23 item 3: scene.ply's PSNR at the old support views drops by <= 0.5 dB."""


def loop_path(last_c2w: torch.Tensor, K: torch.Tensor, width: int, height: int, turn_step: float):
    """Cameras turning in place from ``last_c2w`` (4, 4; OpenCV c2w) by ``turn_step`` degrees a
    camera to 180 degrees and back to 0 (the last camera's exact pose, which ends the path)."""
    from scenedreamer.geometry.cameras import Cameras
    from scenedreamer.geometry.trajectory import Trajectory

    steps = max(1, math.ceil(180.0 / turn_step))
    out = [180.0 * i / steps for i in range(1, steps + 1)]
    angles = out + out[-2::-1] + [0.0]
    poses = []
    for deg in angles:
        a = math.radians(deg)
        yaw = torch.eye(4, dtype=torch.float64)   # about the camera's own vertical axis (+y down)
        yaw[:3, :3] = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0],
                                    [-math.sin(a), 0.0, math.cos(a)]], dtype=torch.float64)
        poses.append(last_c2w.double() @ yaw)
    c2w = torch.stack(poses).float()
    return Trajectory(Cameras(K.float().expand(len(poses), 3, 3).clone(), c2w, width, height), [None] * len(poses))


def _scene_psnr(run: Path, view_ids: list[int]) -> list[float]:
    """PSNR (dB) of RUN/scene.ply rendered at each support view of ``view_ids``."""
    from scenedreamer.eval.metrics import psnr
    from scenedreamer.export.ply import read_gaussians_ply
    from scenedreamer.representation.distill import standard_viewer_config
    from scenedreamer.support.database import SupportDatabase

    scene = read_gaussians_ply(run / "scene.ply", standard_viewer_config())
    scene.eval()
    values = []
    with SupportDatabase.open(run / "support", create=False) as db:
        for view_id in view_ids:
            view = db.get(view_id)
            with torch.no_grad():
                out = scene.render(view.camera)
            values.append(float(psnr(out.rgb[0].clamp(0, 1), view.rgb)))
    return values


def measure(run: Path, work: Path, turn_step: float) -> dict:
    from scenedreamer.geometry.trajectory_io import read_transforms_json, write_transforms_json
    from scenedreamer.pipeline.extend import ChapterInputs, extend_run
    from scenedreamer.support.database import SupportDatabase

    grown = work / "run"
    shutil.copytree(run, grown, symlinks=True)
    with SupportDatabase.open(grown / "support", create=False) as db:
        old_ids = db.ids()
        last_step = max(db.view_info(v).step for v in old_ids)
        # the first visit of the return pose: the support view the run's last camera added
        first_visit = max(v for v in old_ids if db.view_info(v).step == last_step)
    before = _scene_psnr(grown, old_ids)

    world = read_transforms_json(grown / "trajectory.json").cameras
    path = loop_path(world.c2w[-1], world.K[-1], world.width, world.height, turn_step)
    path_file = work / "loop.json"
    write_transforms_json(path_file, path)
    started = time.perf_counter()
    extend_run(grown, ChapterInputs(trajectory=str(path_file)))
    seconds = time.perf_counter() - started

    after = _scene_psnr(grown, old_ids)
    return_db = _scene_psnr(grown, [first_visit])[0]
    drop = sum(before) / len(before) - sum(after) / len(after)
    return {"run": str(run), "cameras_added": len(path.cameras), "turn_step_deg": turn_step,
            "chapter_seconds": seconds, "return_psnr_db": return_db, "return_target_db": RETURN_TARGET_DB,
            # the same view's PSNR before the extension: how faithful scene.ply was there at all
            "return_psnr_before_db": before[old_ids.index(first_visit)],
            "old_views_before_db": sum(before) / len(before), "old_views_after_db": sum(after) / len(after),
            "old_views_drop_db": drop, "drop_target_db": DROP_TARGET_DB,
            "return_ok": return_db >= RETURN_TARGET_DB, "drop_ok": drop <= DROP_TARGET_DB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/demo"),
                        help="a finished run (default runs/demo, which `make run` writes); it is copied, not changed")
    parser.add_argument("--turn-step", type=float, default=30.0, help="degrees between the loop's cameras")
    parser.add_argument("--work", type=Path, default=None,
                        help="an empty or new folder for the grown copy (default: a temporary folder, removed)")
    args = parser.parse_args()
    if not (args.run / "scene.ply").is_file():
        raise SystemExit(f"{args.run}: not a finished run with scene.ply (make one with `make run`)")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        raise SystemExit(f"--work {args.work}: not empty")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_extend_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = measure(args.run, work, args.turn_step)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
