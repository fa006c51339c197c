"""`scenedreamer models list | check | download NAME...`: the known model presets and their weights.

Only parses arguments and prints; the work is in ``priors.model_registry`` and ``priors.loading``.
Exit codes: 0 ok; 1 a checked model is missing or a download failed (no network, offline mode);
2 bad input (unknown preset, nonexistent folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "list, check and download the pretrained models"


def add_parser(subparsers) -> None:
    """Register `models` and its sub-subcommands on the top-level subparsers."""
    parser = subparsers.add_parser("models", help=HELP,
                                   description="Known model presets, which are present locally, and downloads "
                                               "into the standard Hugging Face cache.")
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True

    p_list = sub.add_parser("list", help="the known presets (name, task, hub id, size, licence, local)")
    p_list.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: the standard one)")

    p_check = sub.add_parser("check", help="which models are present locally (exit 1 if a named one is not)")
    p_check.add_argument("names", nargs="*", metavar="NAME",
                         help="preset names, hub ids or local folders (default: all presets)")
    p_check.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: the standard one)")

    p_dl = sub.add_parser("download", help="download presets (or hub ids) into the Hugging Face cache")
    p_dl.add_argument("names", nargs="*", metavar="NAME", help="preset names (see `models list`) or hub ids owner/name")
    p_dl.add_argument("--preset", default=None, metavar="PRESET",
                      help="every model a `generate --preset` needs (sd15, sd2, sd15-fast, sd2-fast; offline needs none)")
    p_dl.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: the standard one)")
    p_dl.add_argument("--revision", default=None, help="branch, tag or commit (default: the main branch)")
    p_dl.add_argument("--variant", default=None,
                      help='weight variant, e.g. "fp16" (half the download; load with ModelLoadConfig(variant="fp16"))')


def run(args: argparse.Namespace) -> int:
    """Dispatch to list / check / download; returns the exit code."""
    from ..priors.loading import check_cache_dir

    check_cache_dir(args.cache_dir, "--cache-dir")          # before anything is printed or fetched
    return {"list": _list, "check": _check, "download": _download}[args.models_command](args)


def _list(args: argparse.Namespace) -> int:
    from ..priors.loading import local_status
    from ..priors.model_registry import PRESETS

    # torch-free: model_registry and loading's cache look-ups import no torch (the list starts in
    # about a second; tests/cli/test_models_startup.py)
    rows = [("NAME", "TASK", "FAMILY", "SIZE", "LOCAL", "HUB ID", "LICENCE")]
    for preset in PRESETS.values():
        status = local_status(preset.name, args.cache_dir)
        size = preset.approx_size_gb
        licence = preset.license + (f" ({', '.join(preset.restrictions)})" if preset.restrictions else "")
        rows.append((preset.name, preset.task, preset.family, f"{size:.1f} GB" if size >= 0.1 else f"{size:.2f} GB",
                     "yes" if status.present else ("partial" if status.folder else "no"),
                     preset.hub_id, licence))
    _print_table(rows)
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..errors import MissingWeightsError
    from ..pipeline.prior_kinds import PRIOR_KINDS
    from ..priors.loading import local_status
    from ..priors.model_registry import PRESETS

    names = args.names or list(PRESETS)
    missing = 0
    for name in names:
        if name in PRIOR_KINDS:            # a built-in stand-in: nothing to look for
            print(f"{name}: built in ({PRIOR_KINDS[name].label}); needs no weights")
            continue
        path = Path(name).expanduser()
        if path.exists() and not path.is_dir():     # a file is never a model: say what it is
            missing += 1
            kind = "a file" if path.is_file() else "not a folder (a device, pipe or socket)"
            print(f"{name}: is {kind}, not a model folder; pass the folder that holds the model, "
                  "a hub id (owner/name) or a preset name (`scenedreamer models list`)")
            continue
        try:
            status = local_status(name, args.cache_dir)
        except MissingWeightsError as err:  # a folder that does not exist: report it, check the rest
            missing += 1
            print(f"{name}: missing; {err}")
            continue
        label = status.source.display_name
        if status.present:
            print(f"{label}: present at {status.folder}")
        elif status.folder is not None:
            missing += 1
            print(f"{label}: incomplete at {status.folder} (lacks {', '.join(status.missing)}); "
                  f"{status.source.how_to_get()}")
        else:
            missing += 1
            print(f"{label}: missing; {status.source.how_to_get()}")
    return 1 if (missing and args.names) else 0


def _download(args: argparse.Namespace) -> int:
    from ..errors import UserInputError
    from ..priors.loading import download_model
    from ..priors.model_registry import find_preset

    from ..pipeline.prior_kinds import PRIOR_KINDS

    stand_ins = [name for name in args.names if name in PRIOR_KINDS]
    if stand_ins:                          # refused before anything is fetched
        raise UserInputError(f"{stand_ins[0]!r} is a built-in stand-in ({PRIOR_KINDS[stand_ins[0]].label}), "
                             "not a model: nothing to download")
    names = list(args.names)
    if args.preset is not None:
        names += [n for n in generation_preset_models(args.preset) if n not in names]
        if not names:
            print(f"preset {args.preset} needs no downloaded model", file=sys.stderr)
            return 0
    if not names:
        raise UserInputError("name the models to download, or --preset PRESET (e.g. --preset sd15)")
    for name in names:  # in order; the first failure stops with its one-line error
        preset = find_preset(name)
        if preset is not None:
            print(f"downloading {preset.name} ({preset.hub_id}, about {preset.approx_size_gb:.1f} GB, "
                  f"licence: {preset.license}) ...", file=sys.stderr)
        folder = download_model(name, cache_dir=args.cache_dir, revision=args.revision, variant=args.variant)
        print(f"{name}: {folder}")
    return 0


def generation_preset_models(preset: str) -> list[str]:
    """The model names (registry presets, hub ids) that `generate --preset PRESET` loads, as the
    run loads them (UserInputError naming the valid presets for an unknown one)."""
    from ..errors import UserInputError
    from ..pipeline.config import PRESETS, preset_config
    from ..pipeline.plan import loaded_networks

    if preset not in PRESETS:
        raise UserInputError(f"--preset {preset}: not a generate preset (valid: {', '.join(PRESETS)})")
    return loaded_networks(preset_config(preset))


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
