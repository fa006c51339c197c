"""The fast path's parts (issue 24 item 1) on tiny random models built here, loaded through the
same priors.loading path as the published weights: the LCM-LoRA (fused through PEFT), the tiny
autoencoder (AutoencoderTiny / TAESD) in place of the VAE, the few-step samplers, and the
one-line refusals of a LoRA or tiny VAE that does not fit the base model."""

from __future__ import annotations

import json

import pytest
import torch

from scenedreamer.errors import UserInputError
from scenedreamer.priors.loading import ModelLoadConfig, load_sd_pipeline, load_tiny_vae
from tiny_models import (LORA_RANK, TINY_IMAGE_SIZE, TINY_TEXT_DIM, tiny_autoencoder, tiny_sd_pipeline,
                         write_tiny_lora)

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_models")
    pipe = tiny_sd_pipeline(root / "sd")
    tiny_sd_pipeline(root / "sd-inpaint", inpainting=True)
    lora_state = write_tiny_lora(root / "lora", pipe.unet)
    tiny_autoencoder().save_pretrained(root / "taesd")
    return root, lora_state


LOAD = ModelLoadConfig(device="cpu", dtype="fp32", offline=True)


def test_lora_is_fused_into_the_unet_weights(models):
    """The twin: a fused projection equals W + (alpha / r) B A computed by hand from the file."""
    root, state = models
    plain = load_sd_pipeline(root / "sd", LOAD)
    fused = load_sd_pipeline(root / "sd", LOAD, lora=root / "lora")
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    a, b = state[f"{layer}.lora_A.weight"], state[f"{layer}.lora_B.weight"]
    expected = plain.unet.get_submodule(layer).weight + (LORA_RANK / LORA_RANK) * b @ a
    got = fused.unet.get_submodule(layer)
    assert type(got) is torch.nn.Linear                 # fused and unloaded: no LoRA layer left at run time
    torch.testing.assert_close(got.weight, expected, rtol=1e-5, atol=1e-6)
    # a layer the LoRA does not target is untouched
    conv = "conv_in"
    assert torch.equal(fused.unet.get_submodule(conv).weight, plain.unet.get_submodule(conv).weight)


def test_lora_fits_the_inpainting_unet_too(models):
    """LCM-LoRA targets no layer that differs between SD 1.5 and its 9-channel inpainting UNet."""
    root, _ = models
    pipe = load_sd_pipeline(root / "sd-inpaint", LOAD, inpainting=True, lora=root / "lora")
    assert pipe.unet.config.in_channels == 9


def test_lora_of_another_base_is_refused_naming_the_tensor(models, tmp_path):
    from diffusers import UNet2DConditionModel

    root, _ = models
    other = tiny_sd_pipeline().unet
    wider = UNet2DConditionModel.from_config({**other.config, "cross_attention_dim": 2 * TINY_TEXT_DIM})
    write_tiny_lora(tmp_path / "lora", wider)
    with pytest.raises(UserInputError) as info:
        load_sd_pipeline(root / "sd", LOAD, lora=tmp_path / "lora")
    text = str(info.value)
    assert "\n" not in text and "attn2.to_k.lora_A.weight" in text and str(2 * TINY_TEXT_DIM) in text


def test_lora_naming_no_layer_is_refused(models, tmp_path):
    from safetensors.torch import save_file

    root, _ = models
    (tmp_path / "lora").mkdir()
    save_file({"unet.no_such_block.to_q.lora_A.weight": torch.zeros(4, 32),
               "unet.no_such_block.to_q.lora_B.weight": torch.zeros(32, 4)},
              tmp_path / "lora" / "pytorch_lora_weights.safetensors")
    with pytest.raises(UserInputError, match=r"no_such_block\.to_q\.lora_A\.weight names no"):
        load_sd_pipeline(root / "sd", LOAD, lora=tmp_path / "lora")


