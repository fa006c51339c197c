"""The one weight-loading module: sources, offline mode, missing weights, the tiny-model round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from scenedreamer.errors import MissingWeightsError, RunFailedError, UserInputError
from scenedreamer.priors import loading
from scenedreamer.priors.loading import (ModelLoadConfig, download_model, load_depth_network,
                                         load_sd_pipeline, local_status, resolve_source)
from tiny_models import tiny_depth_model, tiny_sd_pipeline

UNREACHABLE_HUB = "http://127.0.0.1:9"  # connection refused at once: no test can download anything


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """No test here may reach the real hub, even on a machine with internet."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", UNREACHABLE_HUB)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    tiny_sd_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def zoe_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-zoe"
    tiny_depth_model("zoedepth", folder)
    return folder


def fake_hf_cache(cache: Path, hub_id: str, model_folder: Path) -> Path:
    """Lay ``model_folder`` out as the Hugging Face cache would hold ``hub_id`` (refs/main -> snapshot)."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    shutil.copytree(model_folder, snapshot)
    return snapshot


def test_config_dtype_and_offline(monkeypatch):
    assert ModelLoadConfig().torch_dtype == torch.float32
    assert ModelLoadConfig(device="cuda", dtype="fp16").torch_dtype == torch.float16   # fp16 on the CPU: test_dtype.py
    assert ModelLoadConfig(dtype="bf16").torch_dtype == torch.bfloat16
    with pytest.raises(UserInputError, match="dtype"):
        ModelLoadConfig(dtype="fp8")
    assert not ModelLoadConfig().is_offline
    assert ModelLoadConfig(offline=True).is_offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert ModelLoadConfig().is_offline


def test_resolve_source_kinds(sd_folder, tmp_path):
    cfg = ModelLoadConfig(cache_dir=str(tmp_path))
    local = resolve_source(sd_folder, cfg)
    assert local.folder == sd_folder and local.hub_id is None
    preset = resolve_source("zoedepth", cfg)
    assert preset.hub_id == "Intel/zoedepth-nyu-kitti" and preset.folder is None and preset.preset.name == "zoedepth"
    hub = resolve_source("someone/some-model", cfg)
    assert hub.hub_id == "someone/some-model" and hub.preset is None
    for bad in (tmp_path / "nope", "not-a-preset", "./relative/missing"):
        with pytest.raises(MissingWeightsError, match="does not exist"):
            resolve_source(bad, cfg)


def test_sd_pipeline_round_trip(sd_folder):
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    pipe = load_sd_pipeline(sd_folder, ModelLoadConfig(attention_slicing=True))
    assert type(pipe) is StableDiffusionPipeline
    assert pipe.safety_checker is None
    assert pipe.unet.dtype == torch.float32 and pipe.unet.device.type == "cpu"
    assert pipe.unet.config.down_block_types[0] == "CrossAttnDownBlock2D"
    inpaint = load_sd_pipeline(sd_folder, ModelLoadConfig(), inpainting=True)
    assert type(inpaint) is StableDiffusionInpaintPipeline


def test_sd_dtype_is_applied(sd_folder):
    pipe = load_sd_pipeline(sd_folder, ModelLoadConfig(dtype="bf16"))
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16


def test_cpu_offload_needs_a_gpu(sd_folder):
    with pytest.raises(UserInputError, match="cpu_offload"):
        load_sd_pipeline(sd_folder, ModelLoadConfig(device="cpu", cpu_offload=True))


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        load_sd_pipeline(tmp_path / "absent", ModelLoadConfig())
    assert "\n" not in str(info.value) and "absent" in str(info.value)


def test_folder_without_weights(sd_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(sd_folder, broken)
    for f in (broken / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(MissingWeightsError, match="lacks unet"):
        load_sd_pipeline(broken, ModelLoadConfig())


@pytest.mark.parametrize("via_env", [False, True])
def test_offline_preset_not_cached(tmp_path, monkeypatch, via_env):
    if via_env:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = ModelLoadConfig(offline=not via_env, cache_dir=str(tmp_path))
    with pytest.raises(MissingWeightsError) as info:
        load_sd_pipeline("sd15", cfg)
    msg = str(info.value)
    assert "\n" not in msg and "sd15" in msg and "scenedreamer models download sd15" in msg
    with pytest.raises(MissingWeightsError, match="owner/unknown-model"):
        load_depth_network("owner/unknown-model", cfg)


def test_online_but_unreachable_hub(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        load_depth_network("zoedepth", ModelLoadConfig(cache_dir=str(tmp_path)))
    assert "could not be downloaded" in str(info.value) and "\n" not in str(info.value)


def test_preset_from_cache_offline(zoe_folder, tmp_path):
    cache = tmp_path / "hub"
    fake_hf_cache(cache, "Intel/zoedepth-nyu-kitti", zoe_folder)
    status = local_status("zoedepth", str(cache))
    assert status.present and status.folder.name == "0" * 40
    net = load_depth_network("zoedepth", ModelLoadConfig(offline=True, cache_dir=str(cache)))
    assert net.model_type == "zoedepth" and net.source.preset.name == "zoedepth"
    assert not local_status("depth-anything-v2-small", str(cache)).present


def test_unsupported_depth_model(sd_folder, tmp_path):
    folder = tmp_path / "text"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserInputError, match="bert"):
        load_depth_network(folder, ModelLoadConfig())
    with pytest.raises(UserInputError, match="diffusers pipeline folder"):
        load_sd_pipeline(folder, ModelLoadConfig())


def test_download_failures(tmp_path, monkeypatch):
    with pytest.raises(RunFailedError, match="cannot download"):
        download_model("zoedepth", cache_dir=str(tmp_path), endpoint=UNREACHABLE_HUB)
    with pytest.raises(UserInputError, match="known presets"):
        download_model("no-such-preset", cache_dir=str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RunFailedError, match="offline"):
        download_model("zoedepth", cache_dir=str(tmp_path))


def test_only_loading_module_calls_from_pretrained():
    """Architecture rule: only priors/loading.py calls from_pretrained or touches the hub."""
    import re

    pattern = re.compile(r"\bfrom_pretrained\(|\bsnapshot_download\(|\bhf_hub_download\(")
    src = Path(loading.__file__).parents[1]
    offenders = [f"{p.relative_to(src)}:{n}" for p in sorted(src.rglob("*.py")) if p.name != "loading.py"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == [], offenders


def test_download_fetches_only_needed_files(monkeypatch, tmp_path):
    """Presets fetch their allow_patterns (fp16 variant when asked); other ids skip big extras."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        raise OSError("no network in this test")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    for ref, variant in (("sd2-inpaint", None), ("sd2-inpaint", "fp16"), ("zoedepth", "fp16"), ("me/model", None)):
        with pytest.raises(RunFailedError):
            download_model(ref, cache_dir=str(tmp_path), variant=variant)
    (sd_id, sd), (_, sd16), (_, zoe), (other_id, other) = calls
    assert sd_id == "sd2-community/stable-diffusion-2-inpainting"
    assert "unet/diffusion_pytorch_model.safetensors" in sd["allow_patterns"]
    assert not any("safety_checker" in p for p in sd["allow_patterns"])
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in sd16["allow_patterns"]
    assert "model.safetensors" in zoe["allow_patterns"]                       # no fp16 depth files
    assert other_id == "me/model"
    assert "*.ckpt" in other["ignore_patterns"] and "safety_checker/*" in other["ignore_patterns"]
