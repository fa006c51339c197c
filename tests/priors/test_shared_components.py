"""A text encoder or VAE that the text-to-image and inpainting models ship alike is held once
(priors/shared_components.py, issue 24's memory target): decided from the files, the same
modules in both pipelines, the same outputs as two separate copies, never with a LoRA fused into
the text encoder, and counted once by the dry run's memory plan."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from scenedreamer.priors.loading import LoadedPipelines, ModelLoadConfig, load_sd_pipeline, shares_text_encoder
from scenedreamer.priors.shared_components import same_component
from tiny_models import TINY_IMAGE_SIZE, tiny_autoencoder, tiny_sd_pipeline, write_tiny_lora

LOAD = ModelLoadConfig(device="cpu", dtype="fp32", offline=True)


def _resave_shuffled(path) -> None:
    """Rewrite a safetensors file with its tensors in reverse order and other metadata: the
    same model in a different file, as two publishers may write it."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    save_file(dict(reversed(list(tensors.items()))), path, metadata={"format": "pt", "writer": "elsewhere"})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """sd: a tiny text-to-image model; twin: an inpainting model carrying sd's text encoder,
    tokenizer and VAE (as SD 1.5 inpainting carries SD 1.5's), in files written differently;
    own: an inpainting model with its own random text encoder and VAE."""
    root = tmp_path_factory.mktemp("shared")
    tiny_sd_pipeline(root / "sd")
    tiny_sd_pipeline(root / "twin", inpainting=True)
    tiny_sd_pipeline(root / "own", inpainting=True, seed=5)
    for part in ("text_encoder", "tokenizer", "vae"):
        shutil.rmtree(root / "twin" / part)
        shutil.copytree(root / "sd" / part, root / "twin" / part)
    for part in ("text_encoder", "vae"):
        _resave_shuffled(next((root / "twin" / part).glob("*.safetensors")))
    tiny_autoencoder().save_pretrained(root / "taesd")
    return root


def test_the_same_text_encoder_and_vae_are_found_from_the_files(models):
    assert same_component(models / "sd", models / "twin", "text_encoder")
    assert same_component(models / "sd", models / "twin", "vae")
    assert not same_component(models / "sd", models / "own", "text_encoder")
    assert not same_component(models / "sd", models / "own", "vae")


def test_one_changed_byte_or_setting_keeps_a_component_apart(models, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(models / "twin", changed)
    weights = next((changed / "text_encoder").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01                                              # the last tensor's last bytes
    weights.write_bytes(bytes(data))
    assert not same_component(models / "sd", changed, "text_encoder")
    assert same_component(models / "sd", changed, "vae")
    # the same tensors read through a different tokenizer are another model too
    shutil.copytree(models / "twin" / "text_encoder", changed / "text_encoder", dirs_exist_ok=True)
    assert same_component(models / "sd", changed, "text_encoder")
    tokenizer = changed / "tokenizer" / "tokenizer.json"
    data = json.loads(tokenizer.read_text())
    vocab = data["model"]["vocab"]
    first, second = list(vocab)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]          # two tokens swap ids
    tokenizer.write_text(json.dumps(data))
    assert not same_component(models / "sd", changed, "text_encoder")


def test_shared_modules_are_held_once_and_inpaint_as_two_copies_would(models):
    loaded = LoadedPipelines()
    first = load_sd_pipeline(models / "sd", LOAD, loaded=loaded)
    shared = load_sd_pipeline(models / "twin", LOAD, inpainting=True, loaded=loaded)
    alone = load_sd_pipeline(models / "twin", LOAD, inpainting=True)
    assert shared.text_encoder is first.text_encoder and shared.tokenizer is first.tokenizer
    assert shared.vae is first.vae
    assert alone.text_encoder is not first.text_encoder and len(loaded.entries) == 2
    size = TINY_IMAGE_SIZE
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1

    def inpaint(pipe):
        return pipe("a lake", image=image, mask_image=mask, height=size, width=size, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(1), output_type="pt").images

    assert torch.equal(inpaint(shared), inpaint(alone))
    # a model with its own text encoder and VAE keeps them
    own = load_sd_pipeline(models / "own", LOAD, inpainting=True, loaded=loaded)
    assert own.text_encoder is not first.text_encoder and own.vae is not first.vae


def test_a_lora_fused_into_the_text_encoder_keeps_the_copies_apart(models, tmp_path):
    """Each pipeline fuses its LoRA into its own text encoder: a shared one would take it twice."""
    from diffusers import StableDiffusionPipeline

    base = load_sd_pipeline(models / "sd", LOAD)
    unet_state = write_tiny_lora(tmp_path / "unet-only", base.unet)
    gen = torch.Generator().manual_seed(3)
    te_state = {}                       # rank 2 over every query projection, in peft's names
    for name, module in base.text_encoder.named_modules():
        if name.endswith("self_attn.q_proj"):
            te_state[f"{name}.lora_A.weight"] = torch.randn(2, module.in_features, generator=gen)
            te_state[f"{name}.lora_B.weight"] = torch.randn(module.out_features, 2, generator=gen)
    StableDiffusionPipeline.save_lora_weights(tmp_path / "with-te", unet_lora_layers=unet_state,
                                              text_encoder_lora_layers=te_state, safe_serialization=True)
    assert shares_text_encoder(tmp_path / "unet-only", LOAD) and not shares_text_encoder(tmp_path / "with-te", LOAD)

    loaded = LoadedPipelines()
    first = load_sd_pipeline(models / "sd", LOAD, lora=tmp_path / "with-te", loaded=loaded)
    second = load_sd_pipeline(models / "twin", LOAD, inpainting=True, lora=tmp_path / "with-te", loaded=loaded)
    assert second.text_encoder is not first.text_encoder and second.vae is first.vae
    fused_once = dict(first.text_encoder.named_parameters())
    for name, value in second.text_encoder.named_parameters():
        assert torch.equal(value, fused_once[name]), name
    plain = load_sd_pipeline(models / "sd", LOAD).text_encoder
    layer = next(n for n, _ in plain.named_modules() if n.endswith("layers.0.self_attn.q_proj"))
    assert not torch.equal(first.text_encoder.get_submodule(layer).weight, plain.get_submodule(layer).weight)


def test_the_memory_plan_counts_a_shared_component_once(models):
    from scenedreamer.pipeline.config import preset_config
    from scenedreamer.pipeline.plan import network_memory, shared_parameters
    from scenedreamer.priors.loading import safetensors_sizes

    def elements(folder, part):
        return safetensors_sizes(next((folder / part).glob("*.safetensors")))[0]

    base = preset_config("sd15")

    def config(inpainter, **priors):
        return replace(base, width=256, height=256, priors=replace(
            base.priors, text_to_image=str(models / "sd"), refiner=str(models / "sd"), inpainter=str(inpainter),
            depth="oracle", first_view_depth="oracle-exact", dtype="fp32", **priors))

    twin, own = config(models / "twin"), config(models / "own")
    held_once = elements(models / "twin", "text_encoder") + elements(models / "twin", "vae")
    assert shared_parameters(twin) == held_once and shared_parameters(own) == 0
    assert network_memory(own).weights - network_memory(twin).weights == 4 * held_once     # fp32 bytes
    # with a tiny VAE in place of both VAEs only the text encoder is shared; with offload nothing is
    assert shared_parameters(config(models / "twin", tiny_vae=str(models / "sd"))) == elements(models / "twin",
                                                                                                "text_encoder")
    assert shared_parameters(config(models / "twin", cpu_offload=True)) == 0


def test_a_vae_a_tiny_vae_replaced_is_not_lent(models):
    """A pipeline loaded with a tiny VAE holds TAESD as its ``vae``: a later pipeline without
    one must get its own VAE, not that stand-in; the text encoder is still shared."""
    loaded = LoadedPipelines()
    first = load_sd_pipeline(models / "sd", LOAD, tiny_vae=models / "taesd", loaded=loaded)
    second = load_sd_pipeline(models / "twin", LOAD, inpainting=True, loaded=loaded)
    assert type(first.vae).__name__ == "AutoencoderTiny" and type(second.vae).__name__ == "AutoencoderKL"
    assert second.text_encoder is first.text_encoder