def test_tiny_vae_replaces_the_vae_and_runs_few_step_lcm(models):
    """TAESD in place of the VAE, LCM at 4 steps without guidance: an image of the asked size,
    the same for the same generator; the pipeline's own VAE is never loaded."""
    from diffusers import AutoencoderTiny, LCMScheduler

    from scenedreamer.priors.diffusion import configure_sampler

    root, _ = models
    pipe = load_sd_pipeline(root / "sd", LOAD, lora=root / "lora", tiny_vae=root / "taesd")
    configure_sampler(pipe, "lcm")
    assert isinstance(pipe.vae, AutoencoderTiny) and isinstance(pipe.scheduler, LCMScheduler)
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"      # the model's own noise schedule

    def sample():
        g = torch.Generator().manual_seed(0)
        return pipe("a lake", height=TINY_IMAGE_SIZE, width=TINY_IMAGE_SIZE, num_inference_steps=4,
                    guidance_scale=1.0, generator=g, output_type="pt").images

    a, b = sample(), sample()
    assert a.shape == (1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and torch.equal(a, b)


def test_tiny_vae_does_not_need_the_full_vae_weights(models, tmp_path):
    import shutil

    root, _ = models
    shutil.copytree(root / "sd", tmp_path / "sd")
    for f in (tmp_path / "sd" / "vae").glob("*.safetensors"):
        f.write_bytes(b"not weights")                    # would fail to load if it were read
    pipe = load_sd_pipeline(tmp_path / "sd", LOAD, tiny_vae=root / "taesd")
    assert type(pipe.vae).__name__ == "AutoencoderTiny"


def test_tiny_vae_of_another_latent_space_is_refused(models, tmp_path):
    root, _ = models
    tiny_autoencoder(latent_channels=16).save_pretrained(tmp_path / "taesd16")
    with pytest.raises(UserInputError) as info:
        load_sd_pipeline(root / "sd", LOAD, tiny_vae=tmp_path / "taesd16")
    assert "decoder.layers.0.weight" in str(info.value) and "16 latent" in str(info.value)


def test_tiny_vae_file_not_matching_its_config_is_refused_naming_the_tensor(models, tmp_path):
    import shutil

    root, _ = models
    shutil.copytree(root / "taesd", tmp_path / "taesd")
    config = json.loads((tmp_path / "taesd" / "config.json").read_text())
    config["decoder_block_out_channels"] = [16, 16, 16, 16]
    (tmp_path / "taesd" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserInputError, match=r"tensor decoder\.layers\.\d+\.\w+ has shape"):
        load_tiny_vae(tmp_path / "taesd", LOAD)


@pytest.mark.parametrize("sampler", ["lcm", "dpm-solver++"])
def test_refiner_runs_with_the_tiny_vae_and_few_step_samplers(models, sampler):
    """The refiner encodes with AutoencoderTiny (latents, no distribution) and samples with the
    fast schedulers; with strength 0.5 of 4 steps it redraws and keeps well-observed pixels."""
    from scenedreamer.priors.diffusion import configure_sampler
    from scenedreamer.priors.refiner import DiffusionRefiner, RefinerConfig, RefinerInput

    root, _ = models
    pipe = load_sd_pipeline(root / "sd", LOAD, tiny_vae=root / "taesd")
    configure_sampler(pipe, sampler)
    refiner = DiffusionRefiner(pipe, RefinerConfig(num_inference_steps=4, guidance_scale=1.0, use_adapter=False))
    s = TINY_IMAGE_SIZE
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(s, s, 3, generator=g)
    opacity = torch.ones(s, s)
    opacity[: s // 2] = 0.2                               # top half: poorly observed, redrawn
    view = RefinerInput(rendered_rgb=rgb, rendered_depth=torch.full((s, s), 2.0), opacity=opacity,
                        features=torch.zeros(s, s, 0), local_rgb=rgb, local_known=torch.ones(s, s, dtype=torch.bool),
                        local_depth=torch.full((s, s), 2.0))
    out = refiner.refine(view, "a lake", torch.Generator().manual_seed(1))
    assert out.shape == (s, s, 3) and torch.isfinite(out).all()
    assert torch.equal(out[-4:], rgb[-4:])               # well observed (away from the seam): the render's
    assert not torch.allclose(out[:4], rgb[:4])          # poorly observed: redrawn


def test_unknown_sampler_is_refused():
    from scenedreamer.priors.diffusion import configure_sampler

    with pytest.raises(UserInputError, match="sampler"):
        configure_sampler(tiny_sd_pipeline(), "euler-fancy")


def test_sequential_offload_needs_a_gpu():
    from scenedreamer.priors.loading import place_pipeline

    with pytest.raises(UserInputError, match="sequential_offload needs a GPU"):
        place_pipeline(tiny_sd_pipeline(), ModelLoadConfig(device="cpu", sequential_offload=True))
    with pytest.raises(UserInputError, match="exclude each other"):
        ModelLoadConfig(device="cuda", cpu_offload=True, sequential_offload=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="sequential offload streams weights to a GPU")
def test_sequential_offload_on_cuda_gives_the_same_image(models):
    root, _ = models
    cfg = ModelLoadConfig(device="cuda", dtype="fp32", offline=True)
    images = []
    for load in (cfg, ModelLoadConfig(device="cuda", dtype="fp32", offline=True, sequential_offload=True)):
        pipe = load_sd_pipeline(root / "sd", load)
        g = torch.Generator("cuda").manual_seed(0)
        images.append(pipe("a lake", height=64, width=64, num_inference_steps=2, generator=g,
                           output_type="pt").images.cpu())
    torch.testing.assert_close(images[0], images[1], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_lean_loading_gives_the_library_loaded_weights(models, dtype):
    """The twin: the UNet and VAE read tensor by tensor in the running dtype equal diffusers' own
    from_pretrained(dtype=...) load, tensor for tensor, and are the same classes."""
    root, _ = models
    lean = load_sd_pipeline(root / "sd", ModelLoadConfig(dtype=dtype, offline=True))
    library = load_sd_pipeline(root / "sd", ModelLoadConfig(dtype=dtype, offline=True, lean_loading=False))
    for part in ("unet", "vae"):
        a, b = getattr(lean, part), getattr(library, part)
        assert type(a) is type(b) and not a.training
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)


def test_lean_reader_holds_one_file_tensor_at_a_time(models):
    """read_safetensors_lean converts each tensor as it is read: bf16 out of an fp32 file."""
    from safetensors.torch import load_file

    from scenedreamer.priors.loading import read_safetensors_lean

    root, _ = models
    path = root / "sd" / "unet" / "diffusion_pytorch_model.safetensors"
    lean = read_safetensors_lean(path, torch.bfloat16)
    reference = load_file(path)
    assert lean.keys() == reference.keys()
    assert all(lean[k].dtype == torch.bfloat16 and torch.equal(lean[k], reference[k].to(torch.bfloat16))
               for k in reference)


def test_lean_loading_falls_back_for_renamed_tensors(models, tmp_path):
    """A checkpoint whose tensor names are not the model's (an older layout diffusers renames)
    is left to diffusers: load_component_lean says None instead of guessing."""
    import shutil

    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file, save_file

    from scenedreamer.priors.loading import load_component_lean

    root, _ = models
    shutil.copytree(root / "sd" / "unet", tmp_path / "unet")
    path = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(path)
    state["renamed.weight"] = state.pop("conv_in.weight")
    save_file(state, path)
    assert load_component_lean(tmp_path / "unet", UNet2DConditionModel, torch.float32) is None
    assert load_component_lean(root / "sd" / "unet", UNet2DConditionModel, torch.float32) is not None


def test_the_plan_counts_a_tiny_autoencoders_smaller_activations():
    """With TAESD doing every encode and decode, a UNet call, not the VAE's decode, sets the
    networks' activations (plan.TINY_VAE_ACTIVATION_BYTES_AT_512, measured); the plain presets
    keep the VAE's."""
    import dataclasses

    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import (ACTIVATION_BYTES_AT_512, TINY_VAE_ACTIVATION_BYTES_AT_512, loaded_networks,
                                            network_memory)

    fast = dataclasses.replace(preset_config("sd15-fast"), priors=dataclasses.replace(
        preset_config("sd15-fast").priors, dtype="bf16", device="cpu"))
    plain = dataclasses.replace(fast, priors=dataclasses.replace(fast.priors, tiny_vae=""))
    for config, expected in ((fast, TINY_VAE_ACTIVATION_BYTES_AT_512), (plain, ACTIVATION_BYTES_AT_512)):
        counts = {name: 1_000_000 for name in loaded_networks(config)}
        assert network_memory(config, counts).activations == expected            # at 512x512
    assert TINY_VAE_ACTIVATION_BYTES_AT_512 < ACTIVATION_BYTES_AT_512 / 1.5
