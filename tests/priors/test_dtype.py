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


def test_config_json_records_the_resolved_dtype(tmp_path, monkeypatch):
    """A run of stand-ins loads no network: "auto" is fp32 (the representation's dtype, as the dry
    run shows) whatever the CPU, so its config.json does not depend on the machine: made where
    the CPU has fast bf16, it resumes where it has not, and back (a run of the previous release
    made on a CPU without bf16 failed to resume on one with it: "priors.dtype: 'fp32' -> 'bf16'")."""
    from scenedreamer.priors import loading
    from tiny_models import tiny_run_args

    out = tmp_path / "run"
    args = ["generate", "a forest", "--device", "cpu", "--out", str(out), "--quiet", *tiny_run_args("32x32", 2),
            "--set", "export.video=false"]
    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda *a: True)
    assert main([*args, "--dtype", "auto"]) == 0
    assert json.loads((out / "config.json").read_text())["priors"]["dtype"] == "fp32"
    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda *a: False)
    assert main([*args, "--resume"]) == 0


def test_a_resume_keeps_the_dtype_the_run_was_made_with(tmp_path, capsys):
    """"auto" on a resume is the run's own dtype (config.json), not this machine's choice; an
    explicit --dtype is compared as given."""
    from tiny_models import tiny_run_args

    out = tmp_path / "run"
    args = ["generate", "a forest", "--device", "cpu", "--out", str(out), "--quiet", *tiny_run_args("32x32", 2),
            "--set", "export.video=false"]
    # made in bf16 (kept as asked, though no network runs in it)
    assert main([*args, "--dtype", "bf16", "--set", "progressive.fit_steps_per_view=0"]) == 0
    assert json.loads((out / "config.json").read_text())["priors"]["dtype"] == "bf16"
    assert main([*args, "--set", "progressive.fit_steps_per_view=0", "--resume", "--dtype", "fp32"]) == 2
    assert "priors.dtype: 'bf16' -> 'fp32'" in capsys.readouterr().err
    assert main([*args, "--set", "progressive.fit_steps_per_view=0", "--resume"]) == 0


def test_for_resume_keeps_the_runs_dtype(tmp_path):
    import dataclasses

    from scenedreamer.config_io import save_config
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.run_folder import RunFolder

    config = preset_config("offline")
    auto = dataclasses.replace(config, priors=dataclasses.replace(config.priors, dtype="auto"))
    folder = RunFolder(tmp_path)
    assert folder.for_resume(auto) is auto                     # no config.json: unchanged
    save_config(folder.config_path, dataclasses.replace(config, priors=dataclasses.replace(config.priors, dtype="bf16")))
    assert folder.for_resume(auto).priors.dtype == "bf16"
    fp32 = dataclasses.replace(config, priors=dataclasses.replace(config.priors, dtype="fp32"))
    assert folder.for_resume(fp32).priors.dtype == "fp32"     # an explicit dtype is kept
    folder.config_path.write_text("{ not json")
    assert folder.for_resume(auto) is auto                     # prepare() reports the bad file


def test_dry_run_counts_each_network_once_in_the_dtype_that_runs(tmp_path):
    """The plan's weight estimate against the tiny models actually loaded (issue 12: within
    20 %; the parameter count is exact, so only buffers can differ)."""
    from dataclasses import replace

    from tiny_models import tiny_depth_model, tiny_sd_pipeline

    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import loaded_networks, network_parameters
    from scenedreamer.priors.loading import ModelLoadConfig, load_sd_pipeline

    sd, inpaint, zoe = tmp_path / "sd", tmp_path / "sd-inpaint", tmp_path / "zoe"
    tiny_sd_pipeline(sd)
    tiny_sd_pipeline(inpaint, inpainting=True)
    tiny_depth_model("zoedepth", zoe)
    base = preset_config("sd15")
    config = replace(base, priors=replace(base.priors, text_to_image=str(sd), refiner=str(sd), inpainter=str(inpaint),
                                          depth=str(zoe), first_view_depth=str(zoe), dtype="bf16"))
    assert loaded_networks(config) == [str(sd), str(inpaint), str(zoe)]      # refiner and first depth shared
    pipe = load_sd_pipeline(sd, ModelLoadConfig(dtype="bf16"))
    loaded = sum(p.numel() for m in (pipe.unet, pipe.vae, pipe.text_encoder) for p in m.parameters())
    estimate = network_parameters(str(sd), config)
    assert abs(estimate - loaded) <= 0.2 * loaded
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.bfloat16}


def test_network_memory_counts_the_loading_copy_only_when_converting(tmp_path):
    """The dry run's RAM figure: weights in the running dtype, plus the largest component's file
    copy while loading when the files are fp32 and the run is bf16 (none for fp32 runs), plus
    activations scaled with the resolution and the runtime; the larger phase counts."""
    from dataclasses import replace

    from tiny_models import tiny_sd_pipeline

    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import ACTIVATION_BYTES_AT_512, RUNTIME_BYTES, network_memory
    from scenedreamer.priors.loading import largest_component_sizes, safetensors_sizes

    sd = tmp_path / "sd"
    tiny_sd_pipeline(sd)
    unet = next((sd / "unet").glob("*.safetensors"))
    numel, nbytes = safetensors_sizes(unet)
    assert nbytes == 4 * numel                                     # the tiny files are fp32
    assert largest_component_sizes(sd) == max(
        (safetensors_sizes(next((sd / c).glob("*.safetensors"))) for c in ("unet", "vae", "text_encoder")),
        key=lambda t: t[1])
    base = preset_config("sd15")
    priors = replace(base.priors, text_to_image=str(sd), refiner=str(sd), inpainter="classical",
                     depth="oracle", first_view_depth="oracle-exact")
    bf16 = network_memory(replace(base, width=256, height=256, priors=replace(priors, dtype="bf16")))
    fp32 = network_memory(replace(base, width=256, height=256, priors=replace(priors, dtype="fp32")))
    assert fp32.weights == 2 * bf16.weights and fp32.load_spike == 0
    # the UNet and VAE load tensor by tensor (LEAN_COMPONENTS): the text encoder's file is the copy
    assert bf16.load_spike == largest_component_sizes(sd, skip=("unet", "vae"))[1]
    assert bf16.load_spike == safetensors_sizes(next((sd / "text_encoder").glob("*.safetensors")))[1]
    assert bf16.activations == ACTIVATION_BYTES_AT_512 // 4 and bf16.runtime == RUNTIME_BYTES
    assert bf16.peak == max(bf16.load_spike, bf16.activations) + bf16.weights + RUNTIME_BYTES
    offline = network_memory(preset_config("offline"))
    assert offline.peak == 0                                        # no network, nothing counted
