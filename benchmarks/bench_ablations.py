"""Issues 10 and 25: the method's ablation table, with the offline preset, evaluated by `scenedreamer eval`.

    python -m benchmarks.bench_ablations [--write] [--out DIR] [--resolution WxH] [--frames N]

Runs the full method and each ablation (no refinement, no replay, no consistency, Gaussians
instead of the tri-plane NeRF) on three prompts (outdoor, indoor, city), each through the real
command line (`scenedreamer generate`), then `scenedreamer eval` on the five runs of each prompt
(path frames rendered at --eval-resolution so that NIQE's 96 px patches fit at two scales).
"No adapter" is not defined for the offline refiner (it has no adapter; `generate --no-adapter`
refuses it), so its row says so; the switch is exercised on the diffusion path by
tests/pipeline/test_ablations.py.

Every eval runs with --worldscore (issue 25 columns: WorldScore-style camera control, 3D and
photometric consistency, FLIP against the procedural world, revisit PSNR, empty fraction). A
second table evaluates --paths-run (default runs/demo, the `make run` scene) on its own path,
an orbit and a loop (back_and_forth).

Writes benchmarks/results/ablations.json (every figure, per prompt) and, with --write, the
table (means over the three prompts) between the ablation markers of BENCHMARKS.md. Finished
runs in --out are reused (delete the folder to start again), so an interrupted benchmark
re-run only does what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
START, END = "<!-- ablations:start -->", "<!-- ablations:end -->"

PROMPTS = {"outdoor": "a forest lake at sunset", "indoor": "a cozy living room with a sofa",
           "city": "a city street with tall buildings"}
# The method's representation is the tri-plane NeRF; it is named explicitly because the offline
# preset's default may be the Gaussians (the faster path, docs/design.md).
NERF = ["--representation", "nerf"]
VARIANTS = {"full method": NERF, "no refinement": [*NERF, "--no-refinement"], "no replay": [*NERF, "--no-replay"],
            "no consistency": [*NERF, "--no-consistency"],
            "Gaussians instead of NeRF": ["--representation", "gaussians"]}
NOT_DEFINED = {"no adapter": "not defined offline: the offline refiner has no adapter (tested on the "
                             "diffusion path in tests/pipeline/test_ablations.py)"}
# the columns of the table: metric -> header
COLUMNS = {"gt_psnr": "held-out PSNR dB (higher)", "gt_ssim": "held-out SSIM (higher)",
           "gt_depth_error": "held-out depth err. % (lower)", "support_psnr": "scene.ply vs support dB (higher)",
           "depth_reprojection_error": "reproj. err. % (lower)", "flow_warping_error": "flow-warp err. (lower)",
           "niqe": "NIQE (lower)", "brisque": "BRISQUE (lower)", "clip_score": "CLIP (higher)",
           "gt_flip": "held-out FLIP (lower)", "empty_fraction": "empty % (lower)",
           "ws_camera_control": "WS camera control 0-100 (higher)", "ws_3d_consistency": "WS 3D cons. 0-100 (higher)",
           "ws_photometric_consistency": "WS photometric 0-100 (higher)", "revisit_psnr": "revisit PSNR dB (higher)"}
# issue 25: the `make run` scene evaluated on its own path, an orbit and a loop (there and back)
PATHS = {"its own path": [], "orbit": ["--path", "orbit"], "loop (back and forth)": ["--path", "back_and_forth"]}
PATHS_START, PATHS_END = "<!-- eval-paths:start -->", "<!-- eval-paths:end -->"
NO_REVISIT = "no revisit in this path"


def slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def generate(prompt: str, out: Path, flags: list[str], common: list[str]) -> float | None:
    """Run `scenedreamer generate` unless ``out`` already holds a finished run; seconds taken
    (None when reused)."""
    if (out / "scene.ply").exists() and (out / "progress.json").exists():
        return None
    cmd = [sys.executable, "-m", "scenedreamer.cli", "generate", prompt, "--out", str(out), "--quiet",
           *common, *flags]
    if out.exists():
        cmd.append("--resume")
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    return time.monotonic() - start


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric in ("gt_depth_error", "depth_reprojection_error", "empty_fraction"):
        return f"{100 * value:.2f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def table(results: dict) -> str:
    """Markdown: one row per variant, metrics averaged over the prompts (n/a if unavailable)."""
    lines = ["| ablation | " + " | ".join(COLUMNS.values()) + " | generate s (mean) |",
             "| --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |"]
    for variant in VARIANTS:
        cells = []
        for metric in COLUMNS:
            entries = [results["prompts"][p]["runs"][variant]["metrics"][metric] for p in PROMPTS]
            values = [e.get("value") for e in entries if e.get("value") is not None]
            if len(values) == len(PROMPTS):
                cells.append(fmt(metric, sum(values) / len(values)))
            elif all(e.get("reason") == NO_REVISIT for e in entries):
                cells.append(NO_REVISIT)
            elif values:        # e.g. SfM registered the frames of only some prompts: say how many
                cells.append(f"{fmt(metric, sum(values) / len(values))} ({len(values)} of {len(PROMPTS)})")
            else:
                cells.append("n/a")
        secs = [results["prompts"][p]["runs"][variant]["generate_s"] for p in PROMPTS]
        secs = [s for s in secs if s is not None]
        mean_s = f"{sum(secs) / len(secs):.0f}" if secs else "n/a (reused runs)"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {mean_s} |")
    for variant, why in NOT_DEFINED.items():
        lines.append(f"| {variant} | {why} |" + " |" * len(COLUMNS))
    return "\n".join(lines) + "\n"


def paths_table(run: Path, report_root: Path, eval_args: list[str]) -> tuple[str, dict]:
    """Evaluate one run on its own path, an orbit and a loop: a markdown table and the figures."""
    figures = {}
    for name, flags in PATHS.items():
        report = report_root / slug(name.split(" ")[0])
        subprocess.run([sys.executable, "-m", "scenedreamer.cli", "eval", str(run), "--out", str(report), *eval_args,
                        "--quiet", "--offline", "--worldscore", *flags], check=True, stdout=subprocess.DEVNULL)
        figures[name] = json.loads((report / "metrics.json").read_text())["runs"][0]["metrics"]
    shown = [m for m in COLUMNS if not m.startswith("gt_") and m != "support_psnr"]
    lines = ["| path | " + " | ".join(COLUMNS[m] for m in shown) + " |", "| --- | " + " | ".join("---" for _ in shown) + " |"]
    for name, metrics in figures.items():
        cells = [fmt(m, metrics[m].get("value")) if metrics[m]["available"]
                 else (NO_REVISIT if metrics[m].get("reason") == NO_REVISIT else "n/a") for m in shown]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", figures


def _write_between(md: str, start: str, end: str, text: str) -> str:
    if start not in md or end not in md:
        raise SystemExit(f"{BENCHMARKS_MD}: lacks the {start} / {end} markers")
    head, rest = md.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + "\n" + text + end + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ablations"))
    parser.add_argument("--resolution", default="128x128", help="generation resolution")
    parser.add_argument("--frames", type=int, default=6, help="trajectory cameras per run")
    parser.add_argument("--eval-frames", type=int, default=20)
    parser.add_argument("--eval-resolution", default="192x192", help="render size of eval's path frames")
    parser.add_argument("--extra", default="", help="more `generate` arguments for every run, one string "
                        "(e.g. --extra='--set export.video=false')")
    parser.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    parser.add_argument("--paths-run", type=Path, default=Path("runs/demo"),
                        help="the run of the second table (own path, orbit, loop): the `make run` scene")
    parser.add_argument("--table-only", action="store_true",
                        help="rewrite the ablation table from benchmarks/results/ablations.json (no runs)")
    args = parser.parse_args()
    if args.table_only:
        text = table(json.loads((RESULTS / "ablations.json").read_text()))
        print(text)
        if args.write:
            BENCHMARKS_MD.write_text(_write_between(BENCHMARKS_MD.read_text(), START, END, text))
        return
    common = ["--resolution", args.resolution, "--frames", str(args.frames), *shlex.split(args.extra)]
    results: dict = {"command": " ".join(sys.argv[1:]), "generate_args": common,
                     "eval_args": ["--frames", str(args.eval_frames), "--resolution", args.eval_resolution],
                     "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "load_average_start": os.getloadavg()[0]}, "prompts": {}}
    for key, prompt in PROMPTS.items():
        runs = {}
        for variant, flags in VARIANTS.items():
            out = args.out / key / slug(variant)
            seconds = generate(prompt, out, flags, common)
            print(f"{key:8} {variant:28} generate {'reused' if seconds is None else f'{seconds:.0f} s'}", flush=True)
            runs[variant] = {"run": str(out), "generate_s": seconds}
        report = args.out / key / "eval"
        subprocess.run([sys.executable, "-m", "scenedreamer.cli", "eval", *[r["run"] for r in runs.values()],
                        "--out", str(report), "--frames", str(args.eval_frames), "--resolution", args.eval_resolution,
                        "--quiet", "--offline", "--worldscore"], check=True, stdout=subprocess.DEVNULL)
        data = json.loads((report / "metrics.json").read_text())
        for variant, run_data in zip(VARIANTS, data["runs"]):
            runs[variant]["metrics"] = run_data["metrics"]
        results["prompts"][key] = {"prompt": prompt, "runs": runs, "eval_settings": data["settings"]}
    results["machine"]["load_average_end"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ablations.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text)
    paths_text = ""
    if args.paths_run.exists():
        paths_text, results["paths"] = paths_table(args.paths_run, args.out / "paths",
                                                   ["--frames", str(args.eval_frames), "--resolution",
                                                    args.eval_resolution])
        print(paths_text)
        (RESULTS / "ablations.json").write_text(json.dumps(results, indent=1))
    else:
        print(f"{args.paths_run}: not found (run `make run` first): no path table")
    if args.write:
        md = _write_between(BENCHMARKS_MD.read_text(), START, END, text)
        if paths_text:
            if PATHS_START not in md:
                md = md.replace(END, END + "\n\nThe `make run` scene on its own path, an orbit and a loop (issue 25):\n\n"
                                + PATHS_START + "\n" + PATHS_END, 1)
            md = _write_between(md, PATHS_START, PATHS_END, paths_text)
        BENCHMARKS_MD.write_text(md)


if __name__ == "__main__":
    main()
