"""Each ablation switch changes what it names and nothing else (issue 8 item 11, issue 10).

The runs are compared by their support views after the first trajectory step: a switch that
changed nothing would give views bit-identical to the full method, and two switches implemented
by the same means (as --no-consistency and --no-refinement once were offline) would give views
identical to each other.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.support.database import SupportDatabase

REDUCED = ["--resolution", "32x32", "--frames", "3", "--quiet", "--representation", "gaussians",
           "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=4",
           "--set", "init.neighbour_yaws_deg=[-15]", "--set", "export.video=false", "--set", "export.ply=false",
           "--set", "export.nerfstudio=false"]


def progressive_views(root) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    with SupportDatabase.open(root / "support", create=False) as db:
        views = [db.get(v) for v in db.ids()]
    return [(v.rgb, v.depth, v.valid) for v in views if v.step >= 1]


def identical(a, b) -> bool:
    return all(torch.equal(x, y) for va, vb in zip(a, b) for x, y in zip(va, vb))


def run_variants(tmp_path, prompt, base, variants):
    views = {}
    for name, flags in variants.items():
        out = tmp_path / name
        assert main(["generate", prompt, "--out", str(out), *base, *flags]) == 0
        views[name] = progressive_views(out)
        assert len(views[name]) == 2
    return views


@pytest.mark.slow
def test_offline_switches_each_change_the_scene_differently(tmp_path):
    views = run_variants(tmp_path, "a forest lake", REDUCED, {
        "full": [], "no-refinement": ["--no-refinement"], "no-consistency": ["--no-consistency"],
        "no-replay": ["--no-replay"]})
    for a, b in itertools.combinations(views, 2):
        assert not identical(views[a], views[b]), f"{a} and {b} wrote the same support views"


def test_no_adapter_with_the_offline_refiner_is_refused(tmp_path, capsys):
    assert main(["generate", "a forest", "--no-adapter", "--out", str(tmp_path / "run"), *REDUCED]) == 2
    assert "offline refiner has no adapter" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_diffusion_switches_each_change_the_scene_differently(tmp_path):
    from tiny_models import tiny_depth_model, tiny_sd_pipeline

    m = tmp_path / "models"
    tiny_sd_pipeline(m / "sd", inpainting=False)
    tiny_sd_pipeline(m / "sd-inpaint", inpainting=True)
    tiny_depth_model("zoedepth", m / "zoe")
    base = [*REDUCED, "--preset", "sd15", "--resolution", "64x64",
            "--set", f"priors.text_to_image=\"{m / 'sd'}\"", "--set", f"priors.refiner=\"{m / 'sd'}\"",
            "--set", f"priors.inpainter=\"{m / 'sd-inpaint'}\"", "--set", f"priors.depth=\"{m / 'zoe'}\"",
            "--set", "priors.diffusion.num_inference_steps=2", "--set", "refiner.num_inference_steps=2",
            "--set", "refiner.adapter_train_steps_per_view=1", "--set", "progressive.adapter_views=1"]
    views = run_variants(tmp_path, "a kitchen", base, {
        "full": [], "no-adapter": ["--no-adapter"], "no-consistency": ["--no-consistency"],
        "no-refinement": ["--no-refinement"]})
    for a, b in itertools.combinations(views, 2):
        assert not identical(views[a], views[b]), f"{a} and {b} wrote the same support views"
