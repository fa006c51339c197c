"""`scenedreamer batch PROMPTS.txt|PROMPTS.jsonl --out DIR`: many scenes, locally or on Ray.

Options that are not the batch's own are `generate` options (--preset, --trajectory,
--resolution, --frames, --set, --no-refinement, ...), applied to every scene; a .jsonl line may
override seed, trajectory and --set keys for its scene. Every line is checked as `generate`
checks a run before the manifest exists; each scene gets its own seed unless one is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..errors import UserInputError
from ..threads import add_threads_argument

HELP = "generate many scenes from a prompt file (local processes or a Ray cluster)"
# generate options that belong to one run, not to a batch (the batch decides them per scene)
_RUN_CONTROL = ("--out", "--resume", "--overwrite", "--dry-run")


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help=HELP, description=HELP + ". Any other option is a `generate` option "
                       "applied to every scene (see docs/usage/batch.md).")
    p.add_argument("prompts", nargs="?", help="prompt file: .txt (one prompt a line) or .jsonl "
                   "(objects with prompt, seed, trajectory, name, set)")
    p.add_argument("--out", default=None, help="batch folder: manifest.sqlite + one run folder per scene")
    p.add_argument("--status", metavar="DIR", default=None,
                   help="print the manifest of the batch in DIR (may run elsewhere) and exit")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: child processes on this machine (default); ray: Ray tasks")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, HOST:PORT or ray://HOST:PORT); none: start a local Ray")
    p.add_argument("--workers", type=int, default=None,
                   help="scenes at once (local default 1; Ray default: what the cluster's resources fit)")
    p.add_argument("--gpus-per-scene", type=float, default=0.0, help="GPUs each Ray task requests (default 0)")
    p.add_argument("--cpus-per-scene", type=float, default=1.0, help="CPUs each Ray task requests (default 1)")
    p.add_argument("--max-retries", type=int, default=1,
                   help="retries of a failed scene (bad input is not retried; default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    p.set_defaults(func=run, accepts_unknown=True)


def _generate_parser() -> argparse.ArgumentParser:
    from . import generate

    top = argparse.ArgumentParser(prog="scenedreamer batch", add_help=False)
    sub = top.add_subparsers(dest="command")
    generate.add_parser(sub)
    return sub.choices["generate"]


def scene_arguments(scene, passthrough: list[str]) -> list[str]:
    """The `generate` argument list of one scene: the batch's options, then its own."""
    argv = [scene.prompt, *passthrough]
    if scene.seed is not None:
        argv += ["--seed", str(scene.seed)]
    if scene.trajectory is not None:
        argv += ["--trajectory", scene.trajectory]
    for key, value in scene.overrides.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def _seed_fixed(passthrough: list[str], scene) -> bool:
    """Whether the user fixed the seed of this scene: the line's ``seed`` (or its ``set``), or
    --seed / --set seed=... for the whole batch. Otherwise each scene gets its own seed."""
    if scene.seed is not None or "seed" in scene.overrides:
        return True
    for i, flag in enumerate(passthrough):
        if flag == "--seed" or flag.startswith("--seed="):
            return True
        value = flag[len("--set="):] if flag.startswith("--set=") else \
            passthrough[i + 1] if flag == "--set" and i + 1 < len(passthrough) else ""
        if value.partition("=")[0].strip() == "seed":
            return True
    return False


