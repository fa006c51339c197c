"""THE weight-loading module: the only place in the project that calls ``from_pretrained`` or
touches a model hub.

A model reference is a preset name (``sd15``, see ``model_registry``), a Hugging Face hub id
(``owner/name``) or a local folder in the diffusers / transformers layout. Every load goes
through a local folder: a hub id is first resolved to its snapshot in the standard Hugging Face
cache (downloading the needed files unless offline), then loaded from there. When weights are
absent, a one-line ``MissingWeightsError`` says which model and how to get it. There is never a
silent fallback to an offline stand-in.

Offline mode: ``ModelLoadConfig.offline`` or the ``HF_HUB_OFFLINE`` environment variable.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import MissingWeightsError, RunFailedError, UserInputError
from .model_registry import ModelPreset, find_preset

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DTYPE_NAMES = ("fp32", "fp16", "bf16")
"""The weight/compute precisions by name (``DTYPES`` maps them to torch dtypes)."""
DTYPE_CHOICES = ("auto", *DTYPE_NAMES)
"""What a user may ask for: "auto" resolves with ``resolve_dtype``."""
FP16_ON_CPU = ("fp16 on the CPU: PyTorch's half-precision CPU kernels are slow (one SD convolution "
               "took 48.5 s in fp16 against 0.20 s in fp32 on this project's 2-core machine); use "
               "--dtype bf16 (fast on CPUs with AVX512-BF16/AMX) or fp32")


def cpu_has_fast_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises native bf16 arithmetic (AVX512-BF16 or AMX-BF16 flags in
    ``cpuinfo``; False where that file is unreadable, e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def __getattr__(name: str):
    """``DTYPES`` (name -> torch dtype), built on first use so that importing this module (e.g.
    for ``models list``, which must start fast) does not import torch."""
    if name == "DTYPES":
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PLAIN_DEVICE = re.compile(r"^(cpu|cuda|mps|xpu)(:\d+)?$")


def _device_type(device) -> str:
    """"cpu" / "cuda" / ... of a device or device string; torch parses (and refuses) anything
    other than the plain forms, which are read without importing torch."""
    if isinstance(device, str) and _PLAIN_DEVICE.match(device):
        return device.split(":")[0]
    import torch

    return torch.device(device).type


def resolve_dtype(name: str, device) -> str:
    """The weight/compute dtype that will run: "auto" -> "fp16" on CUDA, "bf16" on a CPU with
    fast bf16 (2.2-2.8x faster than fp32 in SD on such a CPU, BENCHMARKS.md), else "fp32"; an
    explicit name is kept. UserInputError for an unknown name or fp16 on the CPU.
    device: a torch.device or device string."""
    device_type = _device_type(device)
    if name not in DTYPE_CHOICES:
        raise UserInputError(f"dtype: {name!r} is not one of {', '.join(DTYPE_CHOICES)}")
    if name == "auto":
        if device_type == "cuda":
            return "fp16"
        return "bf16" if device_type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if name == "fp16" and device_type == "cpu":
        raise UserInputError(FP16_ON_CPU)
    return name

# Files never fetched for a hub id that is not a preset: original single-file checkpoints and
# other frameworks' weights (several GB each) and the SD safety checker (we do not run it).
_UNKNOWN_REPO_IGNORE = ("*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data",
                        "*.bin", "safety_checker/*", "*.fp16.*", "*.non_ema.*", "*.ema.*")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ModelLoadConfig:
    """How to load a network: where it runs and how memory is saved."""

    device: str = "cpu"
    """torch device string the network runs on ("cpu", "cuda", "cuda:1", "mps")."""
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    """Weight/compute precision (``resolve_dtype`` turns a user's "auto" into one of these).
    fp16 halves GPU memory and is refused on the CPU (its kernels are slow there); bf16 halves
    memory on both and is fast on CPUs with AVX512-BF16/AMX."""
    offline: bool = False
    """Never contact the hub; only local folders and the local cache (also set by HF_HUB_OFFLINE=1)."""
    cpu_offload: bool = False
    """Diffusion pipelines: keep sub-models on the CPU and move each to the GPU only while it runs
    (``enable_model_cpu_offload``); fp16 SD inpainting then fits in about 3-4 GB of GPU memory."""
    attention_slicing: bool = False
    """Diffusion pipelines: compute attention in slices (less peak memory, a little slower)."""
    cache_dir: str | None = None
    """Hugging Face cache folder; None = the standard one (HF_HUB_CACHE / ~/.cache/huggingface/hub)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for hub ids; None = the default branch."""
    variant: str | None = None
    """Weight file variant for diffusers folders, e.g. "fp16" for *.fp16.safetensors; None = plain files."""
    sequential_offload: bool = False
    """Diffusion pipelines on a GPU: stream each layer's weights to the GPU only while it runs
    (``enable_sequential_cpu_offload``): the least GPU memory (well under 1 GB for SD at 512 px)
    at several times the time of ``cpu_offload``; for GPUs that cannot hold the UNet."""
    lean_loading: bool = True
    """Load the UNet and VAE of a pipeline tensor by tensor in the running dtype
    (``load_component_lean``): peak memory while loading is the converted weights plus one
    tensor, not plus the component's whole fp32 file (3.4 GB for the SD UNet). False = diffusers'
    own loading (the twin the tests compare against)."""
    channels_last: bool = False
    """Store the UNet's and VAE's convolution weights channels-last (NHWC). Whether oneDNN / cuDNN
    run faster that way depends on the machine: benchmarks/bench_real_architectures.py
    --channels-last measures it before anyone turns it on by default (PriorsConfig.channels_last)."""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_NAMES:
            raise UserInputError(f"ModelLoadConfig.dtype: {self.dtype!r} is not one of {', '.join(DTYPE_NAMES)}")
        if self.cpu_offload and self.sequential_offload:
            raise UserInputError("ModelLoadConfig: cpu_offload and sequential_offload exclude each other; choose one")
        check_cache_dir(self.cache_dir)
        if not (self.cpu_offload or self.sequential_offload):   # offloaded weights wait on the CPU, run on the GPU
            resolve_dtype(self.dtype, self.device)          # the one rule: refuses fp16 on the CPU

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch dtype named by ``dtype``."""
        return __getattr__("DTYPES")[self.dtype]

    @property
    def is_offline(self) -> bool:
        """True when the hub must not be contacted (config flag or HF_HUB_OFFLINE)."""
        return self.offline or _env_offline()


def _env_offline() -> bool:
    return hub_offline_from_environment()


def hub_offline_from_environment() -> bool:
    """Whether the environment forbids the hub (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set true):
    only then do messages say "offline" (a run's own never-download default is not a mode the
    user chose)."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@dataclass(frozen=True)
class ModelSource:
    """A model reference resolved: where its files are or will come from.

    ref: what the user wrote. preset: the matching preset, if any.
    hub_id: the hub repository id (None for a local folder).
    folder: the local folder (None for a hub id not yet in the local cache).
    """

    ref: str
    preset: ModelPreset | None
    hub_id: str | None
    folder: Path | None

    @property
    def display_name(self) -> str:
        """Short human name: the preset name, else the hub id or folder."""
        if self.preset is not None:
            return self.preset.name
        return self.hub_id or str(self.folder)

    def how_to_get(self) -> str:
        """One clause telling the user how to obtain these weights."""
        if self.preset is not None:
            return f"get them with `scenedreamer models download {self.preset.name}`"
        if self.hub_id is not None:
            return f"get them with `scenedreamer models download {self.hub_id}` (or pass a local folder)"
        return "pass an existing model folder, a hub id or a preset name (`scenedreamer models list`)"


def expand_user_path(text: str | os.PathLike, where: str) -> Path:
    """``Path(text).expanduser()``, with the home of an unknown user ("~nosuchuser/...") one
    UserInputError naming ``where`` instead of pathlib's RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise UserInputError(f"{where} {text}: no such user's home folder") from None


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or "\\" in ref or ref.count("/") > 1 or not _HUB_ID.match(ref)


def resolve_source(ref: str | os.PathLike, load_config: ModelLoadConfig) -> ModelSource:
    """Resolve a preset name, hub id or local folder to a ModelSource (no download).

    A hub id already in the local cache gets ``folder`` set to its snapshot. A path that does
    not exist raises MissingWeightsError naming it.
    """
    text = str(ref)
    path = expand_user_path(text, "model")
    if path.is_dir():
        return ModelSource(text, find_preset(text), None, path)
    preset = find_preset(text)
    if preset is None and _looks_like_path(text):
        raise MissingWeightsError(f"model folder {text} does not exist; pass an existing folder, a hub id "
                                  f"(owner/name) or a preset name (`scenedreamer models list`)")
    for hub_id in candidate_hub_ids(text, preset):       # the first one already in the cache wins
        folder = cached_snapshot(hub_id, load_config.cache_dir, load_config.revision)
        if folder is not None:
            return ModelSource(text, preset, hub_id, folder)
    return ModelSource(text, preset, candidate_hub_ids(text, preset)[0], None)


def candidate_hub_ids(ref: str, preset: ModelPreset | None) -> tuple[str, ...]:
    """Hub ids that hold ``ref``'s files, in the order to try them: a preset's id then its mirrors
    (a hub id the user named explicitly first); any other hub id is tried alone."""
    if preset is None:
        return (ref,)
    if ref in preset.hub_ids:
        return (ref, *(i for i in preset.hub_ids if i != ref))
    return preset.hub_ids


def check_cache_dir(cache_dir: str | os.PathLike | None, where: str = "cache dir") -> None:
    """UserInputError when a given Hugging Face cache folder exists but is not a folder (a
    missing one is fine: a download creates it, a lookup finds nothing in it)."""
    if cache_dir is None:
        return
    path = expand_user_path(cache_dir, where)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{where} {path}: exists and is not a folder")


def cached_snapshot(hub_id: str, cache_dir: str | None = None, revision: str | None = None) -> Path | None:
    """The local snapshot folder of ``hub_id`` in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(hub_id, cache_dir=cache_dir, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        return None


def safetensors_sizes(path: Path) -> tuple[int, int]:
    """(tensor elements, tensor data bytes) of a .safetensors file, read from its JSON header only
    (the format: an 8-byte little-endian header length, then the header, whose entries give each
    tensor's shape and byte range). RunFailedError naming the file when the header is unreadable."""
    header, _ = safetensors_header(path)
    try:
        tensors = list(header.values())
        return (sum(math.prod(t["shape"]) for t in tensors),
                sum(t["data_offsets"][1] - t["data_offsets"][0] for t in tensors))
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise RunFailedError(f"{path}: not a readable safetensors file ({err})") from None


def safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    """(tensor name -> {dtype, shape, data_offsets}, byte offset of the data) of a .safetensors
    file, from its header alone (8-byte little-endian length, then JSON; ``__metadata__``
    dropped). RunFailedError naming the file when the header is unreadable."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= 100_000_000:
                raise ValueError(f"header length {size}")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        header.pop("__metadata__", None)
        return header, 8 + size
    except (OSError, ValueError) as err:
        raise RunFailedError(f"{path}: not a readable safetensors file ({err})") from None


def _weight_components(folder: Path) -> list[Path]:
    """The sub-folders whose weights a loader reads: unet/, vae/, text_encoder/ of a diffusers
    pipeline, the folder itself for a transformers model."""
    if (folder / "model_index.json").is_file():
        return [folder / n for n in ("unet", "vae", "text_encoder")]
    return [folder]


def _component_sizes(sub: Path, variant: str | None) -> tuple[int, int] | None:
    """(elements, file bytes) of the weight files a loader reads from one component folder: the
    ``variant``'s safetensors when given and present, else the plain safetensors, else PyTorch
    .bin files counted as fp32 (bytes / 4 elements). None when it holds no weights."""
    if not sub.is_dir():
        return None
    files = sorted(p for p in sub.iterdir() if p.is_file())
    tagged = [p for p in files if p.name.endswith(".safetensors") and variant and f".{variant}." in p.name]
    chosen = tagged or [p for p in files if p.name.endswith(".safetensors") and len(p.name.split(".")) == 2]
    if chosen:
        sizes = [safetensors_sizes(p) for p in chosen]
        return sum(n for n, _ in sizes), sum(b for _, b in sizes)
    bins = [p for p in files if p.name.endswith(".bin") and len(p.name.split(".")) == 2]
    if not bins:
        return None
    nbytes = sum(p.stat().st_size for p in bins)
    return nbytes // 4, nbytes


def weight_parameter_count(folder: Path, variant: str | None = None, skip: tuple[str, ...] = ()) -> int | None:
    """Parameters the loaders read from a model folder: unet/, vae/ and text_encoder/ of a
    diffusers pipeline, the top-level weights of a transformers model. Counted exactly from
    safetensors headers (the ``variant``'s files when given, e.g. "fp16"); a folder with only
    PyTorch .bin weights is estimated as fp32 (file bytes / 4); ``skip``: pipeline components left
    out (a VAE a tiny VAE replaces). None when no weights are found."""
    subs = [sub for sub in _weight_components(folder) if sub.name not in skip or sub == folder]
    sizes = [s for s in (_component_sizes(sub, variant) for sub in subs) if s]
    return sum(n for n, _ in sizes) if sizes else None


def largest_component_sizes(folder: Path, variant: str | None = None,
                            skip: tuple[str, ...] = ()) -> tuple[int, int] | None:
    """(elements, file bytes) of the largest weight component a loader reads from ``folder``
    (see ``weight_parameter_count``), leaving out the pipeline components named in ``skip``
    (e.g. ``LEAN_COMPONENTS``, which load without a file-dtype copy): the library loaders
    convert one component at a time from a memory-mapped file, so that component's file copy
    is the loading overhead. None when no weights are found."""
    subs = [sub for sub in _weight_components(folder) if sub.name not in skip or sub == folder]
    sizes = [s for s in (_component_sizes(sub, variant) for sub in subs) if s]
    return max(sizes, key=lambda s: s[1]) if sizes else None


def _has_weights(sub: Path) -> bool:
    """Whether a component folder holds a weight file of an accepted kind (safetensors or .bin)."""
    return sub.is_dir() and any(p.name.endswith(_WEIGHT_SUFFIXES) for p in sub.iterdir())


def missing_weight_components(folder: Path) -> list[str]:
    """Parts of a model folder that lack weights ([] = complete enough to load).

    A diffusers pipeline folder (model_index.json) needs weights in unet/, vae/ and
    text_encoder/; a transformers folder (config.json) needs a weight file at its top level.
    """
    if (folder / "model_index.json").is_file():
        return [name for name in ("unet", "vae", "text_encoder") if not _has_weights(folder / name)]
    if (folder / "config.json").is_file():
        return [] if _has_weights(folder) else ["model weights"]
    if lora_file(folder) is not None:
        return []
    return ["model_index.json / config.json"]


def lora_file(folder: Path) -> Path | None:
    """The LoRA weight file of a folder without any config (a diffusers / kohya LoRA): its
    ``pytorch_lora_weights.safetensors``, else its only ``.safetensors`` file; None otherwise."""
    if not folder.is_dir() or (folder / "config.json").exists() or (folder / "model_index.json").exists():
        return None
    if (folder / "pytorch_lora_weights.safetensors").is_file():
        return folder / "pytorch_lora_weights.safetensors"
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(".safetensors")]
    return files[0] if len(files) == 1 else None


def _is_diffusers_model(folder: Path) -> bool:
    """Whether ``folder/config.json`` is a diffusers single model's (it names ``_class_name``)."""
    try:
        return "_class_name" in json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


# Files each layout needs besides weights (weights are checked per component: .safetensors or .bin,
# plain or a variant such as fp16).
_DIFFUSERS_FILES = ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json",
                    "text_encoder/config.json", "unet/config.json", "vae/config.json")
_DIFFUSERS_WEIGHTS = {"text_encoder": "model", "unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model"}
_TRANSFORMERS_FILES = ("config.json", "preprocessor_config.json")


def missing_files(folder: Path) -> list[str]:
    """Files a local model folder lacks, relative to it ([] = complete enough to load).

    A diffusers Stable Diffusion folder (model_index.json) needs its configs, the CLIP BPE
    tokenizer and weights for text_encoder, unet and vae; a transformers folder (config.json)
    needs its image settings, weights and, for a CLIP model, the tokenizer. A weight is named as
    ``unet/diffusion_pytorch_model.safetensors`` when no weight file of any accepted kind is there.
    """
    def bpe_files(sub: Path, prefix: str) -> list[str]:   # a fast tokenizer.json stands in for vocab + merges
        if (sub / "tokenizer.json").is_file():
            return []
        return [prefix + name for name in ("vocab.json", "merges.txt") if not (sub / name).is_file()]

    if (folder / "model_index.json").is_file():
        missing = [name for name in _DIFFUSERS_FILES if not (folder / name).is_file()]
        missing += bpe_files(folder / "tokenizer", "tokenizer/")
        missing += [f"{sub}/{stem}.safetensors" for sub, stem in _DIFFUSERS_WEIGHTS.items()
                    if not _has_weights(folder / sub)]
        return missing
    if (folder / "config.json").is_file() and _is_diffusers_model(folder):   # e.g. AutoencoderTiny
        return [] if _has_weights(folder) else ["diffusion_pytorch_model.safetensors"]
    if (folder / "config.json").is_file():
        needed = list(_TRANSFORMERS_FILES)
        try:
            is_clip = "clip" in str(json.loads((folder / "config.json").read_text()).get("model_type", ""))
        except (OSError, ValueError, AttributeError):
            return ["config.json (unreadable)"]
        if is_clip:
            needed.append("tokenizer_config.json")
        missing = [name for name in needed if not (folder / name).is_file()]
        missing += bpe_files(folder, "") if is_clip else []
        return missing + ([] if _has_weights(folder) else ["model.safetensors"])
    if lora_file(folder) is not None:
        return []
    return ["model_index.json or config.json (or a LoRA's pytorch_lora_weights.safetensors)"]


def weight_variant(folder: Path) -> str | None:
    """The weight variant ("fp16", ...) a diffusers folder holds when it has no plain weight file
    for some component (a repository that ships only ``*.fp16.safetensors``), else None."""
    if not (folder / "model_index.json").is_file():
        return None
    found = None
    for sub, stem in _DIFFUSERS_WEIGHTS.items():
        files = [p.name for p in (folder / sub).glob(f"{stem}*") if p.name.endswith(_WEIGHT_SUFFIXES)]
        if files and not any(n in (f"{stem}.safetensors", f"{stem}.bin") for n in files):
            found = files[0][len(stem) + 1:].split(".")[0]     # diffusion_pytorch_model.fp16.safetensors -> fp16
    return found


def ensure_local_folder(ref: str | os.PathLike, load_config: ModelLoadConfig) -> tuple[ModelSource, Path]:
    """A local folder holding the model's files, downloading a hub id unless offline.

    Raises MissingWeightsError (one line: which model, how to get it) when the files are absent
    and cannot be fetched.
    """
    source = resolve_source(ref, load_config)
    folder = source.folder
    if folder is None or missing_files(folder):
        if source.hub_id is None or load_config.is_offline:
            why = (("offline mode is on (HF_HUB_OFFLINE) and " if hub_offline_from_environment() else "")
                   + "they are not in the local cache") if source.hub_id else "files are missing"
            if folder is not None:
                why = f"{folder} lacks {', '.join(missing_files(folder))}"
            raise MissingWeightsError(f"weights for {source.display_name} not found ({why}); {source.how_to_get()}")
        try:
            folder = download_snapshot(source.hub_id, source.preset, load_config.cache_dir, load_config.revision,
                                       variant=load_config.variant)
        except RunFailedError as err:
            raise MissingWeightsError(f"weights for {source.display_name} are not local and could not be "
                                      f"downloaded ({err}); {source.how_to_get()}") from None
        missing = missing_files(folder)
        if missing:
            raise MissingWeightsError(f"weights for {source.display_name}: {folder} lacks {', '.join(missing)} "
                                      f"after download; {source.how_to_get()}")
    return source, folder


def download_snapshot(hub_id: str, preset: ModelPreset | None = None, cache_dir: str | None = None,
                      revision: str | None = None, endpoint: str | None = None,
                      variant: str | None = None) -> Path:
    """Download the files a model needs into the Hugging Face cache; returns the snapshot folder.

    Presets fetch only their ``allow_patterns``; other hub ids skip single-file checkpoints,
    other frameworks' weights and the safety checker. ``variant`` ("fp16") fetches
    ``*.fp16.safetensors`` instead of the plain files. A repository that does not exist (404) is
    skipped for the preset's next mirror. A component that the repository ships only as a ``.bin``
    or only as an fp16 variant is fetched in that form in a second pass (the loader takes both).
    Offline mode (HF_HUB_OFFLINE) or a network / hub failure raises RunFailedError with one line.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError

    if _env_offline():
        raise RunFailedError(f"cannot download {hub_id}: offline mode is on (HF_HUB_OFFLINE is set)")
    kwargs: dict[str, Any] = dict(cache_dir=cache_dir, revision=revision, endpoint=endpoint)
    if preset is not None:
        # variants exist for diffusers pipelines; depth repositories have plain files only
        suffix = (f".{variant}.safetensors" if variant and preset.task in ("text2image", "inpaint")
                  else ".safetensors")
        kwargs["allow_patterns"] = [p.replace(".safetensors", suffix) for p in preset.allow_patterns]
    else:
        kwargs["ignore_patterns"] = [p for p in _UNKNOWN_REPO_IGNORE if not (variant and f".{variant}." in p)]
    not_found = []
    for candidate in candidate_hub_ids(hub_id, preset):
        try:
            folder = Path(snapshot_download(candidate, **kwargs))
        except HFValidationError as err:
            raise UserInputError(f"{candidate!r} is not a valid hub id ({_one_line(err)})") from None
        except RepositoryNotFoundError:
            not_found.append(candidate)
            continue
        except (OSError, HfHubHTTPError) as err:
            raise RunFailedError(f"cannot download {candidate}: {_one_line(err)}") from None
        fallback = _fallback_weight_patterns(missing_weight_components(folder))
        if fallback:
            try:
                folder = Path(snapshot_download(candidate, cache_dir=cache_dir, revision=revision,
                                                endpoint=endpoint, allow_patterns=fallback))
            except (OSError, HfHubHTTPError) as err:
                raise RunFailedError(f"cannot download {candidate}: {_one_line(err)}") from None
        return folder
    raise RunFailedError(f"cannot download {hub_id}: no such repository on the hub (tried {', '.join(not_found)})")


def _fallback_weight_patterns(missing: list[str]) -> list[str]:
    """Second-pass patterns for components whose safetensors file a repository lacks: the
    PyTorch ``.bin`` twin and the fp16 safetensors variant (some repositories ship only one)."""
    patterns = []
    for component in missing:
        if component in _DIFFUSERS_WEIGHTS:
            stem = f"{component}/{_DIFFUSERS_WEIGHTS[component]}"
            patterns += [f"{stem}.bin", f"{stem}.fp16.safetensors"]
        elif component == "model weights":
            patterns += ["pytorch_model.bin"]
    return patterns


@dataclass(frozen=True)
class LocalStatus:
    """Whether a model's files are on this machine.

    source: the resolved reference; folder: its local folder (None = not in the cache);
    missing: parts lacking weights in that folder (empty when complete).
    """

    source: ModelSource
    folder: Path | None
    missing: tuple[str, ...]

    @property
    def present(self) -> bool:
        """True when the folder exists and has all weights."""
        return self.folder is not None and not self.missing


def local_status(ref: str | os.PathLike, cache_dir: str | None = None) -> LocalStatus:
    """Look for a preset / hub id in the local Hugging Face cache (or check a local folder).

    Never contacts the hub. A nonexistent local path gives MissingWeightsError (it cannot be
    looked up anywhere else).
    """
    source = resolve_source(ref, ModelLoadConfig(cache_dir=cache_dir, offline=True))
    folder = source.folder
    return LocalStatus(source, folder, tuple(missing_files(folder)) if folder else ())


def download_model(ref: str, cache_dir: str | None = None, revision: str | None = None,
                   endpoint: str | None = None, variant: str | None = None) -> Path:
    """Download a preset or hub id into the Hugging Face cache; returns the snapshot folder.

    endpoint: hub URL (None = the default / HF_ENDPOINT); variant: e.g. "fp16" weight files
    (half the download; load them with ``ModelLoadConfig(variant="fp16")``).
    RunFailedError (one line) when offline or the hub cannot be reached; UserInputError for a
    reference that is not a preset or hub id.
    """
    from .model_registry import PRESETS

    check_cache_dir(cache_dir)
    preset = find_preset(ref)
    if preset is None and (expand_user_path(ref, "model").exists() or _looks_like_path(ref)):
        raise UserInputError(f"{ref!r} is not a preset name or hub id; known presets: {', '.join(PRESETS)}")
    hub_id = candidate_hub_ids(ref, preset)[0]
    folder = download_snapshot(hub_id, preset, cache_dir, revision, endpoint, variant)
    missing = missing_files(folder)
    if missing:
        raise RunFailedError(f"downloaded {hub_id} to {folder} but it lacks {', '.join(missing)}")
    return folder


def _quiet_library_output() -> None:
    """Turn off transformers' and diffusers' own loading bars and info/warning lines (e.g.
    "Loading weights", the tokenizer's "182 > 77" notice): a command's progress is its own
    display, fed by our events, and truncation is reported by ``priors.diffusion.truncate_prompt`` in one warning."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    try:
        import diffusers
    except ImportError:             # pragma: no cover - diffusers is a core dependency
        return
    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Stable Diffusion (diffusers)
# --------------------------------------------------------------------------------------------

@dataclass
class LoadedPipelines:
    """The Stable Diffusion pipelines a run has loaded, as (folder, weight variant, pipeline,
    the shareable components it holds as its folder has them: not a VAE a tiny VAE replaced nor
    a text encoder a LoRA changed): a pipeline loaded later holds the components it shares with
    one of them (the same text encoder and tokenizer, the same VAE: shared_components.py) once,
    as the same modules."""

    entries: list[tuple[Path, str | None, Any, frozenset[str]]] = field(default_factory=list)


def load_sd_pipeline(ref: str | os.PathLike, load_config: ModelLoadConfig, inpainting: bool = False,
                     lora: str | os.PathLike | None = None, tiny_vae: str | os.PathLike | None = None,
                     loaded: LoadedPipelines | None = None):
    """Load a Stable Diffusion pipeline (1.x / 2.x families) from a preset, hub id or folder.

    loaded: the run's pipelines so far; components identical to one of theirs are taken from it
        instead of being read again (not with CPU offload, whose hooks belong to one pipeline;
        not the text encoder when the LoRA changes it), and the new pipeline joins the list.

    lora: a LoRA (preset such as ``lcm-lora-sd15``, hub id or folder) fused into the UNet after
        loading (``load_lora``); None = none.
    tiny_vae: an AutoencoderTiny (preset ``taesd``, hub id or folder) loaded in place of the
        pipeline's own VAE, whose weights are then never read (``load_tiny_vae``); None = the VAE.

    inpainting: False -> ``diffusers.StableDiffusionPipeline``; True ->
        ``StableDiffusionInpaintPipeline`` (a 9-channel inpainting UNet is used as such; a plain
        4-channel UNet inpaints by latent blending, which is weaker - a log line says so).
    The safety checker is not loaded. Device, dtype, CPU offload and attention slicing follow
    ``load_config``; the progress bar is off (callers report progress through events).
    Returns the pipeline; its ``unet``, ``vae``, ``text_encoder``, ``tokenizer`` and ``scheduler``
    are the components other priors (the refiner) reuse.
    """
    _quiet_library_output()             # first: importing the pipelines already logs warnings
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    source, folder = ensure_local_folder(ref, load_config)
    if not (folder / "model_index.json").is_file():
        raise UserInputError(f"{source.display_name}: {folder} is not a diffusers pipeline folder "
                             f"(no model_index.json)")
    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    # a folder holding only variant weights (a repository that ships only *.fp16.safetensors)
    # loads as that variant; the dtype stays load_config's (diffusers casts on load)
    variant = load_config.variant or weight_variant(folder)
    extra: dict[str, Any] = {}
    if tiny_vae is not None:
        extra["vae"] = load_tiny_vae(tiny_vae, load_config)
    keeps_text_encoder = loaded is None or shares_text_encoder(lora, load_config)
    if loaded is not None and loaded.entries:
        extra.update(_shared_components(loaded, folder, variant, load_config, keeps_text_encoder, skip=tuple(extra)))
    if load_config.lean_loading and variant is None:
        extra.update(_lean_components(folder, load_config, skip=tuple(extra)))
    try:
        # low_cpu_mem_usage: each component is built on the meta device and its tensors are
        # converted to the running dtype one at a time as they are read (no fp32 model copy)
        pipe = cls.from_pretrained(folder, dtype=load_config.torch_dtype, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False,
                                   variant=variant, local_files_only=True, low_cpu_mem_usage=True, **extra)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"cannot load {source.display_name} from {folder}: {_one_line(err)}; "
                                  f"{source.how_to_get()}") from None
    if tiny_vae is not None:
        check_tiny_vae_fits(extra["vae"], pipe.unet, str(tiny_vae), source.display_name)
    if lora is not None:
        load_lora(pipe, lora, load_config)
    if inpainting and pipe.unet.config.in_channels != 9:
        log.info("%s has a %d-channel UNet (not an inpainting model): inpainting by latent blending",
                 source.display_name, pipe.unet.config.in_channels)
    place_pipeline(pipe, load_config)
    pipe.set_progress_bar_config(disable=True)
    if loaded is not None:
        from .shared_components import SHAREABLE

        changed = {"vae"} if tiny_vae is not None else set()
        if not keeps_text_encoder:
            changed.add("text_encoder")
        loaded.entries.append((folder, variant, pipe, frozenset(SHAREABLE) - changed))
    return pipe


def shares_text_encoder(lora: str | os.PathLike | None, load_config: ModelLoadConfig) -> bool:
    """Whether pipelines loaded with ``lora`` may share a text encoder: not when the LoRA is
    fused into it (each pipeline would fuse it into the one module)."""
    from .shared_components import lora_touches_text_encoder

    if lora is None:
        return True
    try:
        _, folder = ensure_local_folder(lora, load_config)
    except MissingWeightsError:
        return False            # load_lora names what is missing
    weights = lora_file(folder)
    return weights is not None and not lora_touches_text_encoder(weights)


def _shared_components(loaded: LoadedPipelines, folder: Path, variant: str | None, load_config: ModelLoadConfig,
                       keeps_text_encoder: bool, skip: tuple[str, ...]) -> dict[str, Any]:
    """The components of the pipeline in ``folder`` that an already loaded pipeline holds
    (``keeps_text_encoder``: the run's LoRA leaves the text encoder as the folder has it)."""
    from .shared_components import COMPANIONS, SHAREABLE, same_component

    if load_config.cpu_offload or load_config.sequential_offload:
        return {}
    shared: dict[str, Any] = {}
    for name in SHAREABLE:
        if name in skip or (name == "text_encoder" and not keeps_text_encoder):
            continue
        for other_folder, other_variant, pipe, as_in_folder in loaded.entries:
            if name in as_in_folder and same_component(folder, other_folder, name, variant, other_variant):
                for part in (name, *COMPANIONS.get(name, ())):
                    shared[part] = getattr(pipe, part)
                log.info("%s: the %s of %s is the same model; held once", folder, name, other_folder)
                break
    return shared


def _lean_components(folder: Path, load_config: ModelLoadConfig, skip: tuple[str, ...]) -> dict[str, Any]:
    """The LEAN_COMPONENTS of a pipeline folder loaded by ``load_component_lean`` (those it can
    load; the others, and any in ``skip``, are left to diffusers)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    classes = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}
    loaded = {}
    for name in LEAN_COMPONENTS:
        if name in skip:
            continue
        model = load_component_lean(folder / name, classes[name], load_config.torch_dtype)
        if model is not None:
            loaded[name] = model
    return loaded


def place_pipeline(pipe, load_config: ModelLoadConfig) -> None:
    """Move a diffusers pipeline to its device, or set up model CPU offload; attention slicing.

    CPU offload needs an accelerator device (cuda / xpu / mps); asking for it with device "cpu"
    is a UserInputError rather than a silent no-op.
    """
    import torch

    if load_config.attention_slicing:
        pipe.enable_attention_slicing()
    if load_config.channels_last:
        for model in (pipe.unet, pipe.vae):
            model.to(memory_format=torch.channels_last)
    if load_config.sequential_offload:
        device = torch.device(load_config.device)
        if device.type == "cpu":
            raise UserInputError("ModelLoadConfig.sequential_offload needs a GPU device (device is 'cpu')")
        pipe.enable_sequential_cpu_offload(gpu_id=device.index, device=device.type)
    elif load_config.cpu_offload:
        device = torch.device(load_config.device)
        if device.type == "cpu":
            raise UserInputError("ModelLoadConfig.cpu_offload needs a GPU device (device is 'cpu')")
        pipe.enable_model_cpu_offload(gpu_id=device.index, device=device.type)
    else:
        pipe.to(load_config.device)


LEAN_COMPONENTS = ("unet", "vae")
"""Pipeline components ``load_component_lean`` loads tensor by tensor in the running dtype (the
UNet is 80 % of a Stable Diffusion download; the text encoder goes through transformers)."""

_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
                       "I64": "int64", "I32": "int32"}


def read_safetensors_lean(path: Path, dtype) -> dict[str, Any]:
    """Every tensor of a .safetensors file, each read with a plain file read (no memory map)
    and converted to ``dtype`` (floating tensors only) before the next is read: the process
    holds the converted tensors plus one file-dtype tensor, never the whole file's copy
    (a memory-mapped file's pages count in the resident memory while it is mapped).
    RunFailedError naming the file when it is unreadable."""
    import torch

    header, base = safetensors_header(path)
    try:
        with open(path, "rb") as f:
            out = {}
            for name, info in header.items():
                start, end = info["data_offsets"]
                f.seek(base + start)
                data = bytearray(f.read(end - start))
                file_dtype = getattr(torch, _SAFETENSORS_DTYPES[info["dtype"]])
                tensor = torch.frombuffer(data, dtype=file_dtype) if data else torch.empty(0, dtype=file_dtype)
                tensor = tensor.reshape(info["shape"])
                out[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
                del data
        return out
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise RunFailedError(f"{path}: not a readable safetensors file ({err})") from None


def load_component_lean(folder: Path, cls, dtype):
    """A diffusers model (``cls``: UNet2DConditionModel, AutoencoderKL) from ``folder``
    (config.json + diffusion_pytorch_model.safetensors) built on the meta device and given its
    tensors in ``dtype`` one at a time (``read_safetensors_lean``): no fp32 copy beside the
    converted one. None when the folder is not in that plain layout or its tensor names are not
    exactly the model's (an older checkpoint layout diffusers renames on load): the caller then
    loads it through diffusers."""
    import torch

    weights = folder / "diffusion_pytorch_model.safetensors"
    if not (folder / "config.json").is_file() or not weights.is_file():
        return None
    config = cls.load_config(folder)
    with torch.device("meta"):
        model = cls.from_config(config)
    expected = set(model.state_dict())
    if set(safetensors_shapes(weights)) != expected:
        return None
    state = read_safetensors_lean(weights, dtype)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError:            # a shape the config does not describe: let diffusers say so
        return None
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        return None
    return model.eval()


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """tensor name -> shape of a .safetensors file, read from its header only (no tensor data).
    RunFailedError naming the file when the header is unreadable."""
    header, _ = safetensors_header(path)
    try:
        return {k: list(t["shape"]) for k, t in header.items()}
    except (KeyError, TypeError) as err:
        raise RunFailedError(f"{path}: not a readable safetensors file ({err})") from None


def load_tiny_vae(ref: str | os.PathLike, load_config: ModelLoadConfig):
    """Load a diffusers ``AutoencoderTiny`` (TAESD: preset ``taesd``, hub id or folder) in the
    running dtype. Before any weight is read, every tensor of its file is checked against the
    shape its config.json asks for: a mismatch is one UserInputError naming the tensor."""
    import torch

    _quiet_library_output()
    from diffusers import AutoencoderTiny

    source, folder = ensure_local_folder(ref, load_config)
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not (folder / "config.json").is_file() or not weights.is_file():
        raise MissingWeightsError(f"tiny VAE {source.display_name}: {folder} lacks config.json or "
                                  f"diffusion_pytorch_model.safetensors; {source.how_to_get()}")
    try:
        config = AutoencoderTiny.load_config(folder)
        with torch.device("meta"):              # shapes only: no memory, no initialisation
            expected = {k: list(v.shape) for k, v in AutoencoderTiny.from_config(config).state_dict().items()}
    except (OSError, ValueError, TypeError) as err:
        raise UserInputError(f"tiny VAE {source.display_name}: {folder}/config.json is not an AutoencoderTiny "
                             f"config ({_one_line(err)})") from None
    _check_shapes(safetensors_shapes(weights), expected, f"tiny VAE {source.display_name} ({weights})",
                  "its config.json")
    try:
        vae = AutoencoderTiny.from_pretrained(folder, dtype=load_config.torch_dtype, local_files_only=True,
                                              low_cpu_mem_usage=True)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"cannot load {source.display_name} from {folder}: {_one_line(err)}; "
                                  f"{source.how_to_get()}") from None
    return vae.eval()


def _check_shapes(found: dict[str, list[int]], expected: dict[str, list[int]], what: str, against: str) -> None:
    """UserInputError naming the first tensor of ``found`` whose shape differs from ``expected``
    (or that ``expected`` lacks), then the first expected tensor the file lacks."""
    for name, shape in found.items():
        if name not in expected:
            raise UserInputError(f"{what}: tensor {name} is not part of the model {against} describes")
        if shape != expected[name]:
            raise UserInputError(f"{what}: tensor {name} has shape {shape}, {against} needs {expected[name]}")
    for name in expected:
        if name not in found:
            raise UserInputError(f"{what}: tensor {name} is missing from the file")


def check_tiny_vae_fits(vae, unet, vae_label: str, base_label: str) -> None:
    """UserInputError when a tiny VAE's latent space is not the UNet's: its decoder's first
    tensor (``decoder.layers.0.weight``, which reads the latents) takes ``latent_channels``;
    a UNet takes that many (text-to-image) or 2 x that + 1 (inpainting: latents, masked-image
    latents, mask)."""
    channels = int(vae.config.latent_channels)
    unet_in = int(unet.config.in_channels)
    if unet_in not in (channels, 2 * channels + 1):
        raise UserInputError(f"tiny VAE {vae_label}: tensor decoder.layers.0.weight reads {channels} latent "
                             f"channels, but {base_label}'s UNet takes {unet_in} input channels (a "
                             f"{(unet_in - 1) // 2 if unet_in % 2 else unet_in}-channel latent space): "
                             "use the tiny VAE of the base model's family")


_LORA_SUFFIXES = {".lora_A.weight": "in", ".lora.down.weight": "in", ".lora_down.weight": "in",
                  ".lora_B.weight": "out", ".lora.up.weight": "out", ".lora_up.weight": "out"}
"""LoRA tensor name endings (peft, diffusers, kohya) -> which side of the base layer they meet."""


def _layer_sides(module) -> tuple[int, int] | None:
    """(input, output) features of a Linear / Conv layer; None for other modules."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Conv2d):
        return module.in_channels, module.out_channels
    return None


def check_lora_matches(state: dict[str, Any], pipe, label: str) -> int:
    """Check a LoRA state dict (diffusers' converted names: ``unet.<layer>.lora_A.weight`` ...)
    against the pipeline it goes into: every tensor must name a Linear / Conv layer of the UNet or
    text encoder, its down tensor must read that layer's input features and its up tensor write
    its output features. UserInputError naming the first tensor that does not fit; returns the
    number of layers the LoRA changes (UserInputError when none)."""
    roots = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
    layers = set()
    for name, tensor in state.items():
        suffix = next((s for s in _LORA_SUFFIXES if name.endswith(s)), None)
        if suffix is None:
            continue                                    # alphas, biases: no shape to match
        prefix, _, path = name[: -len(suffix)].partition(".")
        if prefix not in roots:
            raise UserInputError(f"{label}: tensor {name} is for {prefix!r}, not the UNet or the text encoder")
        try:
            sides = _layer_sides(roots[prefix].get_submodule(path))
        except AttributeError:
            sides = None
        if sides is None:
            raise UserInputError(f"{label}: tensor {name} names no Linear / Conv layer of the base model's "
                                 f"{prefix} (a LoRA of another model family?)")
        shape = list(tensor.shape)
        side = _LORA_SUFFIXES[suffix]
        want, got = (sides[0], shape[1]) if side == "in" else (sides[1], shape[0])
        if got != want:
            raise UserInputError(f"{label}: tensor {name} has shape {shape}, but the base model's layer "
                                 f"{prefix}.{path} has {want} {'input' if side == 'in' else 'output'} features")
        layers.add(name[: -len(suffix)])
    if not layers:
        raise UserInputError(f"{label}: the file holds no LoRA tensors (lora_A / lora_B or lora_down / lora_up)")
    return len(layers)


def load_lora(pipe, ref: str | os.PathLike, load_config: ModelLoadConfig, scale: float = 1.0) -> ModelSource:
    """Fuse a LoRA (preset such as ``lcm-lora-sd15``, hub id or folder holding one
    ``.safetensors``) into ``pipe``'s UNet / text encoder, through diffusers' PEFT backend.

    Every tensor is checked against the base layers first (``check_lora_matches``: one line
    naming a mismatching tensor). The low-rank weights are then fused into the base weights and
    unloaded, so sampling costs what it did without the LoRA. Returns where it came from."""
    source, folder = ensure_local_folder(ref, load_config)
    path = lora_file(folder)
    if path is None:
        raise MissingWeightsError(f"LoRA {source.display_name}: {folder} holds no pytorch_lora_weights.safetensors "
                                  f"(nor a single .safetensors file); {source.how_to_get()}")
    label = f"LoRA {source.display_name} ({path})"
    try:
        loaded = pipe.lora_state_dict(str(folder), weight_name=path.name, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"{label}: cannot read it ({_one_line(err)})") from None
    state = loaded[0] if isinstance(loaded, tuple) else loaded
    check_lora_matches(state, pipe, label)
    try:
        pipe.load_lora_weights(str(folder), weight_name=path.name, adapter_name="fast", local_files_only=True)
        pipe.fuse_lora(lora_scale=scale, adapter_names=["fast"])
        pipe.unload_lora_weights()
    except (ValueError, RuntimeError, KeyError) as err:
        raise UserInputError(f"{label}: does not fit the base model ({_one_line(err)})") from None
    return source


# --------------------------------------------------------------------------------------------
# Depth networks (transformers)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedDepthNetwork:
    """A transformers depth model with its preprocessing settings.

    model: the ``*ForDepthEstimation`` module (eval mode, on the configured device/dtype).
    processor: its ``*ImageProcessorPil`` (settings only: size, multiple, mean/std, padding).
    model_type: transformers' model_type ("zoedepth", "depth_anything", "dpt").
    source: where it came from.
    """

    model: Any
    processor: Any
    model_type: str
    source: ModelSource


def load_depth_network(ref: str | os.PathLike, load_config: ModelLoadConfig) -> LoadedDepthNetwork:
    """Load ZoeDepth, Depth Anything (V1/V2) or DPT from a preset, hub id or local folder.

    The image processor is the PIL backend class (the torchvision one cannot be imported here);
    ``depth_networks`` reads only its settings and does the resizing itself, on the model's device.
    """
    import json

    _quiet_library_output()
    from transformers import AutoModelForDepthEstimation, DPTImageProcessorPil, ZoeDepthImageProcessorPil

    source, folder = ensure_local_folder(ref, load_config)
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"]
    except (OSError, ValueError, KeyError) as err:
        raise UserInputError(f"{source.display_name}: {folder}/config.json is not a transformers model "
                             f"config ({_one_line(err)})") from None
    processor_cls = {"zoedepth": ZoeDepthImageProcessorPil, "depth_anything": DPTImageProcessorPil,
                     "dpt": DPTImageProcessorPil}.get(model_type)
    if processor_cls is None:
        raise UserInputError(f"{source.display_name}: model type {model_type!r} is not a supported depth "
                             f"network (zoedepth, depth_anything, dpt)")
    try:
        model = AutoModelForDepthEstimation.from_pretrained(folder, dtype=load_config.torch_dtype,
                                                            local_files_only=True)
        processor = processor_cls.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"cannot load {source.display_name} from {folder}: {_one_line(err)}; "
                                  f"{source.how_to_get()}") from None
    model.to(load_config.device).eval()
    return LoadedDepthNetwork(model, processor, model_type, source)


# --------------------------------------------------------------------------------------------
# CLIP (transformers), for the evaluation's CLIP score
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadedClip:
    """A transformers CLIPModel with its tokenizer and image settings.

    model: ``CLIPModel`` (eval mode, on the configured device/dtype).
    tokenizer: its tokenizer (``CLIPTokenizer`` / fast twin).
    image_size: square input side in pixels the vision tower expects.
    mean, std: per-channel RGB normalisation (images in [0, 1]).
    source: where it came from.
    """

    model: Any
    tokenizer: Any
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: ModelSource


# OpenAI CLIP's normalisation, used when a folder has no preprocessor_config.json
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip(ref: str | os.PathLike, load_config: ModelLoadConfig) -> LoadedClip:
    """Load a CLIP model (preset name such as ``clip-vit-b32``, hub id or local folder).

    The image preprocessing settings are read from preprocessor_config.json (the transformers
    image processor classes themselves are not used: the resizing happens in torch, on the
    model's device). Absent weights raise MissingWeightsError with how to get them.
    """
    import json

    _quiet_library_output()
    from transformers import AutoTokenizer, CLIPModel

    source, folder = ensure_local_folder(ref, load_config)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserInputError(f"{source.display_name}: {folder}/config.json is unreadable ({_one_line(err)})") from None
    if config.get("model_type") != "clip":
        raise UserInputError(f"{source.display_name}: model type {config.get('model_type')!r} is not a CLIP model")
    settings: dict = {}
    processor_file = folder / "preprocessor_config.json"
    if processor_file.is_file():
        try:
            settings = json.loads(processor_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserInputError(f"{source.display_name}: {processor_file} is unreadable ({_one_line(err)})") from None
    try:
        model = CLIPModel.from_pretrained(folder, dtype=load_config.torch_dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"cannot load {source.display_name} from {folder}: {_one_line(err)}; "
                                  f"{source.how_to_get()}") from None
    model.to(load_config.device).eval()
    crop = settings.get("crop_size", model.config.vision_config.image_size)
    size = int(crop.get("height", model.config.vision_config.image_size) if isinstance(crop, dict) else crop)
    mean = tuple(float(x) for x in settings.get("image_mean", _CLIP_MEAN))
    std = tuple(float(x) for x in settings.get("image_std", _CLIP_STD))
    return LoadedClip(model, tokenizer, size, mean, std, source)
