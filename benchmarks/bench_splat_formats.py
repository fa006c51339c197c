"""Issue 22 speed targets for the splat formats:

  * `scenedreamer export RUN --format spz` and `--format gltf-splat` of the `make run` scene
    (runs/demo) each <= 10 s on 2 cores (the whole CLI process: start-up, reading scene.ply,
    converting, writing);
  * SPZ encoding of 1,000,000 Gaussians <= 5 s (encode + gzip + write, in process; SH degree 0
    and 3 both reported; the target is read on degree 0, the `make run` scene's degree).

Also reports each file's size against the scene.ply.

    python -m benchmarks.bench_splat_formats [--run runs/demo] [--gaussians 1000000]
    python -m benchmarks.bench_splat_formats --tiny          # smoke: a tiny run, 20k Gaussians

Prints one JSON object. With --tiny no target is checked (the numbers mean nothing at that size).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CLI_TARGET_S = 10.0
SPZ_1M_TARGET_S = 5.0


def time_cli_exports(run: Path, out_dir: Path) -> dict:
    """Wall time of `scenedreamer export` for spz and gltf-splat, and each file's size."""
    result = {"ply_bytes": os.path.getsize(run / "scene.ply")}
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    for fmt, name in [("spz", "scene.spz"), ("gltf-splat", "scene.glb")]:
        out = out_dir / name
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scenedreamer.cli", "export", str(run), "--format", fmt,
                               "--out", str(out), "--force", "--quiet"], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"export --format {fmt} failed: {proc.stderr.strip()}")
        result[fmt] = {"seconds": seconds, "bytes": os.path.getsize(out),
                       "ply_over_file": result["ply_bytes"] / os.path.getsize(out)}
    return result


def time_spz_encode(n: int, degree: int, out: Path) -> dict:
    """Seconds to write n random Gaussians of SH ``degree`` as SPZ (median of 3)."""
    from scenedreamer.export.spz import write_spz
    from scenedreamer.representation.gaussians import GaussianConfig, GaussianScene

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene(GaussianConfig(sh_degree=degree), num=n)
    with torch.no_grad():
        scene.means.copy_((torch.rand(n, 3, generator=g) - 0.5) * 20)
        scene.log_scales.copy_(torch.log(torch.rand(n, 3, generator=g) * 0.05 + 0.005))
        scene.quats.copy_(torch.randn(n, 4, generator=g))
        scene.opacity_logits.copy_(torch.randn(n, generator=g))
        scene.sh0.copy_(torch.randn(n, 1, 3, generator=g) * 0.5)
        scene.shN.copy_(torch.randn(n, scene.shN.shape[1], 3, generator=g) * 0.05)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        write_spz(out, scene)
        times.append(time.perf_counter() - t0)
    return {"gaussians": n, "sh_degree": degree, "seconds": sorted(times)[1], "bytes": os.path.getsize(out)}


def tiny_run(folder: Path) -> Path:
    """The smoke mode's run: generated in this process (it is not timed; a child only repeated
    the imports), with 5 distillation steps instead of 300 (any scene.ply will do)."""
    from scenedreamer.cli import main as cli_main

    run = folder / "run"
    args = ["generate", "a forest lake", "--out", str(run), "--resolution", "48x32", "--frames", "2",
            "--representation", "gaussians", "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=3",
            "--set", "export.video=false", "--set", "export.nerfstudio=false", "--set", "export.distill.steps=5",
            "--quiet"]
    with contextlib.redirect_stdout(sys.stderr):            # stdout is this script's JSON alone
        code = cli_main(args)
    if code != 0:
        raise SystemExit("tiny generate failed (its error is above)")
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished run (default: make run's)")
    ap.add_argument("--gaussians", type=int, default=1_000_000, help="splats in the synthetic SPZ scene")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: a tiny run and 20k Gaussians, no targets")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = tiny_run(tmp) if args.tiny else args.run
        if not (run / "scene.ply").is_file():
            raise SystemExit(f"{run}: no scene.ply (run `make run` first, or pass --run)")
        n = 20_000 if args.tiny else args.gaussians
        result = {"cli": time_cli_exports(run, tmp),
                  "spz_encode": [time_spz_encode(n, d, tmp / f"synthetic{d}.spz") for d in (0, 3)]}
    if not args.tiny:
        result["targets"] = {
            "cli_spz_le_10s": result["cli"]["spz"]["seconds"] <= CLI_TARGET_S,
            "cli_gltf_splat_le_10s": result["cli"]["gltf-splat"]["seconds"] <= CLI_TARGET_S,
            "spz_1m_degree0_le_5s": result["spz_encode"][0]["seconds"] <= SPZ_1M_TARGET_S}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
