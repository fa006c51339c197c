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
    (folder / "preprocessor_config.json").write_text('{}')     # complete, so the model type is what is refused
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


def _not_found(repo_id):
    import httpx2
    from huggingface_hub.errors import RepositoryNotFoundError

    url = f"https://huggingface.co/api/models/{repo_id}"
    return RepositoryNotFoundError("404 Client Error: Repository Not Found",
                                   response=httpx2.Response(404, request=httpx2.Request("GET", url)))


def test_a_removed_repository_falls_back_to_the_presets_mirror(monkeypatch, tmp_path, sd_folder):
    """Issue 12 item 1: presets list mirrors tried in order; a 404 moves on, and the mirror's
    snapshot is what download returns (a copy of a complete tiny SD folder here)."""
    import huggingface_hub

    from scenedreamer.priors.model_registry import PRESETS

    preset = PRESETS["sd2"]
    assert preset.mirrors, "sd2 must list a mirror"
    tried = []

    def fake_snapshot_download(repo_id, **kwargs):
        tried.append(repo_id)
        if repo_id == preset.hub_id:
            raise _not_found(repo_id)
        return str(fake_hf_cache(tmp_path / "cache", repo_id, sd_folder))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    folder = download_model("sd2", cache_dir=str(tmp_path / "cache"))
    assert tried == [preset.hub_id, preset.mirrors[0]]
    assert (folder / "model_index.json").is_file()
    # and the cache look-up finds the mirror's snapshot afterwards (no network: local files only)
    monkeypatch.undo()
    status = loading.local_status("sd2", str(tmp_path / "cache"))
    assert status.present and status.source.hub_id == preset.mirrors[0]


def test_every_candidate_missing_is_one_line_naming_them(monkeypatch, tmp_path):
    import huggingface_hub

    from scenedreamer.priors.model_registry import PRESETS

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: (_ for _ in ()).throw(_not_found(repo_id)))
    with pytest.raises(RunFailedError) as err:
        download_model("sd15", cache_dir=str(tmp_path))
    assert "no such repository" in str(err.value)
    assert all(i in str(err.value) for i in PRESETS["sd15"].hub_ids)


def test_a_component_shipped_only_as_bin_is_fetched_in_a_second_pass(monkeypatch, tmp_path, sd_folder):
    """Some repositories ship a component only as PyTorch .bin (or only as fp16): the first pass
    (safetensors patterns) leaves it out, the second asks for the .bin / fp16 twins."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.append(list(allow_patterns or []))
        snap = tmp_path / "cache" / "snap"
        if not snap.exists():
            shutil.copytree(sd_folder, snap)
            for f in (snap / "unet").glob("*.safetensors"):
                f.unlink()                                  # the repo has no unet safetensors
        if "unet/diffusion_pytorch_model.bin" in (allow_patterns or []):
            (snap / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"weights")
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    folder = download_model("sd15", cache_dir=str(tmp_path / "cache"))
    assert len(calls) == 2 and calls[1] == ["unet/diffusion_pytorch_model.bin",
                                            "unet/diffusion_pytorch_model.fp16.safetensors"]
    assert loading.missing_files(folder) == []


def test_a_folder_with_only_fp16_weights_loads(tmp_path):
    """A snapshot holding only *.fp16.safetensors (variant files) loads without naming the variant."""
    from tiny_models import tiny_sd_components
    from diffusers import StableDiffusionPipeline

    folder = tmp_path / "fp16-only"
    StableDiffusionPipeline(**tiny_sd_components(tmp_path)).save_pretrained(folder, variant="fp16")
    assert not list(folder.glob("unet/diffusion_pytorch_model.safetensors"))
    assert loading.weight_variant(folder) == "fp16" and loading.missing_files(folder) == []
    pipe = loading.load_sd_pipeline(folder, ModelLoadConfig(device="cpu", dtype="fp32", offline=True))
    assert pipe.unet.dtype == torch.float32


def test_check_names_each_file_a_snapshot_lacks(sd_folder, zoe_folder, tmp_path, capsys):
    from scenedreamer.cli import main

    broken = tmp_path / "sd"
    shutil.copytree(sd_folder, broken)
    (broken / "scheduler" / "scheduler_config.json").unlink()
    for f in (broken / "vae").glob("*.safetensors"):
        f.unlink()
    depth = tmp_path / "zoe"
    shutil.copytree(zoe_folder, depth)
    (depth / "preprocessor_config.json").unlink()
    assert main(["models", "check", str(broken), str(depth)]) == 1
    out = capsys.readouterr().out
    assert "lacks scheduler/scheduler_config.json, vae/diffusion_pytorch_model.safetensors" in out
    assert "lacks preprocessor_config.json" in out