def build_jobs(prompts: str, passthrough: list[str]):
    """Every scene's resolved GenerateConfig, built and checked exactly as `generate` builds and
    checks one (generate.build_config, then pipeline.run.check_inputs: the trajectory file, the
    dtype, a start photo). The first bad line refuses the whole batch (UserInputError naming the
    file and line) before anything is created.

    Each scene gets its own seed, derived from the batch's seed (the preset's / --config's)
    and the scene's name (batch.prompts.scene_seed), unless the line or the batch fixes it."""
    from ..batch.prompts import read_prompt_file, scene_seed
    from ..batch.runner import SceneJob
    from ..pipeline.run import check_inputs
    from .generate import build_config

    for flag in passthrough:
        if flag.split("=")[0] in _RUN_CONTROL:
            raise UserInputError(f"{flag.split('=')[0]}: not a batch option (the batch folder is --out; "
                                 "re-running the same command resumes)")
    parser = _generate_parser()
    jobs = []
    for scene in read_prompt_file(prompts):
        where = f"{prompts} line {scene.line}"
        try:
            args = parser.parse_args(scene_arguments(scene, passthrough))
        except SystemExit:
            raise UserInputError(f"{where}: bad generate option(s) {' '.join(passthrough)!r} "
                                 "(see scenedreamer generate --help)") from None
        try:
            config = build_config(args)
            fixed = _seed_fixed(passthrough, scene)
            if not fixed:
                config = dataclasses.replace(config, seed=scene_seed(config.seed, scene.name))
            check_inputs(config)
        except UserInputError as err:
            raise UserInputError(f"{where}: {err}") from None
        jobs.append(SceneJob(scene.name, config.prompt, config.seed, config, seed_fixed=fixed))
    return jobs


def run(args: argparse.Namespace, unknown: list[str] | None = None) -> int:
    from ..batch.manifest import Manifest, summary_table

    if args.status:
        with Manifest.open(args.status, create=False) as manifest:
            print(summary_table(manifest.rows()))
        return 0
    if not args.prompts or not args.out:
        raise UserInputError("give a prompt file and --out DIR (or --status DIR)")
    if args.max_retries < 0:
        raise UserInputError(f"--max-retries {args.max_retries}: must be >= 0")
    if args.workers is not None and args.workers < 1:
        raise UserInputError(f"--workers {args.workers}: must be >= 1")
    if args.cpus_per_scene < 0 or args.gpus_per_scene < 0:
        raise UserInputError("--cpus-per-scene and --gpus-per-scene must be >= 0")
    if args.executor == "local" and (args.address or args.gpus_per_scene):
        raise UserInputError("--address and --gpus-per-scene need --executor ray")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.sqlite").is_file():
        raise UserInputError(f"--out {out}: folder is not empty and holds no batch manifest; use an empty or new folder")
    jobs = build_jobs(args.prompts, list(unknown or []))
    settings = {"executor": args.executor, "prompts": str(Path(args.prompts).resolve())}

    executor = _executor(args)
    from ..batch.runner import prepare_manifest, run_batch

    try:
        manifest = prepare_manifest(out, jobs, settings)
    except BaseException:
        executor.close()
        raise
    bar = None if args.quiet else _progress_bar()
    try:
        rows = run_batch(manifest, jobs, executor, max_retries=args.max_retries, on_event=bar)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(summary_table(manifest.rows()))       # stdout: stderr gets the one "interrupted" line
        manifest.close()
        raise
    if bar is not None:
        bar.close()
    manifest.close()
    print(summary_table(rows))
    return 0 if all(r.status == "done" for r in rows) else 1


def _executor(args):
    if args.executor == "ray":
        from ..batch.ray_executor import RayExecutor

        return RayExecutor(address=args.address, cpus_per_scene=args.cpus_per_scene,
                           gpus_per_scene=args.gpus_per_scene, max_in_flight=args.workers,
                           task=os.environ.get("SCENEDREAMER_BATCH_TASK"))
    from ..batch.local import LocalExecutor

    return LocalExecutor(workers=args.workers or 1, task=os.environ.get("SCENEDREAMER_BATCH_TASK"))


def _progress_bar():
    from tqdm import tqdm

    class SceneBar:
        """Scenes done / total, with the latest scene event as the description."""

        def __init__(self):
            self.bar = None

        def __call__(self, event) -> None:
            if event.stage not in ("batch", "scene"):
                return
            if self.bar is None:
                self.bar = tqdm(total=event.total, initial=event.step, unit="scene", desc="batch",
                                file=sys.stderr, dynamic_ncols=True)
            self.bar.n = event.step
            self.bar.set_description_str(event.message[:60])
            self.bar.refresh()

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return SceneBar()
