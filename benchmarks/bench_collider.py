"""Issue 22 item 6 targets for a finished offline run: the walkable collider in a physics engine.

Exports RUN through the CLI (`scenedreamer export RUN --format collider`), timing it (target
<= 10 s on 2 cores), reads the GLB back with an independent reader (tests/export/zbuffer.py) into
pybullet (tests/export/collider_physics.py) and, at every trajectory camera's ground position
(the procedural world's exact ground under it, from the run's prompt and seed):

- floor_err: |collider floor - exact ground| (ray straight down; target <= 0.05 m at each),
- rested: the fraction where a capsule 1.6 m tall, 0.2 m radius, dropped with its feet 0.3 m
  above the ground, is at rest (< 0.05 m/s) with its feet within 5 cm of the ground after 2 s
  simulated (target >= 0.90),

plus the triangle count (target <= 200k) and the spawn point's error against the exact ground.

    python -m benchmarks.bench_collider runs/demo [--write]

(`make run` writes runs/demo.) --write stores the result in benchmarks/results/collider.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(run: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from export.collider_physics import REST_SPEED, Physics, exact_ground_y_up
    from export.zbuffer import read_glb_nodes

    from scenedreamer.cli import main
    from scenedreamer.geometry.trajectory_io import read_transforms_json
    from scenedreamer.priors.offline import build_offline_priors

    config = json.loads((run / "config.json").read_text())
    world = build_offline_priors(config["prompt"], int(config["seed"])).world
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "collider.glb"
        start = time.perf_counter()
        assert main(["export", str(run), "--format", "collider", "--out", str(out), "--quiet"]) == 0
        seconds = time.perf_counter() - start
        vertices, faces = read_glb_nodes(out)["collider"][:2]
        spawn = json.loads((Path(tmp) / "collider.spawn.json").read_text())
    c2w = read_transforms_json(run / "trajectory.json").cameras.c2w.double().numpy()
    x, z = c2w[:, 0, 3], -c2w[:, 2, 3]                       # run's world -> glTF (x, -y, -z)
    ground = exact_ground_y_up(world, x, z)
    physics = Physics(vertices, faces)
    try:
        floors = [physics.floor(a, b, g + 1.0) for a, b, g in zip(x, z, ground)]
        drops = [physics.drop(a, b, g + 0.3) for a, b, g in zip(x, z, ground)]
    finally:
        physics.close()
    floor_err = [None if f is None else abs(f - g) for f, g in zip(floors, ground)]
    rested = [abs(feet - g) < 0.05 and speed < REST_SPEED for (feet, speed), g in zip(drops, ground)]
    spawn_err = None if spawn["position"] is None else abs(spawn["position"][1] - float(ground[0]))
    return {"run": str(run), "export_s": round(seconds, 2), "triangles": int(len(faces)),
            "cameras": int(len(x)), "floor_err_max_m": None if None in floor_err else round(max(floor_err), 4),
            "floor_err_m": [None if e is None else round(float(e), 4) for e in floor_err],
            "floor_within_5cm": float(np.mean([e is not None and e <= 0.05 for e in floor_err])),
            "rested": float(np.mean(rested)), "spawn_err_m": spawn_err,
            "targets": {"export_s": 10.0, "triangles": 200_000, "floor_err_max_m": 0.05, "rested": 0.9}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    result = measure(args.run)
    print(json.dumps(result, indent=2))
    if args.write:
        path = Path(__file__).parent / "results" / "collider.json"
        path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
