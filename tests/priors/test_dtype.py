"""dtype honesty (issue 12): "auto" resolves to what runs, fp16 on the CPU is refused up front,
and a run's config.json records the resolved dtype."""

import json

import pytest
import torch

from scenedreamer.cli import main
from scenedreamer.errors import UserInputError
from scenedreamer.priors.loading import ModelLoadConfig, cpu_has_fast_bf16, resolve_dtype


def test_cpuinfo_flags_decide_fast_bf16(tmp_path):
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_fast_bf16(with_bf16) and not cpu_has_fast_bf16(without)
    assert not cpu_has_fast_bf16(tmp_path / "missing")


def test_auto_resolves_per_device(monkeypatch):
    import scenedreamer.priors.loading as loading

    assert resolve_dtype("auto", "cuda") == "fp16"
    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda *a: True)
    assert resolve_dtype("auto", "cpu") == "bf16"
    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda *a: False)
    assert resolve_dtype("auto", "cpu") == "fp32"
    assert resolve_dtype("bf16", "cpu") == "bf16" and resolve_dtype("fp16", "cuda") == "fp16"


def test_fp16_on_cpu_is_refused_by_the_api_and_the_cli(capsys, tmp_path):
    with pytest.raises(UserInputError, match="fp16 on the CPU"):
        resolve_dtype("fp16", "cpu")
    with pytest.raises(UserInputError, match="fp16 on the CPU"):
        ModelLoadConfig(device="cpu", dtype="fp16")
    out = tmp_path / "run"
    assert main(["generate", "x", "--device", "cpu", "--dtype", "fp16", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fp16 on the CPU" in err
    assert not out.exists()                        # refused before the folder is created


def test_config_json_records_the_resolved_dtype(tmp_path):
    from tiny_models import tiny_run_args

    out = tmp_path / "run"
    assert main(["generate", "a forest", "--device", "cpu", "--dtype", "auto", "--out", str(out), "--quiet",
                 *tiny_run_args("32x32", 2), "--set", "export.video=false"]) == 0
    saved = json.loads((out / "config.json").read_text())["priors"]["dtype"]
    assert saved == resolve_dtype("auto", torch.device("cpu")) and saved != "auto"
    # resuming with the same "auto" matches the recorded, resolved dtype
    assert main(["generate", "a forest", "--device", "cpu", "--out", str(out), "--quiet", "--resume",
                 *tiny_run_args("32x32", 2), "--set", "export.video=false"]) == 0
