"""Issue 20 item 1: component kinds are data. A representation kind and a prior name that the
program has never heard of are registered here (one table entry each + this module) and a run
goes end to end with them: dry-run, generate, interruption, resume, scene.ply, reload.
docs/design.md "Adding a component" walks through exactly these steps."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from scenedreamer.errors import UserInputError
from scenedreamer.geometry.cameras import Cameras, camera_rays
from scenedreamer.pipeline import prior_kinds
from scenedreamer.pipeline.prior_kinds import PriorKind, register_prior_kind
from scenedreamer.representation import registry
from scenedreamer.representation.base import RenderOutput, SceneRepresentation
from scenedreamer.representation.kind import RepresentationKind, bake_seed, baked_size, no_growth

# ---- a representation kind: a textured sphere around the world origin ------------------------


@dataclass(frozen=True)
class DomeConfig:
    """A sphere of ``radius`` (scene units) around the origin, its colour a lat-long texture."""

    radius: float = 12.0
    """larger than every camera's distance from the origin, so every ray hits it"""
    texture: int = 8
    """texture rows (columns: twice as many)"""


class Dome(SceneRepresentation):
    """Everything is seen on the inside of one sphere: colour from a learnable texture, z-depth
    of the ray's hit, fully opaque, no features."""

    kind = "test_dome"
    config_class = DomeConfig

    def __init__(self, config: DomeConfig, device=None):
        super().__init__()
        self.config = config
        self.texture = nn.Parameter(torch.zeros(1, 3, config.texture, 2 * config.texture, device=device))

    @classmethod
    def from_config(cls, config: DomeConfig, device=None) -> "Dome":
        return cls(config, device)

    def render(self, cameras: Cameras, background=None, depth_hint=None) -> RenderOutput:
        origins, dirs = camera_rays(cameras.to(device=self.texture.device))       # dirs: camera z = 1
        a = (dirs * dirs).sum(-1)
        b = 2 * (origins * dirs).sum(-1)
        c = (origins * origins).sum(-1) - self.config.radius ** 2
        t = (-b + (b * b - 4 * a * c).clamp_min(0).sqrt()) / (2 * a)              # = z-depth of the hit
        hit = (origins + t[..., None] * dirs) / self.config.radius
        grid = torch.stack([torch.atan2(hit[..., 0], hit[..., 2]) / torch.pi,
                            torch.asin(hit[..., 1].clamp(-1, 1)) / (torch.pi / 2)], dim=-1)
        B = grid.shape[0]
        rgb = torch.sigmoid(nn.functional.grid_sample(self.texture.expand(B, -1, -1, -1), grid,
                                                      align_corners=False)).permute(0, 2, 3, 1)
        return RenderOutput(rgb=rgb, depth=t, opacity=torch.ones_like(t), features=t.new_zeros(*t.shape, 0))


DOME = RepresentationKind(
    name=Dome.kind, cli_name="dome", cls=Dome, config_class=DomeConfig, default_config=DomeConfig,
    describe=lambda c: f"test dome (radius {c.radius})",
    create=lambda config, views, device, centres: Dome(config, device),
    grow=no_growth,
    size=lambda config, shape: baked_size(0, 4 * 3 * 2 * config.texture ** 2, shape),
    seed_gaussians=bake_seed, export_method="baked from renders of the test dome")


# ---- a prior name for one role: an inpainter that paints holes grey ---------------------------

class GreyInpainter:
    label = "grey fill (test stand-in)"

    def inpaint(self, image, inpaint, prompt, generator, camera=None):
        return torch.where(inpaint[..., None], torch.full_like(image, 0.5), image)


GREY = PriorKind("test-grey", "grey fill (test stand-in)", {"inpainter": lambda ctx, name: GreyInpainter()})


@pytest.fixture
def kinds(monkeypatch):
    """The two tables with the test's kinds registered (the real tables are restored after)."""
    monkeypatch.setattr(registry, "REPRESENTATION_KINDS", dict(registry.REPRESENTATION_KINDS))
    monkeypatch.setattr(prior_kinds, "PRIOR_KINDS", dict(prior_kinds.PRIOR_KINDS))
    registry.register_representation_kind(DOME)
    register_prior_kind(GREY)


ARGS = ["a dome", "--resolution", "32x32", "--frames", "3", "--quiet", "--representation", "dome",
        "--set", "priors.inpainter=test-grey", "--set", "representation.texture=4",
        "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=2",
        "--set", "init.neighbour_yaws_deg=[-15]", "--set", "fit.patches_per_step=2", "--set", "fit.patch_size=16",
        "--set", "export.video_frames_per_view=1", "--set", "export.bake.stride=4",
        "--set", "export.distill.steps=4", "--set", "export.nerfstudio=false"]


def _config(*extra: str):
    from scenedreamer.cli import build_parser
    from scenedreamer.cli.generate import build_config

    return build_config(build_parser().parse_args(["generate", *ARGS, *extra]))


class Interrupt(KeyboardInterrupt):
    pass


