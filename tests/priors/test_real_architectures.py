"""Issue 12 item 2: the published architectures of every preset, kept as data, and the adapter
lined up with the real UNets (built on the meta device: no memory, no weights, well under a
second each; the whole fast part takes ~6 s). The test marked slow (~6-16 s) runs the device
script's --tiny smoke mode on the CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from scenedreamer.priors import architectures
from scenedreamer.priors.adapter import NON_FEATURE_CHANNELS, AdapterConfig, RenderAdapter, residual_specs
from scenedreamer.priors.base import DepthKind
from scenedreamer.priors.model_registry import PRESETS, REMOVED_IDS

SD_PRESETS = ("sd15", "sd15-inpaint", "sd2", "sd2-inpaint")
IMAGE_SIZE = 512
"""Image side (pixels) the SD 1.5 / 2.1-base presets run at."""
FEATURE_CHANNELS = 16
"""The tri-plane NeRF's rendered feature width (the sd presets' representation), read by the adapter."""

# Written out by hand from the published models (not derived from the configs under test): at
# 512x512 the four down blocks take residuals 320@64^2, 640@32^2, 1280@16^2, 1280@8^2 (C, side),
# and the mid block runs at 1280@8^2.
EXPECTED_RESIDUALS = [(320, 64), (640, 32), (1280, 16), (1280, 8)]
EXPECTED_MID = (1280, 8)
# Published parameter counts (UNet, VAE, text encoder): SD 1.5's CLIP ViT-L/14 text tower and SD
# 2's OpenCLIP ViT-H/14 text tower without its last layer (23 of 24); the inpainting UNets add
# 5 x 320 x 3 x 3 input weights for their extra mask + masked-image channels.
EXPECTED_PARAMETERS = {
    "sd15": (859_520_964, 83_653_863, 123_060_480),
    "sd15-inpaint": (859_520_964 + 14_400, 83_653_863, 123_060_480),
    "sd2": (865_910_724, 83_653_863, 340_387_840),
    "sd2-inpaint": (865_910_724 + 14_400, 83_653_863, 340_387_840),
}
REPO = Path(__file__).resolve().parents[2]
KIND_OF_TASK = {"text2image": "diffusers", "inpaint": "diffusers", "depth": "depth", "clip": "clip"}


def _strings(value) -> list[str]:
    """Every string inside a preset field (a str, or a tuple/list of them, e.g. mirrors)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in _strings(v)]
    return []


def test_registry_holds_no_removed_hub_id():
    # whatever fields a preset grows (mirrors tried in order, say), none may name a removed repo
    removed_owners = ("runwayml/",)
    for preset in PRESETS.values():
        for field in dataclasses.fields(preset):
            for text in _strings(getattr(preset, field.name)):
                assert text not in REMOVED_IDS, (preset.name, field.name, text)
                assert not text.startswith(removed_owners), (preset.name, field.name, text)


