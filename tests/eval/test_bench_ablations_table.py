"""benchmarks/bench_ablations.py's table: a mean over the prompts, or over those that have the
figure with how many (SfM registers the frames of some prompts only), or why it is absent."""

from __future__ import annotations

from benchmarks.bench_ablations import COLUMNS, NO_REVISIT, PROMPTS, VARIANTS, table


def _results(camera_control: list[float | None]) -> dict:
    prompts = {}
    for i, prompt in enumerate(PROMPTS):
        metrics = {m: {"value": 1.0} for m in COLUMNS}
        metrics["revisit_psnr"] = {"value": None, "reason": NO_REVISIT}
        metrics["clip_score"] = {"value": None, "reason": "no CLIP weights"}
        metrics["ws_camera_control"] = ({"value": camera_control[i]} if camera_control[i] is not None
                                        else {"value": None, "reason": "0 of 20 frames registered"})
        prompts[prompt] = {"runs": {v: {"metrics": metrics, "generate_s": 10.0} for v in VARIANTS}}
    return {"prompts": prompts}


def test_partial_figures_say_over_how_many_prompts():
    row = table(_results([90.0, None, 80.0])).splitlines()[2].split(" | ")
    cells = dict(zip(["ablation", *COLUMNS.values()], row))
    assert cells[COLUMNS["ws_camera_control"]] == "85.00 (2 of 3)"
    assert cells[COLUMNS["clip_score"]] == "n/a"
    assert cells[COLUMNS["revisit_psnr"]] == NO_REVISIT
    assert cells[COLUMNS["gt_psnr"]] == "1.00"


def test_a_figure_every_prompt_has_is_a_plain_mean():
    row = table(_results([90.0, 70.0, 80.0])).splitlines()[2].split(" | ")
    assert dict(zip(["ablation", *COLUMNS.values()], row))[COLUMNS["ws_camera_control"]] == "80.00"
