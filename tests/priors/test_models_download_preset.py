"""The way to the real method in one step (issue 21 item 4): `models download --preset` fetches
every model a generate preset needs; a run lacking weights names every missing model at once,
before any folder exists, and says "offline" only when the environment set it."""

from __future__ import annotations

import pytest

from scenedreamer.cli import main
from scenedreamer.priors import loading


@pytest.fixture
def no_hub_env(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def test_download_preset_fetches_every_model_the_preset_loads(monkeypatch, tmp_path, capsys):
    fetched = []

    def fake_download(ref, cache_dir=None, revision=None, endpoint=None, variant=None):
        fetched.append((ref, cache_dir))
        return tmp_path / ref
    monkeypatch.setattr(loading, "download_model", fake_download)
    assert main(["models", "download", "--preset", "sd2", "--cache-dir", str(tmp_path)]) == 0
    assert fetched == [("sd2", str(tmp_path)), ("sd2-inpaint", str(tmp_path)), ("zoedepth", str(tmp_path))]
    fetched.clear()
    assert main(["models", "download", "--preset", "sd15", "--cache-dir", str(tmp_path)]) == 0
    assert [name for name, _ in fetched][0] == "sd15" and len(fetched) >= 2
    capsys.readouterr()
    assert main(["models", "download", "--preset", "offline"]) == 0
    assert "needs no downloaded model" in capsys.readouterr().err


def test_download_unknown_preset_lists_the_valid_ones(capsys):
    assert main(["models", "download", "--preset", "sd15-fast-nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sd15" in err[0] and "sd2" in err[0] and "offline" in err[0]


def test_download_without_names_or_preset_is_one_line(capsys):
    assert main(["models", "download"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_run_without_weights_names_every_missing_model_before_writing(no_hub_env, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["generate", "a kitchen", "--preset", "sd2", "--out", str(out), "--quiet",
                 "--set", f"priors.cache_dir=\"{tmp_path / 'cache'}\""])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    for name in ("sd2", "sd2-inpaint", "zoedepth"):
        assert name in err
    assert "models download --preset sd2" in err and "offline" not in err
    assert not out.exists()


def test_offline_is_named_only_when_the_environment_sets_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["generate", "a kitchen", "--preset", "sd15", "--out", str(tmp_path / "run"), "--quiet",
                 "--set", f"priors.cache_dir=\"{tmp_path / 'cache'}\""]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_dry_run_lists_weights_device_dtype_and_time(no_hub_env, tmp_path, capsys):
    assert main(["generate", "a kitchen", "--preset", "sd2", "--dry-run", "--device", "cpu", "--dtype", "fp32",
                 "--set", f"priors.cache_dir=\"{tmp_path / 'cache'}\""]) == 0
    out = capsys.readouterr().out
    assert "sd2: MISSING" in out and "zoedepth: MISSING" in out and "models download --preset sd2" in out
    assert "runs on        cpu, fp32" in out and "expected time  ~" in out
    assert not (tmp_path / "cache").exists()


def test_expected_time_follows_the_work_the_pixels_and_the_threads():
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import SECONDS_PER_UNIT, expected_seconds, work_units

    config = preset_config("offline")
    base = expected_seconds(config, 12, 2, slowdown=1.0)
    # the reference: the make-run scene on 2 threads of the reference box is its units at the measured rate
    assert base == pytest.approx(work_units(config, 12).total(12) * SECONDS_PER_UNIT)
    import dataclasses
    assert expected_seconds(dataclasses.replace(config, width=512, height=512), 12, 2, 1.0) == pytest.approx(4 * base)
    assert expected_seconds(config, 12, 1, 1.0) == pytest.approx(2 * base)
    assert expected_seconds(config, 24, 2, 1.0) > base
    # a machine whose cores take 3x as long as the reference's expects 3x the time
    assert expected_seconds(config, 12, 2, slowdown=3.0) == pytest.approx(3 * base)


def test_the_dry_run_states_the_calibrated_time(monkeypatch, capsys):
    from scenedreamer import machine_speed
    from scenedreamer.cli import main
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import expected_seconds

    from scenedreamer.threads import current_threads

    def dry_run_line(slowdown: float) -> str:
        # the automatic thread count (the test session's OMP_NUM_THREADS): --threads would reset
        # this test worker's own torch threads
        monkeypatch.setattr(machine_speed, "slowdown_against_reference", lambda: slowdown)
        assert main(["generate", "a forest lake", "--preset", "offline", "--dry-run"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if "expected time" in x)
        assert f"at {1 / slowdown:.2f}x the speed of the reference box" in line
        return line

    slow = dry_run_line(4.0)
    threads = current_threads()
    seconds = expected_seconds(preset_config("offline"), 12, threads, slowdown=4.0)
    assert f"~{seconds / 60:.0f} min on {threads} CPU thread" in slow
    assert f"~{seconds / 4 / 60:.0f} min on {threads} CPU thread" in dry_run_line(1.0)
