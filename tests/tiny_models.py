"""Tiny random networks for tests, built in-process and offline (no hub, no downloads).

Other test folders import these builders (pytest's ``pythonpath`` includes ``tests/``):

- ``tiny_tokenizer(folder)`` -> CLIPTokenizer over a byte-level vocabulary written to ``folder``.
- ``tiny_sd_pipeline(folder=None, inpainting=False)`` -> StableDiffusionPipeline (or the
  inpainting pipeline) with random weights, saved with ``save_pretrained`` when ``folder`` is
  given, so it can be loaded back through ``scenedreamer.priors.loading`` exactly like real weights.
- ``tiny_depth_model(kind, folder)`` -> a random ZoeDepth or Depth Anything model + its image
  processor config saved to ``folder``.
- ``write_tiny_lora(folder, unet)`` / ``tiny_autoencoder()`` -> a random LoRA saved as diffusers
  saves LoRAs, and a random AutoencoderTiny (TAESD's architecture): the fast presets' extra parts.

Shapes are kept like Stable Diffusion's where it matters to other code: the VAE downsamples by 8
(4 blocks), so a 64 px image has an 8x8 latent (``sample_size`` 8); the UNet's first down block is
``CrossAttnDownBlock2D`` (as in SD) so T2I-Adapter / ControlNet residual shapes line up.
All weights come from ``torch.manual_seed(seed)``: same seed, same model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Sizes of the tiny models (kept in one place so tests can refer to them).
TINY_IMAGE_SIZE = 64
"""Image side in pixels the tiny SD models are meant to run at (latent 8x8)."""
TINY_STEPS = 2
"""Inference steps tests use with the tiny SD pipelines."""
TINY_TEXT_DIM = 32
"""Text-encoder hidden size = the UNet's cross-attention dimension."""
TINY_UNET_CHANNELS = (32, 64)
"""UNet block channels (CrossAttnDownBlock2D, DownBlock2D)."""


def write_byte_level_vocab(folder: str | Path) -> Path:
    """Write a CLIP-style ``vocab.json`` + empty ``merges.txt`` (514 tokens) into ``folder``
    (the package's own writer, priors/architectures: the 256 byte characters, the same with the
    ``</w>`` suffix, ``<|startoftext|>`` and ``<|endoftext|>``; no merges). Returns the folder."""
    from scenedreamer.priors.architectures import write_byte_level_vocabulary

    folder = Path(folder)
    write_byte_level_vocabulary(folder)
    return folder


def tiny_tokenizer(tmp_folder: str | Path, model_max_length: int = 77):
    """An offline CLIPTokenizer (514-token byte-level vocabulary) built from files in ``tmp_folder``."""
    from transformers import CLIPTokenizer

    folder = write_byte_level_vocab(Path(tmp_folder) / "tokenizer_files")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                         model_max_length=model_max_length)


