"""The published architectures of every model preset, as data, and random-weight models built from them.

One folder per preset of ``priors.model_registry`` (``sd15``, ``sd15-inpaint``, ``sd2``,
``sd2-inpaint``, ``zoedepth``, the Depth Anything V2 variants, the evaluation CLIPs) holds the
configuration files of the published model in its own layout: a diffusers pipeline folder
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) or a
transformers model (``config.json``, ``preprocessor_config.json``). Every JSON file names where it
comes from in a ``"_source"`` key (hub repository, file, notes); SOURCES.md says how each was
obtained and what differs from the hub (the tokenizer vocabularies).

``write_random_model(preset, folder)`` builds the networks from these configs with random weights
(diffusers / transformers classes, constructed from config) and saves them with
``save_pretrained`` in the published layout, so ``priors/loading.py`` loads the folder by local
path exactly as it loads a downloaded snapshot. This is what keeps the real-network path checked
without any download: the shapes, channel orders and memory of the real architectures, not tiny
stand-ins. Weights are written as float32 safetensors, like the published files we fetch.

Nothing here touches a model hub (that is ``priors/loading.py``'s job) or loads weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ...errors import UserInputError

ARCHITECTURES_DIR = Path(__file__).resolve().parent
"""The folder holding one sub-folder of configuration files per preset."""

SOURCE_KEY = "_source"
"""The key under which every stored JSON file names its origin (removed before a config is used)."""

ArchitectureKind = Literal["diffusers", "depth", "clip"]

_SD_COMPONENTS = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class Architecture:
    """The stored configuration files of one preset.

    preset: the registry name (also the folder name).
    kind: "diffusers" (a Stable Diffusion pipeline folder), "depth" (a transformers depth model)
        or "clip" (a transformers CLIPModel).
    files: path relative to the preset folder -> the file's JSON, without its ``_source`` key.
    sources: the same paths -> the ``_source`` record (repo, file, url, note).
    """

    preset: str
    kind: ArchitectureKind
    files: dict[str, dict[str, Any]]
    sources: dict[str, dict[str, Any]]

    def config(self, path: str) -> dict[str, Any]:
        """A deep copy of one stored file's JSON (``_source`` removed), safe to modify."""
        try:
            return copy.deepcopy(self.files[path])
        except KeyError:
            raise UserInputError(f"architecture {self.preset}: no stored file {path!r} "
                                 f"(stored: {', '.join(sorted(self.files))})") from None


def available() -> tuple[str, ...]:
    """Preset names that have stored architectures, sorted."""
    return tuple(sorted(p.name for p in ARCHITECTURES_DIR.iterdir()
                        if p.is_dir() and not p.name.startswith(("_", "."))))


def load_architecture(preset: str) -> Architecture:
    """Read the stored configuration files of ``preset`` (UserInputError for an unknown name)."""
    folder = ARCHITECTURES_DIR / preset
    if not folder.is_dir() or preset.startswith(("_", ".")):
        raise UserInputError(f"no stored architecture for {preset!r}; known: {', '.join(available())}")
    files, sources = {}, {}
    for path in sorted(folder.rglob("*.json")):
        rel = path.relative_to(folder).as_posix()
        data = json.loads(path.read_text(encoding="utf-8"))
        sources[rel] = data.pop(SOURCE_KEY, None)
        files[rel] = data
    if "model_index.json" in files:
        kind: ArchitectureKind = "diffusers"
    elif files.get("config.json", {}).get("model_type") == "clip":
        kind = "clip"
    else:
        kind = "depth"
    return Architecture(preset, kind, files, sources)


# ----------------------------------------------------------------------------- building networks
def _diffusers_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers config without its private keys (``_class_name``, ``_diffusers_version``)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def build_unet(preset: str, device: torch.device | str = "meta"):
    """The preset's ``UNet2DConditionModel`` built from its stored config.

    device: "meta" (default) builds the structure only: no memory, no random numbers, about 0.1 s
    for the SD UNets (860 M parameters), which is what shape checks need; "cpu" gives random
    weights (PyTorch's default initialisation, seeded by the caller's global RNG).
    """
    from diffusers import UNet2DConditionModel

    arch = load_architecture(preset)
    if arch.kind != "diffusers":
        raise UserInputError(f"architecture {preset}: not a diffusion pipeline (it is a {arch.kind} model)")
    with torch.device(device):
        return UNet2DConditionModel.from_config(_diffusers_kwargs(arch.config("unet/config.json")))


def build_vae(preset: str, device: torch.device | str = "meta"):
    """The preset's ``AutoencoderKL`` built from its stored config (see ``build_unet`` for ``device``)."""
    from diffusers import AutoencoderKL

    arch = load_architecture(preset)
    with torch.device(device):
        return AutoencoderKL.from_config(_diffusers_kwargs(arch.config("vae/config.json")))


