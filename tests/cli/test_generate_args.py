import pytest

from scenedreamer.cli import main
from scenedreamer.cli.generate import build_config, parse_resolution
from scenedreamer.cli import build_parser
from scenedreamer.errors import UserInputError


def _args(*argv):
    return build_parser().parse_args(["generate", *argv])


def test_resolution_parsing():
    assert parse_resolution("320x240") == (320, 240)
    for bad in ("320", "0x10", "axb", "-5x5"):
        with pytest.raises(UserInputError, match="--resolution"):
            parse_resolution(bad)


def test_options_reach_the_config():
    cfg = build_config(_args("a desert", "--seed", "5", "--resolution", "96x64", "--trajectory", "orbit",
                             "--frames", "3", "--no-replay", "--representation", "gaussians",
                             "--set", "fit.lr_decay_steps=7" if False else "progressive.fit_steps_per_view=3"))
    assert cfg.prompt == "a desert" and cfg.seed == 5 and (cfg.width, cfg.height) == (96, 64)
    assert cfg.trajectory.preset == "orbit" and cfg.trajectory.frames == 3
    assert cfg.ablation.replay is False and cfg.ablation.refinement is True
    assert type(cfg.representation).__name__ == "GaussianConfig" and cfg.representation.init_stride == 2
    assert cfg.progressive.fit_steps_per_view == 3


def test_set_rejects_unknown_fields_and_bad_types():
    with pytest.raises(UserInputError, match="no field"):
        build_config(_args("x", "--set", "progressive.nope=1"))
    with pytest.raises(UserInputError, match="progressive.fit_steps_per_view"):
        build_config(_args("x", "--set", "progressive.fit_steps_per_view=\"many\""))


def test_diffusion_preset_rounds_resolution(capsys):
    cfg = build_config(_args("x", "--preset", "sd2", "--resolution", "250x130"))
    assert (cfg.width, cfg.height) == (248, 128)
    assert "rounded" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["generate", "   "], "prompt is empty"),
    (["generate", "x", "--resolution", "0x5"], "--resolution"),
    (["generate", "x", "--preset", "bogus"], "unknown preset"),
])
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys, tmp_path):
    code = main(argv + ["--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_dry_run_prints_plan(capsys, tmp_path):
    assert main(["generate", "a forest", "--dry-run", "--frames", "5", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "5 cameras" in out and "procedural world" in out and "expected memory" in out
    assert not (tmp_path / "r").exists()    # a dry run writes nothing


def test_file_system_failures_are_one_line_exit_1(tmp_path, capsys, monkeypatch):
    import errno

    import scenedreamer.cli.generate as generate_cli

    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x.npy"))

    monkeypatch.setattr(generate_cli, "run", full_disk)
    code = main(["generate", "a forest", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("scenedreamer generate: failed: disk full") and len(err.splitlines()) == 1


def test_list_settings_prints_every_reachable_field_with_its_doc(capsys):
    from scenedreamer.config_io import settings
    from scenedreamer.pipeline.config import GenerateConfig

    assert main(["generate", "--list-settings", "--representation", "nerf"]) == 0   # no prompt needed
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split(" = ", 1)[0]: line for line in lines}
    # every leaf of the resolved config is listed, documented, and --set takes that key back
    expected = [key for key, _, _ in settings(build_config(_args("x", "--representation", "nerf")))]
    assert sorted(listed) == sorted(expected) and len(expected) > 100
    assert all("  # " in line for line in lines), [line for line in lines if "  # " not in line][:3]
    for key in ("support.replay_recent", "representation.bounds_margin", "offline_refiner.consistency_weight"):
        assert key in listed
    cfg = build_config(_args("x", "--representation", "nerf", "--set", "support.replay_recent=7",
                             "--set", "representation.bounds_margin=2.5"))
    assert cfg.support.replay_recent == 7 and cfg.representation.bounds_margin == 2.5
    # one place per default: the run's component configs are the components' own defaults
    from scenedreamer.priors.offline_refiner import OfflineRefinerConfig
    from scenedreamer.support.config import SupportConfig

    assert GenerateConfig().offline_refiner == OfflineRefinerConfig()
    assert GenerateConfig().support == SupportConfig()


def test_generate_without_a_prompt_is_one_line(capsys):
    assert main(["generate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PROMPT" in err