def test_every_preset_has_its_architecture_and_names_its_source():
    # the fast presets' LoRA and TAESD are built by the benchmark from their shapes (no stored
    # config: a LoRA has none, TAESD's is AutoencoderTiny's defaults); the non-commercial Depth
    # Anything V2 Base / Large are in no preset, so nothing measures them
    stored = {n: p for n, p in PRESETS.items() if p.task in KIND_OF_TASK and not p.restrictions}
    assert set(architectures.available()) == set(stored), "one architecture folder per registry preset"
    originals = {preset: removed for removed, preset in REMOVED_IDS.items()}
    for name, preset in stored.items():
        arch = architectures.load_architecture(name)
        assert arch.kind == KIND_OF_TASK[preset.task], name
        needed = ({"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                   "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json"}
                  if arch.kind == "diffusers" else {"config.json", "preprocessor_config.json"})
        assert needed <= set(arch.files), (name, needed - set(arch.files))
        for path, source in arch.sources.items():
            assert source is not None, f"{name}/{path} has no _source"
            assert source["repo"] in (preset.hub_id, originals.get(name)), (name, path, source["repo"])
            assert source["file"] == path and source["url"].endswith(f"{source['repo']}/blob/main/{path}")


@pytest.mark.parametrize("name", SD_PRESETS)
def test_sd_configs_are_the_published_ones(name):
    arch = architectures.load_architecture(name)
    unet, vae, text = (arch.config(p) for p in ("unet/config.json", "vae/config.json", "text_encoder/config.json"))
    sd2 = name.startswith("sd2")
    assert unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert unet["cross_attention_dim"] == (1024 if sd2 else 768) == text["hidden_size"]
    assert unet["attention_head_dim"] == ([5, 10, 20, 20] if sd2 else 8)
    assert unet.get("use_linear_projection", False) is sd2
    assert unet["in_channels"] == (9 if name.endswith("inpaint") else 4)   # latents + mask + masked latents
    assert vae["block_out_channels"] == [128, 256, 512, 512] and vae["latent_channels"] == 4
    assert vae["scaling_factor"] == 0.18215
    assert text["vocab_size"] == 49408 and text["num_hidden_layers"] == (23 if sd2 else 12)
    assert arch.config("tokenizer/tokenizer_config.json")["pad_token"] == ("!" if sd2 else "<|endoftext|>")
    counted = tuple(sum(p.numel() for p in m.parameters()) for m in
                    (architectures.build_unet(name), architectures.build_vae(name), architectures.build_text_encoder(name)))
    assert counted == EXPECTED_PARAMETERS[name]


def test_depth_configs_are_the_published_ones():
    zoe = architectures.load_architecture("zoedepth").config("config.json")
    assert zoe["backbone_config"]["model_type"] == "beit" and zoe["backbone_config"]["image_size"] == 384
    assert (zoe["backbone_config"]["hidden_size"], zoe["backbone_config"]["num_hidden_layers"]) == (1024, 24)
    assert [b["name"] for b in zoe["bin_configurations"]] == ["nyu", "kitti"]    # NYU + KITTI heads
    for name in ("depth-anything-v2-small", "depth-anything-v2-metric-indoor", "depth-anything-v2-metric-outdoor"):
        config = architectures.load_architecture(name).config("config.json")
        assert config["backbone_config"]["hidden_size"] == 384                     # dinov2-small
        assert config["backbone_config"]["out_indices"] == [3, 6, 9, 12]           # V2's, not V1's [9..12]
        metric = PRESETS[name].depth_kind is DepthKind.METRIC
        assert config["depth_estimation_type"] == ("metric" if metric else "relative")
    # BEiT-L 384 ZoeDepth is ~345 M parameters (its 1.38 GB fp32 safetensors); DA-V2-Small 24.8 M
    assert 340e6 < architectures.parameter_count("zoedepth") < 350e6
    assert 24e6 < architectures.parameter_count("depth-anything-v2-small") < 26e6


def _injection_shapes(unet, sample: torch.Tensor, text: torch.Tensor, residuals: list[torch.Tensor]):
    """Run the UNet (meta device) with ``residuals`` injected; return the (C, side) of the hidden
    state each residual is added to, the mid block's output (C, side), and the residuals left.

    Where diffusers adds them: a cross-attention down block after its last resnet/attention pair,
    i.e. the state before its downsampler (its second-to-last output state, or the last when it
    has no downsampler); a plain down block to its output. A residual that merely broadcasts
    would go unnoticed by the addition itself, hence the explicit shapes.
    """
    seen, mid = [], []

    def down_hook(block, _inputs, output):
        hidden, states = output
        if getattr(block, "has_cross_attention", False):
            at = states[-2] if block.downsamplers is not None else states[-1]
        else:
            at = hidden
        seen.append((at.shape[1], at.shape[-1]))

    handles = [b.register_forward_hook(down_hook) for b in unet.down_blocks]
    handles.append(unet.mid_block.register_forward_hook(lambda _m, _i, out: mid.append((out.shape[1], out.shape[-1]))))
    try:
        out = unet(sample, torch.tensor(500, device="meta"), encoder_hidden_states=text,
                   down_intrablock_additional_residuals=residuals).sample
    finally:
        for h in handles:
            h.remove()
    assert tuple(out.shape) == (sample.shape[0], 4, *sample.shape[-2:])
    return seen, mid[0], residuals


@pytest.mark.parametrize("name", SD_PRESETS)
def test_adapter_residuals_fit_the_published_unet(name):
    unet = architectures.build_unet(name)                                    # meta device
    vae_config = architectures.load_architecture(name).config("vae/config.json")
    vae_scale = 2 ** (len(vae_config["block_out_channels"]) - 1)             # 8, as DiffusionRefiner derives it
    specs = residual_specs(unet, vae_scale)
    # the adapter is small: built for real (as the refiner builds it), then run shape-only on meta
    adapter = RenderAdapter(NON_FEATURE_CHANNELS + FEATURE_CHANNELS, specs, vae_scale, AdapterConfig()).to("meta")
    with torch.device("meta"):
        residuals = adapter(torch.empty(1, NON_FEATURE_CHANNELS + FEATURE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE))
        produced = [(r.shape[1], r.shape[-1]) for r in residuals]
        assert produced == EXPECTED_RESIDUALS
        assert all(r.shape[0] == 1 and r.shape[-2] == r.shape[-1] for r in residuals)
        # classifier-free guidance: the refiner batches [uncond, cond] and repeats the residuals
        latent = IMAGE_SIZE // vae_scale
        sample = torch.empty(2, unet.config.in_channels, latent, latent)
        text = torch.empty(2, 77, unet.config.cross_attention_dim)
        seen, mid, left = _injection_shapes(unet, sample, text, [torch.cat([r] * 2) for r in residuals])
    assert seen == EXPECTED_RESIDUALS == produced          # each residual lands on a state of its shape
    assert mid == EXPECTED_MID
    assert left == []                                      # all consumed by the down blocks, none by the mid block


def test_a_random_weight_model_loads_through_the_project_loader(tmp_path):
    # the smallest published network (25 M parameters, ~100 MB): the writer's layout is what
    # priors/loading.py reads, and the kind of output comes from the stored config
    from scenedreamer.priors.depth_networks import TransformersDepthEstimator
    from scenedreamer.priors.loading import ModelLoadConfig

    folder = architectures.write_random_model("depth-anything-v2-small", tmp_path / "da2", seed=0)
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in folder.iterdir()}
    estimator = TransformersDepthEstimator.load(folder, ModelLoadConfig())
    prediction = estimator.estimate(torch.rand(70, 98, 3, generator=torch.Generator().manual_seed(0)))
    assert prediction.kind is PRESETS["depth-anything-v2-small"].depth_kind
    assert tuple(prediction.values.shape) == (70, 98) and bool(torch.isfinite(prediction.values).all())
    processor = estimator.network.processor
    assert (processor.size["height"], processor.ensure_multiple_of) == (518, 14)   # the published settings