def build_text_encoder(preset: str, device: torch.device | str = "meta"):
    """The preset's ``CLIPTextModel`` built from its stored config (see ``build_unet`` for ``device``)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    arch = load_architecture(preset)
    with torch.device(device):
        return CLIPTextModel(CLIPTextConfig(**arch.config("text_encoder/config.json")))


def build_transformers_model(preset: str, device: torch.device | str = "meta"):
    """A depth preset's ``*ForDepthEstimation`` or a CLIP preset's ``CLIPModel`` from its config.json."""
    from transformers import AutoConfig, AutoModelForDepthEstimation, CLIPModel

    arch = load_architecture(preset)
    if arch.kind == "diffusers":
        raise UserInputError(f"architecture {preset}: a diffusion pipeline; use build_unet / build_vae / "
                             "build_text_encoder")
    config = arch.config("config.json")
    config.pop("architectures", None)
    config = AutoConfig.for_model(config.pop("model_type"), **config)
    with torch.device(device):
        if arch.kind == "clip":
            return CLIPModel(config)
        return AutoModelForDepthEstimation.from_config(config)


def parameter_count(preset: str) -> int:
    """Parameters the project loads for ``preset``, counted on the meta device (no memory):
    UNet + VAE + text encoder of a pipeline (as ``loading.weight_parameter_count`` counts a
    folder), the whole model otherwise."""
    arch = load_architecture(preset)
    if arch.kind == "diffusers":
        models = [build_unet(preset), build_vae(preset), build_text_encoder(preset)]
    else:
        models = [build_transformers_model(preset)]
    return sum(p.numel() for m in models for p in m.parameters())


# ----------------------------------------------------------------------------- tokenizer files
def _bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 / CLIP byte -> printable character table (the byte-level BPE alphabet)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def write_byte_level_vocabulary(folder: Path) -> tuple[Path, Path]:
    """Write a CLIP-format ``vocab.json`` (514 entries) and ``merges.txt`` (no merges) to ``folder``.

    The published CLIP BPE vocabulary (49408 entries, 48894 merges) cannot be built offline; this
    one has the same format and the same special tokens: the 256 byte characters, the same with
    the ``</w>`` end-of-word suffix, ``<|startoftext|>`` (512) and ``<|endoftext|>`` (513). Every
    word becomes its characters, so prompts tokenise longer than with the real vocabulary (a
    harder case for truncation, not an easier one). Returns (vocab path, merges path).
    """
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    merges.write_text("#version: 0.2\n", encoding="utf-8")
    return vocab, merges


def _tokenizer(arch: Architecture, config_path: str, scratch: Path):
    """A CLIPTokenizer with the preset's special tokens and length over the byte-level vocabulary."""
    from transformers import CLIPTokenizer

    settings = arch.config(config_path)
    vocab, merges = write_byte_level_vocabulary(scratch)
    return CLIPTokenizer(vocab=str(vocab), merges=str(merges), unk_token=settings["unk_token"],
                         bos_token=settings["bos_token"], eos_token=settings["eos_token"],
                         pad_token=settings["pad_token"], model_max_length=settings["model_max_length"])


# ----------------------------------------------------------------------------- random-weight folders
def write_random_model(preset: str, folder: str | Path, seed: int = 0) -> Path:
    """Write ``preset``'s published architecture with random weights to ``folder``; returns it.

    The layout is the hub's: a diffusers pipeline folder (model_index.json, unet/, vae/,
    text_encoder/, tokenizer/, scheduler/; no safety checker or feature extractor, which the
    project never loads) or a transformers folder (config.json, model.safetensors,
    preprocessor_config.json, and the tokenizer for CLIP). Weights are float32 safetensors from
    ``torch.manual_seed(seed)`` (the global RNG is restored afterwards). Disk: ~4.3 GB for an SD
    1.5 pipeline, ~5.2 GB for SD 2, 1.4 GB for ZoeDepth; writing one takes tens of seconds on a
    CPU (random initialisation and safetensors serialisation).
    """
    arch = load_architecture(preset)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]), _quiet():
        torch.manual_seed(seed)
        if arch.kind == "diffusers":
            _write_pipeline(arch, folder, seed)
        else:
            _write_transformers(arch, folder)
    return folder


@contextlib.contextmanager
def _quiet():
    """Silence the libraries' info lines and bars while building (the caller reports progress)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()           # "Writing model shards" bars
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _write_pipeline(arch: Architecture, folder: Path, seed: int) -> None:
    import diffusers
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    unet = build_unet(arch.preset, "cpu")
    # the VAE and text encoder each from their own seed: a text-to-image model and its inpainting
    # twin then carry the same ones, as the published pairs do (SD 1.5 and SD 1.5 inpainting ship
    # the same CLIP text encoder and VAE), so a run holds them once (priors/shared_components.py)
    torch.manual_seed(seed + 1)
    vae = build_vae(arch.preset, "cpu")
    torch.manual_seed(seed + 2)
    text_encoder = build_text_encoder(arch.preset, "cpu")
    scheduler_config = arch.config("scheduler/scheduler_config.json")
    scheduler = getattr(diffusers, scheduler_config["_class_name"]).from_config(_diffusers_kwargs(scheduler_config))
    tokenizer = _tokenizer(arch, "tokenizer/tokenizer_config.json", folder / ".tokenizer_source")
    index = arch.config("model_index.json")
    cls = StableDiffusionInpaintPipeline if index["_class_name"] == "StableDiffusionInpaintPipeline" \
        else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    for stale in (folder / ".tokenizer_source").iterdir():     # the copies in tokenizer/ are the ones used
        stale.unlink()
    (folder / ".tokenizer_source").rmdir()


def _write_transformers(arch: Architecture, folder: Path) -> None:
    model = build_transformers_model(arch.preset, "cpu")
    model.save_pretrained(folder, safe_serialization=True)
    # the processor settings are stored as published; writing them as-is keeps every field
    (folder / "preprocessor_config.json").write_text(
        json.dumps(arch.config("preprocessor_config.json"), indent=2) + "\n", encoding="utf-8")
    if arch.kind == "clip":
        scratch = folder / ".tokenizer_source"
        _tokenizer(arch, "tokenizer_config.json", scratch).save_pretrained(folder)
        for stale in scratch.iterdir():
            stale.unlink()
        scratch.rmdir()
