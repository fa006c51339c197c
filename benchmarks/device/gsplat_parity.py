"""gsplat (CUDA) against our PyTorch tile rasterizer: values, gradients and speed.

Run on a GPU machine where gsplat is installed (it JIT-compiles its kernels on first use):

    python benchmarks/device/gsplat_parity.py                 # 200k Gaussians at 512x512
    python benchmarks/device/gsplat_parity.py --n 20000 --size 256
    python benchmarks/device/gsplat_parity.py --cpu-smoke     # check this script on CPU (no gsplat)

What it reports, on a random frustum scene (benchmarks/bench_rasterizer.frustum_scene):
- forward parity: mean and max |difference| of colour, alpha, and accumulated depth;
- gradient parity: for means, quats, scales, opacities and colours, the cosine similarity of the
  two gradients and their relative L2 difference (gsplat bounds each Gaussian by its own radius
  rule, so faint fringe pixels differ: expect cosine > 0.99, not bit equality);
- speed: forward and forward+backward milliseconds of each backend (after a warm-up).
Written to ``benchmarks/results/gsplat_parity.json`` (and to $OUT when that is set).
Exits 0 with a one-line note when CUDA or gsplat is missing (nothing to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from benchmarks.bench_rasterizer import frustum_scene  # noqa: E402
from scenedreamer.atomic import atomic_write_json  # noqa: E402
from scenedreamer.representation.rasterize import RasterConfig, rasterize  # noqa: E402
from scenedreamer.representation.rasterize.gsplat_backend import gsplat_available  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "gsplat_parity.json"


def run(params, cam, backend: str, tile_size: int):
    leaves = [p.clone().requires_grad_() for p in params]
    out = rasterize(*leaves, cam, RasterConfig(backend=backend, tile_size=tile_size))
    (out.values.sum() + 0.1 * out.depth.sum() + out.alpha.sum()).backward()
    return out, [p.grad for p in leaves]


def timed_ms(fn, device, repeats: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pixels", type=float, default=1.5, help="median screen std-dev of a Gaussian")
    parser.add_argument("--cpu-smoke", action="store_true", help="compare torch with itself on CPU")
    args = parser.parse_args()
    if args.cpu_smoke:
        device, other = torch.device("cpu"), "torch"
        args.n, args.size = min(args.n, 2000), min(args.size, 64)
    else:
        if not torch.cuda.is_available() or not gsplat_available():
            print("gsplat parity: needs CUDA and gsplat installed; nothing compared")
            return 0
        device, other = torch.device("cuda"), "gsplat"
    params, cam = frustum_scene(args.n, args.size, args.pixels)
    params = [p.to(device) for p in params]
    cam = cam.to(device)
    ours, g_ours = run(params, cam, "torch", 8)
    theirs, g_theirs = run(params, cam, other, 16)
    res: dict = {"machine": {"processor": platform.processor(), "cores": os.cpu_count(),
                             "torch": torch.__version__,
                             "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
                 "n": args.n, "size": args.size, "other_backend": other}
    for name, a, b in [("values", ours.values, theirs.values), ("alpha", ours.alpha, theirs.alpha),
                       ("depth", ours.depth, theirs.depth)]:
        d = (a.detach() - b.detach()).abs()
        res[f"{name}_mean_abs"], res[f"{name}_max_abs"] = float(d.mean()), float(d.max())
    for name, a, b in zip(["means", "quats", "scales", "opacities", "colours"], g_ours, g_theirs):
        a, b = a.flatten().double(), b.flatten().double()
        res[f"grad_{name}_cosine"] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        res[f"grad_{name}_rel_l2"] = float((a - b).norm() / b.norm().clamp_min(1e-30))
    for backend, ts in [("torch", 8), (other, 16)]:
        cfg = RasterConfig(backend=backend, tile_size=ts)

        def fwd():
            with torch.no_grad():
                rasterize(*params, cam, cfg)
        res[f"{backend}_forward_ms"] = timed_ms(fwd, device)
        res[f"{backend}_train_ms"] = timed_ms(lambda: run(params, cam, backend, ts), device)
    for k, v in res.items():
        print(f"{k}: {v}")
    text = json.dumps(res, indent=2)
    if not args.cpu_smoke:
        atomic_write_json(RESULTS, res)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gsplat_parity.json").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
