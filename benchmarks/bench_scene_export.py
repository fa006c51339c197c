"""Issue 9 targets for a finished run folder: how faithful is the scene.ply users take away?

Renders RUN/scene.ply with the reference 3DGS renderer's conventions (cull z <= 0.2, 0.3 px
screen-space dilation, composited on black: representation.distill.standard_viewer_config) and
reports PSNR against every support view, and at cameras half-way between trajectory cameras
against the procedural world's exact images (offline runs only).

    python -m benchmarks.bench_scene_export runs/demo [--write]

Targets (issue 9): support views mean >= 27 dB, worst >= 24 dB; half-way cameras >= 25 dB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def measure(run: Path) -> dict:
    from scenedreamer.config_io import load_config
    from scenedreamer.eval.metrics import psnr
    from scenedreamer.export.ply import read_gaussians_ply
    from scenedreamer.geometry.cameras import Cameras
    from scenedreamer.geometry.trajectory import interpolate_poses
    from scenedreamer.geometry.trajectory_io import read_transforms_json
    from scenedreamer.pipeline.config import GenerateConfig
    from scenedreamer.priors.offline import build_offline_priors
    from scenedreamer.representation.distill import standard_viewer_config
    from scenedreamer.support.database import SupportDatabase

    config = load_config(GenerateConfig, run / "config.json")
    scene = read_gaussians_ply(run / "scene.ply", standard_viewer_config())
    scene.eval()
    support = []
    with SupportDatabase.open(run / "support", create=False) as db:
        for view_id in db.ids():
            view = db.get(view_id)
            with torch.no_grad():
                out = scene.render(view.camera)
            support.append(float(psnr(out.rgb[0].clamp(0, 1), view.rgb)))
    result = {"run": str(run), "gaussians": scene.num_gaussians, "support_mean_db": sum(support) / len(support),
              "support_worst_db": min(support), "support_db": support}
    if config.procedural_world_run:
        traj = read_transforms_json(run / "trajectory.json").cameras
        n = len(traj)
        dense = interpolate_poses(traj.c2w, 2 * n - 1)[1::2]                 # half-way poses
        cams = Cameras(traj.K[:1].expand(len(dense), 3, 3).contiguous(), dense, traj.width, traj.height)
        world = build_offline_priors(config.prompt, config.seed, config.priors.world).world
        between = []
        for i in range(len(cams)):
            truth = world.render(cams[i])
            with torch.no_grad():
                out = scene.render(cams[i])
            between.append(float(psnr(out.rgb[0].clamp(0, 1), truth.rgb[0])))
        result.update(between_mean_db=sum(between) / len(between), between_worst_db=min(between),
                      between_db=between)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run in args.runs:
        r = measure(run)
        print(json.dumps({k: (round(v, 2) if isinstance(v, float) else
                              [round(x, 2) for x in v] if isinstance(v, list) else v) for k, v in r.items()}))


if __name__ == "__main__":
    main()