def tiny_sd_components(tmp_folder: str | Path, inpainting: bool = False, seed: int = 0) -> dict:
    """The pieces of a tiny random Stable Diffusion pipeline (dict of constructor arguments)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer(tmp_folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=TINY_UNET_CHANNELS,
        layers_per_block=1,
        sample_size=TINY_IMAGE_SIZE // 8,
        # inpainting UNets take latents (4) + mask (1) + masked-image latents (4)
        in_channels=9 if inpainting else 4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),  # 4 blocks -> downsampling by 8, as in SD
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=TINY_IMAGE_SIZE,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TINY_TEXT_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TINY_TEXT_DIM,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                scheduler=scheduler, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)


def tiny_sd_pipeline(folder: str | Path | None = None, inpainting: bool = False, seed: int = 0):
    """A tiny random StableDiffusionPipeline (or StableDiffusionInpaintPipeline).

    folder: when given, the pipeline is saved there with ``save_pretrained`` (a folder that
        ``scenedreamer.priors.loading`` loads like real weights); tokenizer files are written
        below it as well. When None, a temporary folder is used for the tokenizer files only.
    Runs at 64x64 px (latent 8x8) with 2 steps in well under a second on CPU.
    """
    import tempfile

    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    if folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            pipe = cls(**tiny_sd_components(tmp, inpainting=inpainting, seed=seed))
        return pipe
    folder = Path(folder)
    pipe = cls(**tiny_sd_components(folder.parent / f".{folder.name}_tok", inpainting=inpainting, seed=seed))
    pipe.save_pretrained(folder, safe_serialization=True)
    return pipe


def tiny_depth_model(kind: str = "zoedepth", folder: str | Path | None = None, seed: int = 0,
                     depth_estimation_type: str = "metric"):
    """A tiny random depth network and its image-processor config.

    kind: "zoedepth" (ZoeDepthForDepthEstimation, metric) or "depth_anything"
        (DepthAnythingForDepthEstimation; ``depth_estimation_type`` "metric" or "relative",
        the latter predicting disparity like Depth Anything V2's relative models).
    folder: when given, the model and a ``preprocessor_config.json`` are saved there.
    Returns the model (eval mode). The processors use small input sizes (64 px) so that
    the models run in tens of milliseconds.
    """
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config,
                              DPTImageProcessorPil, ZoeDepthConfig, ZoeDepthForDepthEstimation,
                              ZoeDepthImageProcessorPil)

    torch.manual_seed(seed)
    if kind == "zoedepth":
        backbone = Dinov2Config(image_size=64, patch_size=16, hidden_size=8, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=16,
                                out_features=["stage1", "stage2"], reshape_hidden_states=False)
        config = ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[4, 4], fusion_hidden_size=8,
                                bottleneck_features=8, num_relative_features=8, bin_embedding_dim=8,
                                reassemble_factors=[2, 1])
        model = ZoeDepthForDepthEstimation(config)
        processor = ZoeDepthImageProcessorPil(size={"height": 64, "width": 64}, keep_aspect_ratio=True,
                                              ensure_multiple_of=32, do_pad=True)
    elif kind == "depth_anything":
        backbone = Dinov2Config(image_size=56, patch_size=14, hidden_size=8, num_hidden_layers=4,
                                num_attention_heads=2, intermediate_size=16,
                                out_features=["stage1", "stage2", "stage3", "stage4"],
                                reshape_hidden_states=False, apply_layernorm=True)
        config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=8,
                                     neck_hidden_sizes=[4, 4, 8, 8], fusion_hidden_size=8,
                                     head_hidden_size=8, depth_estimation_type=depth_estimation_type,
                                     max_depth=20 if depth_estimation_type == "metric" else 1)
        model = DepthAnythingForDepthEstimation(config)
        processor = DPTImageProcessorPil(size={"height": 56, "width": 56}, keep_aspect_ratio=True,
                                         ensure_multiple_of=14, resample=3, do_pad=False)
    else:
        raise ValueError(f"tiny_depth_model: unknown kind {kind!r} (zoedepth | depth_anything)")
    model.eval()
    if folder is not None:
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
    return model


def tiny_clip_model(folder: str | Path | None = None, seed: int = 0, image_size: int = 32):
    """A tiny random ``CLIPModel`` (2-layer text and vision towers, 16-d projection) with the
    byte-level tokenizer; saved with ``save_pretrained`` (model, tokenizer and a
    preprocessor_config.json) when ``folder`` is given, so ``priors.loading.load_clip`` loads it
    exactly like the published CLIP weights."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=514, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=512,
                         eos_token_id=513, pad_token_id=513),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
        projection_dim=16)
    model = CLIPModel(config).eval()
    if folder is not None:
        folder = Path(folder)
        model.save_pretrained(folder, safe_serialization=True)
        tiny_tokenizer(folder.parent / f".{folder.name}_tok").save_pretrained(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps({
            "crop_size": {"height": image_size, "width": image_size}, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "CLIPImageProcessor"}))
    return model


LORA_RANK = 4
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
"""The attention projections LCM-LoRA also targets (it adds the resnet convolutions)."""


def write_tiny_lora(folder: str | Path, unet, seed: int = 1) -> dict[str, torch.Tensor]:
    """A random LoRA (rank 4, alpha 4: scale 1) over ``unet``'s attention projections, saved
    as diffusers saves LoRAs (pytorch_lora_weights.safetensors); returns its peft state dict
    (names ``<layer>.lora_A.weight`` / ``lora_B.weight``). ``unet`` is left without the adapter."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    # init_lora_weights=False: B random too (peft's default B = 0 would make the LoRA a no-op)
    unet.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, target_modules=LORA_TARGETS,
                                init_lora_weights=False), adapter_name="tiny")
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(unet, adapter_name="tiny").items()}
    unet.delete_adapters("tiny")
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=state, safe_serialization=True)
    return state


def tiny_autoencoder(latent_channels: int = 4, seed: int = 2):
    """A tiny random AutoencoderTiny (TAESD's architecture at 8 channels, 4 blocks: 8x downsampling)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    return AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
                           latent_channels=latent_channels).eval()


def tiny_run_args(resolution: str = "48x32", frames: int = 3) -> list[str]:
    """`generate` arguments for a tiny offline Gaussian run (seconds on a CPU) that still writes
    scene.ply, scene.pt, trajectory.json and the support database."""
    return ["--resolution", resolution, "--frames", str(frames), "--representation", "gaussians",
            "--set", "init.fit_steps=4", "--set", "progressive.fit_steps_per_view=3",
            "--set", "init.neighbour_yaws_deg=[-15]", "--set", "export.video=false",
            "--set", "export.nerfstudio=false", "--set", "export.distill.steps=5", "--quiet"]
