"""What `scenedreamer eval` writes: metrics.json, table.md (runs side by side) and PNG plots.

Output folder rules (never replace a file this command did not write): the folder may be new,
empty, or an earlier eval's output (its metrics.json says ``"written_by": "scenedreamer eval"``
and lists the files it wrote). Any other existing file in the way is a refusal naming it. Every
file goes through ``scenedreamer.atomic`` (temp file + rename).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..atomic import atomic_path, atomic_write_json, atomic_write_text, check_writable_destination
from ..errors import UserInputError
from .evaluate import METRICS, NO_REVISIT, RunEvaluation

WRITTEN_BY = "scenedreamer eval"
PLOT_SIZE_PX = (960, 540)
"""Width x height of every plot in pixels (dpi 100)."""


# How to read the no-reference scores (printed under the table). Ranges are approximate, from
# the scores their authors report for natural photographs of the LIVE image quality database.
READING_SCALES = {
    "niqe": "NIQE: lower is better; undistorted natural photographs score about 3-5, visibly blurred, "
            "noisy or blocky ones 6-10 and more (Mittal, Soundararajan & Bovik, IEEE SPL 2013, LIVE IQA database)",
    "brisque": "BRISQUE: lower is better, about 0-100; undistorted natural photographs score about 10-30, "
               "strongly distorted ones 50-100 (Mittal, Moorthy & Bovik, IEEE TIP 2012, LIVE IQA database)",
}


def _wrap(text: str, width: int = 90) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def plot_names(metric_names: list[str]) -> list[str]:
    """Relative paths of the plots for these metrics: a per-frame curve and a bar chart each."""
    return [f"plots/{m}_{kind}.png" for m in metric_names for kind in ("per_frame", "bar")]


def output_files(metric_names: list[str]) -> list[str]:
    """Every file the report writes, relative to the output folder."""
    return ["metrics.json", "table.md", *plot_names(metric_names)]


def check_output_folder(out: str | os.PathLike, metric_names: list[str] = list(METRICS)) -> Path:
    """Refuse an output folder we may not write into (before any work is done); creates nothing.

    Allowed: a folder that does not exist yet (its nearest existing parent must be a writable
    folder), an empty folder, or an earlier eval's output. Raises UserInputError naming the path.
    """
    out = Path(out)
    if str(out) == "":
        raise UserInputError("--out '': give a folder")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder")
    check_writable_destination(out, folder=True)
    if out.is_dir():
        previous = _previous_files(out)
        for rel in output_files(metric_names):
            if (out / rel).exists() and rel not in previous:
                raise UserInputError(f"--out {out}: {out / rel} exists and was not written by scenedreamer eval; "
                                     f"choose another folder")
    return out


def _previous_files(out: Path) -> set[str]:
    """Files an earlier eval wrote into ``out`` (from its metrics.json), else the empty set."""
    try:
        data = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict) or data.get("written_by") != WRITTEN_BY:
        return set()
    files = data.get("files", [])
    return {f for f in files if isinstance(f, str)} | {"metrics.json"}


def _fmt(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "relative":
        return f"{100 * value:.2f} %"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"


def markdown_table(evaluations: list[RunEvaluation]) -> str:
    """A markdown table, one row per metric and one column per run, with the direction of each
    metric, the runs' settings, and a note when the runs follow different trajectories."""
    names = [e.name for e in evaluations]
    lines = ["| metric | better | over | " + " | ".join(names) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    lines.append("| representation | | | " + " | ".join(e.representation for e in evaluations) + " |")
    lines.append("| path frames | | | " + " | ".join(f"{e.frames} at {e.resolution[0]}x{e.resolution[1]}"
                                                     for e in evaluations) + " |")
    lines.append("| switches off | | | " + " | ".join(", ".join(e.switches_off) or "none (full method)"
                                                      for e in evaluations) + " |")
    for metric, (direction, unit, over) in METRICS.items():
        cells = []
        for e in evaluations:
            m = e.metrics[metric]
            if m.available:
                cells.append(_fmt(m.value, unit) + (" (partial)" if m.note else ""))
            else:
                cells.append(m.reason if m.reason == NO_REVISIT else "unavailable")
        lines.append(f"| {metric} | {direction} | {over} | " + " | ".join(cells) + " |")
    notes = []
    if len({e.trajectory_sha256 for e in evaluations}) > 1:
        notes.append("**The runs follow different trajectories**: path metrics are not measured at the same "
                     "cameras; compare them with care.")
    if len({e.prompt for e in evaluations}) > 1:
        notes.append("The runs have different prompts.")
    reasons = sorted({f"{metric}: {e.metrics[metric].reason}" for e in evaluations for metric in METRICS
                      if not e.metrics[metric].available})
    if reasons:
        notes.append("Unavailable: " + "; ".join(reasons) + ".")
    partial = sorted({f"{e.name} {metric}: {e.metrics[metric].note}" for e in evaluations for metric in METRICS
                      if e.metrics[metric].available and e.metrics[metric].note})
    if partial:
        notes.append("Partial: " + "; ".join(partial) + ".")
    notes.append("How to read: " + "; ".join(READING_SCALES.values()) + ".")
    prompts = "; ".join(f"{e.name}: \"{e.prompt}\"" for e in evaluations)
    notes.append(f"Prompts: {prompts}.")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def _save_figure(fig, path: Path) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def write_plots(evaluations: list[RunEvaluation], out: Path) -> list[str]:
    """One per-frame curve and one bar chart per metric (PLOT_SIZE_PX each); returns the files."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    written = []
    (out / "plots").mkdir(parents=True, exist_ok=True)
    width, height = PLOT_SIZE_PX[0] / 100, PLOT_SIZE_PX[1] / 100
    for metric, (direction, unit, over) in METRICS.items():
        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot()
        for e in evaluations:
            m = e.metrics[metric]
            if m.available:
                ax.plot(range(len(m.per_frame)), m.per_frame, marker=".", label=e.name)
        ax.set_xlabel(over)
        ax.set_ylabel(f"{metric} ({unit}, {direction} is better)")
        ax.set_title(f"{metric} per frame")
        if any(e.metrics[metric].available for e in evaluations):
            ax.legend(loc="best", fontsize="small")
        _label_unavailable(ax, metric, evaluations)
        fig.tight_layout()
        _save_figure(fig, out / f"plots/{metric}_per_frame.png")

        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot()
        values = [e.metrics[metric].value if e.metrics[metric].available else 0.0 for e in evaluations]
        bars = ax.bar([e.name for e in evaluations], values)
        for bar, e in zip(bars, evaluations):
            label = _fmt(e.metrics[metric].value, unit) if e.metrics[metric].available else "unavailable"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize="small")
        ax.set_ylabel(f"{metric} ({unit})")
        ax.set_title(f"{metric} ({direction} is better, mean over {over})")
        ax.tick_params(axis="x", labelrotation=20)
        _label_unavailable(ax, metric, evaluations)
        fig.tight_layout()
        _save_figure(fig, out / f"plots/{metric}_bar.png")
        written += [f"plots/{metric}_per_frame.png", f"plots/{metric}_bar.png"]
    return written


def _label_unavailable(ax, metric: str, evaluations: list[RunEvaluation]) -> None:
    """Write on the panel which runs lack this metric and why (never an unexplained empty plot)."""
    missing = [f"{e.name}: {e.metrics[metric].reason}" for e in evaluations if not e.metrics[metric].available]
    if not missing:
        return
    whole = len(missing) == len(evaluations)
    ax.text(0.5, 0.5 if whole else 0.95, _wrap(("unavailable - " if whole else "unavailable for ") + "; ".join(missing)),
            ha="center", va="center" if whole else "top", transform=ax.transAxes, fontsize="small",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="grey"))


def write_report(evaluations: list[RunEvaluation], out: str | os.PathLike, settings: dict,
                 version: str) -> Path:
    """Write metrics.json, table.md and plots/ into ``out`` (checked with check_output_folder
    first). Returns the folder. metrics.json is written last, so a killed report never looks
    finished."""
    out = check_output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    files = write_plots(evaluations, out)
    atomic_write_text(out / "table.md", markdown_table(evaluations))
    same = len({e.trajectory_sha256 for e in evaluations}) == 1
    atomic_write_json(out / "metrics.json", {
        "written_by": WRITTEN_BY, "scenedreamer_version": version, "settings": settings,
        "same_trajectory": same, "runs": [e.to_json() for e in evaluations],
        "files": ["metrics.json", "table.md", *files]})
    return out
