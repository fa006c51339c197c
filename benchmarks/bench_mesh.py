"""Issue 22 item 2 targets for a finished run: the GLB mesh as a glTF viewer shows it.

Exports RUN as GLB through the CLI (`scenedreamer export RUN --format glb`), reads the file back
with an independent reader and z-buffer rasteriser (tests/export/zbuffer.py: pygltflib, no code
shared with the mesher or the GLB writer; linear COLOR_0 turned back to sRGB as a viewer does),
and at every support camera measures, over the non-backdrop pixels (valid, depth > 0, not
ViewRecord.backdrop):

- coverage: the fraction the mesh covers (target >= 0.90),
- depth_ok: the fraction whose mesh z-depth is within 5 % of the stored depth (target >= 0.90),
- psnr: colour PSNR against the support image on covered pixels (target >= 25 dB),

plus the export's wall time and the triangle count.

    python -m benchmarks.bench_mesh runs/demo [--mesher views|tsdf] [--write]

(`make run` writes runs/demo.) --write stores the result in benchmarks/results/mesh.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGETS = {"coverage": 0.90, "depth_ok": 0.90, "psnr": 25.0}


def measure(run: Path, mesher: str = "views") -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from export.zbuffer import glb_at_view, mesh_scores, read_glb_nodes

    from scenedreamer.cli import main
    from scenedreamer.support.database import SupportDatabase

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scene.glb"
        start = time.perf_counter()
        code = main(["export", str(run), "--format", "glb", "--out", str(out), "--mesher", mesher, "--quiet"])
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"export failed with exit code {code}")
        nodes = read_glb_nodes(out)
        size = out.stat().st_size
    per_view = []
    with SupportDatabase.open(run / "support", create=False) as db:
        for view_id in db.ids():
            v = db.get(view_id)
            depth, rgb = glb_at_view(nodes, "scene", v.K.numpy(), v.c2w.numpy(), v.width, v.height)
            surface = (v.valid & ~v.backdrop & (v.depth > 0)).numpy()
            per_view.append({"view": view_id, **mesh_scores(depth, rgb, v.depth.numpy(), v.rgb.numpy(), surface)})
    summary = {k: {"min": float(min(p[k] for p in per_view)), "mean": float(np.mean([p[k] for p in per_view]))}
               for k in TARGETS}
    passed = {k: summary[k]["min"] >= t for k, t in TARGETS.items()}
    return {"run": str(run), "mesher": mesher, "export_seconds": seconds, "glb_bytes": size,
            "triangles": int(len(nodes["scene"][1])), "summary": summary, "targets": TARGETS,
            "passed": passed, "per_view": per_view}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--mesher", choices=("views", "tsdf"), default="views")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.run, args.mesher)
    print(json.dumps({k: v for k, v in result.items() if k != "per_view"}, indent=2))
    if args.write:
        path = Path(__file__).parent / "results" / "mesh.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(result["passed"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
