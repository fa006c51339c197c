"""Which parts of two Stable Diffusion pipeline folders are the same model, so a run holds them once.

A run of a real preset loads two pipelines: the text-to-image model (first view and refiner) and
the inpainting model. Their UNets differ (the inpainting UNet reads 9 channels), but the
published pairs ship the same frozen text encoder and VAE: SD 1.5 and SD 1.5 inpainting both
carry OpenAI's CLIP ViT-L/14 text encoder and the SD 1.x VAE; SD 2 and SD 2 inpainting
OpenCLIP ViT-H/14 and the SD 2 VAE. Holding such a component once saves its weights in memory
(CLIP ViT-L: 123 M parameters, 0.23 GiB in bf16, ~5 % of a bf16 ``sd15-fast`` run's networks).

Identity is decided from the files alone, before anything is loaded: the same config.json
(without the writer's bookkeeping keys), the same tensors (names, dtypes, shapes and bytes,
compared tensor by tensor so the files' order and metadata do not matter) and, for a text
encoder, the same tokenizer files. Only safetensors weights are compared; anything else is
never shared. The loader (loading.load_sd_pipeline) and the memory plan (pipeline/plan.py) both
ask here, so the plan counts a shared component once exactly when the run loads it once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

SHAREABLE = ("text_encoder", "vae")
"""Pipeline components that can be held once (the UNets are what differs between the roles)."""
COMPANIONS = {"text_encoder": ("tokenizer",)}
"""Folders that must match too for a component to be shared (a text encoder reads its tokenizer's ids)."""
BOOKKEEPING_KEYS = ("_name_or_path", "name_or_path", "_diffusers_version", "transformers_version", "_commit_hash")
"""JSON keys that record who wrote a file or where from, not what the model is."""
READ_BYTES = 1 << 24
"""Bytes compared at a time (16 MiB: two such buffers are all the comparison holds)."""
LORA_TEXT_ENCODER_PREFIXES = ("text_encoder", "lora_te")
"""Tensor-name prefixes of a LoRA's text-encoder part (diffusers' and kohya's naming)."""


def weight_files(component: Path, variant: str | None) -> list[Path]:
    """The safetensors files a loader reads from a component folder (the ``variant``'s, e.g.
    ``model.fp16.safetensors``, when given and present, else the plain ones); [] when it has
    none (PyTorch .bin weights are not compared)."""
    if not component.is_dir():
        return []
    files = sorted(p for p in component.iterdir() if p.is_file() and p.name.endswith(".safetensors"))
    tagged = [p for p in files if variant and f".{variant}." in p.name]
    return tagged or [p for p in files if len(p.name.split(".")) == 2]


def same_component(a: Path, b: Path, name: str, variant_a: str | None = None,
                   variant_b: str | None = None) -> bool:
    """Whether pipeline folders ``a`` and ``b`` (read as their weight variants, e.g. "fp16")
    hold the same ``name`` component (module docstring): configs, tensors and companion folders
    equal. False when either is unreadable."""
    if a.resolve() == b.resolve() and variant_a == variant_b:
        return True
    try:
        if _config(a / name) != _config(b / name):
            return False
        if any(not _same_folder_files(a / c, b / c) for c in COMPANIONS.get(name, ())):
            return False
        return _same_tensors(weight_files(a / name, variant_a), weight_files(b / name, variant_b))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def lora_touches_text_encoder(lora_weights: Path | None) -> bool:
    """Whether a LoRA file (None: no LoRA) changes the text encoder: it is fused into each
    pipeline's text encoder, so a shared one would take it twice. True when unreadable (the
    LoRA loader then names the problem)."""
    if lora_weights is None:
        return False
    from .loading import safetensors_header

    try:
        names = safetensors_header(lora_weights)[0]
    except Exception:           # RunFailedError and friends: do not share; the LoRA's own load reports it
        return True
    return any(n.startswith(LORA_TEXT_ENCODER_PREFIXES) for n in names)


# ---- the comparisons ----------------------------------------------------------------------------
def _config(component: Path) -> dict:
    return _settings(component / "config.json")


def _settings(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return {k: v for k, v in data.items() if k not in BOOKKEEPING_KEYS}


def _same_folder_files(a: Path, b: Path) -> bool:
    """Same file names, the same settings in each JSON file (bookkeeping keys aside) and the
    same bytes in the others (small folders: a tokenizer's vocabulary, merges and settings)."""
    if not a.is_dir() or not b.is_dir():
        return a.is_dir() == b.is_dir()
    names = sorted(p.name for p in a.iterdir() if p.is_file())
    if names != sorted(p.name for p in b.iterdir() if p.is_file()):
        return False
    return all(_settings(a / n) == _settings(b / n) if n.endswith(".json") else (a / n).read_bytes() == (b / n).read_bytes()
               for n in names)


def _tensor_index(files: list[Path]) -> dict[str, tuple[Path, str, tuple[int, ...], int, int]]:
    """tensor name -> (file, dtype, shape, first byte, end byte) over a component's files."""
    from .loading import safetensors_header

    index = {}
    for path in files:
        header, base = safetensors_header(path)
        for tensor, info in header.items():
            start, end = info["data_offsets"]
            index[tensor] = (path, str(info["dtype"]), tuple(info["shape"]), base + start, base + end)
    return index


def _same_tensors(files_a: list[Path], files_b: list[Path]) -> bool:
    if not files_a or not files_b:
        return False
    index_a, index_b = _tensor_index(files_a), _tensor_index(files_b)
    if index_a.keys() != index_b.keys():
        return False
    if any(index_a[t][1:3] != index_b[t][1:3] for t in index_a):
        return False
    handles: dict[Path, BinaryIO] = {}
    try:
        for tensor in sorted(index_a, key=lambda t: index_a[t][3]):        # file order: sequential reads
            path_a, _, _, start_a, end_a = index_a[tensor]
            path_b, _, _, start_b, end_b = index_b[tensor]
            if end_a - start_a != end_b - start_b:
                return False
            fa, fb = _handle(handles, path_a), _handle(handles, path_b)
            fa.seek(start_a)
            fb.seek(start_b)
            left = end_a - start_a
            while left:
                size = min(left, READ_BYTES)
                if fa.read(size) != fb.read(size):
                    return False
                left -= size
        return True
    finally:
        for handle in handles.values():
            handle.close()


def _handle(handles: dict[Path, BinaryIO], path: Path) -> BinaryIO:
    if path not in handles:
        handles[path] = open(path, "rb")
    return handles[path]