def test_a_registered_representation_and_prior_run_end_to_end(kinds, tmp_path, capsys):
    from scenedreamer.cli import main
    from scenedreamer.config_io import load_config
    from scenedreamer.pipeline.config import GenerateConfig
    from scenedreamer.pipeline.run import run_generation
    from scenedreamer.representation.checkpoint import load_checkpoint

    config = _config()
    assert isinstance(config.representation, DomeConfig) and config.representation.texture == 4

    # --dry-run describes both through the tables
    assert main(["generate", *ARGS, "--dry-run", "--out", str(tmp_path / "plan")]) == 0
    plan = capsys.readouterr().out
    assert "test dome (radius 12.0)" in plan and "grey fill (test stand-in)" in plan

    # a run interrupted after step 1 resumes: config.json names DomeConfig, step_0001 holds a Dome
    out = tmp_path / "run"

    def stop_after_step_1(event):
        if event.stage == "view" and event.step == 2:
            raise Interrupt()

    with pytest.raises(Interrupt):
        run_generation(config, out, on_event=stop_after_step_1)
    saved = json.loads((out / "config.json").read_text())
    assert saved["representation"]["type"] == "DomeConfig"
    assert load_config(GenerateConfig, out / "config.json").representation == config.representation
    events = []
    run_generation(config, out, resume=True, on_event=events.append)
    assert [e.step for e in events if e.stage == "view"] == [3]          # only the last step ran again
    assert "inpainter: grey fill (test stand-in)" in (out / "events.jsonl").read_text()

    ckpt = load_checkpoint(out / "scene.pt")
    assert isinstance(ckpt.representation, Dome) and ckpt.kind == "test_dome"
    scene = json.loads((out / "scene.json").read_text())
    assert scene["representation"] == "test_dome" and scene["method"] == DOME.export_method
    assert scene["gaussians"] > 0 and (out / "scene.ply").stat().st_size > 0 and (out / "video.mp4").exists()
    # scene.json also says which priors made the views, and how the offline stand-in read the prompt
    assert scene["priors"]["inpainter"] == "grey fill (test stand-in)"
    from scenedreamer.priors.procedural.vocabulary import parse_prompt

    assert scene["prompt_reading"] == parse_prompt("a dome").as_record() == saved["prompt_reading"]
    assert [w["word"] for w in scene["prompt_reading"]["not_honoured"]] == ["dome"]

    # the disk estimate reads the kind's size hook: the parameters of a 4-row texture
    from scenedreamer.pipeline.disk_budget import estimate_run

    assert estimate_run(config, 3).parameters == 4 * 3 * 2 * 4 ** 2


def test_the_tables_refuse_a_name_in_a_role_it_cannot_play(kinds):
    from scenedreamer.pipeline.priors_factory import build_priors

    with pytest.raises(UserInputError, match=r"priors.depth: 'test-grey' is not a depth estimator; use "
                                             r"\"procedural\", \"oracle\", \"oracle-exact\", \"classical\""):
        build_priors(_config("--set", "priors.depth=test-grey"))
    with pytest.raises(UserInputError, match="priors.first_view_depth: 'classical' .*cannot give the first view"):
        build_priors(_config("--set", "priors.first_view_depth=classical"))
    with pytest.raises(UserInputError, match="priors.text_to_image: 'oracle' is not a first-view generator"):
        build_priors(_config("--set", "priors.text_to_image=oracle"))
    with pytest.raises(UserInputError, match=r"--representation 'voxels': unknown \(known: nerf, gaussians, dome\)"):
        _config("--representation", "voxels")
    with pytest.raises(ValueError, match="clashes"):
        registry.register_representation_kind(RepresentationKind(**{**DOME.__dict__, "export_method": "x"}))


def test_old_spellings_still_load():
    """config.json of earlier runs spells the representation by its config class name."""
    from scenedreamer.config_io import from_json_dict, to_json_dict
    from scenedreamer.pipeline.config import GenerateConfig, preset_config
    from scenedreamer.representation.gaussians import GaussianConfig
    from scenedreamer.representation.registry import kind_of_config
    from scenedreamer.representation.triplane import TriplaneConfig

    for name, cls, kind in (("nerf", TriplaneConfig, "triplane_nerf"), ("gaussians", GaussianConfig, "gaussians")):
        config = preset_config("offline", name)
        data = to_json_dict(config)
        assert data["representation"]["type"] == cls.__name__
        assert from_json_dict(GenerateConfig, data) == config
        assert kind_of_config(config.representation).name == kind
    bad = {**to_json_dict(preset_config("offline")), "representation": {"type": "DomeConfig"}}
    with pytest.raises(UserInputError, match="unknown type \"DomeConfig\""):      # not registered here
        from_json_dict(GenerateConfig, bad)


def test_dry_run_and_models_read_the_prior_table(tmp_path, capsys):
    from scenedreamer.cli import main

    # --dry-run refuses a stand-in in a role it cannot play, as the run would (one line, exit 2)
    assert main(["generate", "a forest", "--set", "priors.depth=offline", "--dry-run",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "priors.depth: 'offline' is not a depth estimator" in err
    assert not (tmp_path / "run").exists()
    # models check / download know the built-in names: nothing to look for or fetch
    assert main(["models", "check", "oracle-exact"]) == 0
    assert "oracle-exact: built in (procedural world exact metric depth" in capsys.readouterr().out
    assert main(["models", "download", "classical"]) == 2
    assert "'classical' is a built-in stand-in" in capsys.readouterr().err
