"""Support database speed: add 100 views of 512x512 and reopen (target <= 2 s on 2 cores), plus
get / neighbours / replay / sync / nerfstudio export.

Run: ``.venv/bin/python -m benchmarks.bench_support [--views 100] [--size 512] [--repeats 3]
[--dir /tmp]``. Prints each figure and writes them to benchmarks/results/support.json.
Each timed figure is the best of ``--repeats`` runs (the least disturbed by other processes);
all runs are kept in the JSON. The load average at start is recorded: on a busy 2-core machine
torch's intra-op threads contend and every figure inflates.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from scenedreamer.atomic import atomic_write_json
from scenedreamer.geometry.cameras import intrinsics_from_fov
from scenedreamer.support import Provenance, SupportConfig, SupportDatabase, ViewRecord

RESULTS = Path(__file__).parent / "results" / "support.json"


def make_views(count: int, size: int, seed: int = 0) -> list[ViewRecord]:
    """``count`` random size x size views on a circle of cameras looking inwards-ish."""
    g = torch.Generator().manual_seed(seed)
    K = intrinsics_from_fov(60.0, size, size)
    views = []
    for i in range(count):
        angle = 2 * torch.pi * i / count
        c2w = torch.eye(4)
        c2w[:3, :3] = torch.tensor([[torch.cos(torch.tensor(angle)), 0, torch.sin(torch.tensor(angle))],
                                    [0, 1, 0],
                                    [-torch.sin(torch.tensor(angle)), 0, torch.cos(torch.tensor(angle))]])
        c2w[:3, 3] = torch.tensor([0.05 * i, 0.0, 0.0])
        valid = torch.rand(size, size, generator=g) > 0.1
        views.append(ViewRecord(rgb=torch.rand(size, size, 3, generator=g),
                                depth=(1.0 + 3.0 * torch.rand(size, size, generator=g)) * valid,
                                valid=valid, inpainted=~valid, K=K, c2w=c2w,
                                provenance=Provenance.WARP_INPAINT, step=i, prompt="bench"))
    return views


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def best_of(repeats: int, run: Callable[[], float]) -> tuple[float, list[float]]:
    times = [run() for _ in range(repeats)]
    return min(times), times


def add_and_reopen(views: list[ViewRecord], config: SupportConfig, parent: Path) -> dict[str, float]:
    """Seconds to open a new database, add every view, close it and open it again."""
    folder = Path(tempfile.mkdtemp(dir=parent))
    try:
        t0 = time.perf_counter()
        db = SupportDatabase.open(folder, config=config)
        for view in views:
            db.add(view)
        t1 = time.perf_counter()
        db.close()
        t2 = time.perf_counter()
        db = SupportDatabase.open(folder, config=config)
        t3 = time.perf_counter()
        assert len(db) == len(views)
        db.close()
        return {"total_s": t3 - t0, "add_s": t1 - t0, "close_s": t2 - t1, "reopen_s": t3 - t2}
    finally:
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--export-views", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    results: dict = {
        "machine": {"processor": platform.processor(), "cpu_model": cpu_model(),
                    "machine": platform.machine(),
                    "cores": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()},
        "setup": {"views": args.views, "size": args.size, "repeats": args.repeats},
        "figures": {},
    }
    figures = results["figures"]

    def report(name: str, value: float, unit: str, runs: list[float] | None = None) -> None:
        figures[name] = {"value": round(value, 6), "unit": unit, **({"runs": runs} if runs else {})}
        print(f"{name:48s} {value:10.4f} {unit}")

    views = make_views(args.views, args.size)
    mb = sum(v.rgb.numel() * 4 + v.depth.numel() * 4 + v.valid.numel() * 2 for v in views) / 2**20
    print(f"{args.views} views of {args.size}x{args.size} ({mb:.0f} MB of arrays)")

    for label, config in [("default", SupportConfig()),
                          ("fsync", SupportConfig(fsync=True)),
                          ("float16", SupportConfig(rgb_storage_dtype="float16"))]:
        runs = [add_and_reopen(views, config, args.dir) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["total_s"])
        report(f"add_{args.views}_and_reopen_{label}_s", best["total_s"], "s",
               [round(r["total_s"], 4) for r in runs])
        for part in ("add_s", "close_s", "reopen_s"):
            report(f"  {label}.{part}", best[part], "s")

    folder = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        with SupportDatabase.open(folder) as db:
            for view in views:
                db.add(view)
            t0 = time.perf_counter()
            db.sync()
            report(f"sync_after_{args.views}_adds_s", time.perf_counter() - t0, "s")

            def time_gets() -> float:
                t = time.perf_counter()
                for view_id in db.ids():
                    db.get(view_id)
                return (time.perf_counter() - t) / len(db) * 1e3
            report("get_ms_per_view", best_of(args.repeats, time_gets)[0], "ms")

            query = views[len(views) // 2].camera

            def time_neighbours() -> float:
                t = time.perf_counter()
                db.neighbours(query, k=4)
                return (time.perf_counter() - t) * 1e3
            report(f"neighbours_k4_of_{args.views}_ms", best_of(args.repeats, time_neighbours)[0], "ms")

            def time_replay() -> float:
                t = time.perf_counter()
                db.sample_replay(64, torch.Generator().manual_seed(0))
                return (time.perf_counter() - t) * 1e3
            report("sample_replay_64_ms", best_of(args.repeats, time_replay)[0], "ms")

            db.truncate_after_step(args.export_views - 1)
            export_dir = folder / "export"
            t0 = time.perf_counter()
            db.export_nerfstudio(export_dir)
            report("nerfstudio_export_ms_per_view",
                   (time.perf_counter() - t0) / len(db) * 1e3, "ms")
    finally:
        shutil.rmtree(folder)

    atomic_write_json(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