# ----------------------------------------------------------------------------- the device script's smoke mode
# (benchmarks/bench_real_architectures.py --tiny has no test here: its three processes take
# 16 s alone and 40 s on a busy machine, over the 20 s such a smoke test may cost)
@pytest.mark.slow
def test_device_script_tiny_mode_runs_every_stage(tmp_path, monkeypatch):
    # the GPU script is only run by hand on a lent GPU: its CPU smoke mode keeps it working meanwhile.
    # Its main() runs in this process: a child only repeated the imports of torch, diffusers and
    # transformers (~10 s of the ~30 s this test took); the script's file is loaded as it is run.
    import importlib.util
    import json
    import sys

    monkeypatch.setattr(sys, "path", sys.path[:])          # the script prepends src/ and tests/
    spec = importlib.util.spec_from_file_location("real_architectures_gpu",
                                                  REPO / "benchmarks" / "device" / "real_architectures_gpu.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "gpu.json"
    assert script.main(["--tiny", "--out", str(out)]) == 0
    setting = json.loads(out.read_text())["settings"]["plain"]
    assert list(setting["stages"]) == ["load_text_to_image", "text_to_image", "load_inpainter", "inpaint",
                                       "load_depth", "depth", "refiner_init", "refine", "adapter_step"]
    assert all(row["s"] > 0 for row in setting["stages"].values())
    assert all(v is not None for v in setting["seconds_per_denoising_step"].values())


@pytest.mark.slow
def test_the_architecture_benchmark_runs_end_to_end_on_tiny_models(tmp_path):
    """benchmarks/bench_real_architectures.py --tiny (~16 s): builds the models, runs generate in
    a child per dtype and records what BENCHMARKS.md quotes, so the benchmark cannot rot unseen."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_real_architectures", "--tiny", "--dtypes", "fp32",
                           "--out", str(out)], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(out.read_text())["presets"]["sd15-tiny"]["runs"][0]
    assert run["dtype_ran"] == "fp32" and not run.get("failed")
    assert run["adapter_parameters"] > 0 and run["adapter_train_step_s"]
    assert {"unet_text2image", "unet_inpaint_9ch"} <= set(run["seconds_per_denoising_step"])
    assert run["peak_rss_gib"] > 0 and run["dry_run_ram_gib"] > 0 and "in RAM up to" in run["dry_run_ram_line"]
    # the figure compared with the peak is the one the dry run prints (it once left out the process)
    import re

    value, unit = re.search(r"in RAM up to ([\d.]+) (\w+) peak", run["dry_run_ram_line"]).groups()
    printed = float(value) * {"KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    assert abs(run["dry_run_ram_gib"] * 2**30 - printed) <= 0.05 * printed
