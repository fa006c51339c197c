"""Licences as data: what a run records about the licence of every model it loads.

A run writes ``licenses.json`` (pipeline/run_folder.py): one record per model it loads (model
id, revision, licence, restrictions and the sha256 of each weight file it read) and one per
built-in stand-in (no weights: the project's own licence). The licences come from
``model_registry`` (each preset states its licence); a hub id or folder that is not a preset is
recorded as "unknown" (read its model card).

Hashes cost nothing for files in the Hugging Face cache: a snapshot's file is a link to a blob
named by the sha256 of its content (for the large, LFS-stored weight files); any other file is
hashed here (about 1 s per GB).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .model_registry import find_preset

STAND_IN_LICENSE = "built-in, project licence"
"""What licenses.json says of a built-in stand-in (procedural world, classical, offline refiner)."""
UNKNOWN_LICENSE = "unknown (not a preset: read the model card)"
"""What licenses.json says of a hub id or folder that is not a preset."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_PIPELINE_PARTS = ("unet", "text_encoder", "vae")


def weight_sha256(path: Path) -> str:
    """Hex sha256 of a weight file: the name of the cache blob it links to when that name is a
    sha256 (the hub stores LFS files under their content hash), else hashed from its bytes."""
    if path.is_symlink():
        blob = Path(os.path.realpath(path)).name
        if _SHA256.match(blob):
            return blob
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def loaded_weight_files(folder: Path, without_vae: bool = False) -> list[Path]:
    """The weight files a loader reads from a model folder: unet/, text_encoder/ and (unless a
    tiny VAE replaces it) vae/ of a diffusers pipeline; the top-level weights of any other model
    (transformers model, diffusers single model, LoRA)."""
    if (folder / "model_index.json").is_file():
        parts = [p for p in _PIPELINE_PARTS if not (without_vae and p == "vae")]
        subs = [folder / p for p in parts]
    else:
        subs = [folder]
    files = []
    for sub in subs:
        if sub.is_dir():
            files += sorted(p for p in sub.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    return files


def _revision(folder: Path) -> str:
    """The hub commit of a Hugging Face cache snapshot (its folder name), else "local folder"."""
    if folder.parent.name == "snapshots" and re.match(r"^[0-9a-f]{40}$", folder.name):
        return folder.name
    return "local folder"


def model_record(name: str, folder: Path | None, hub_id: str | None, without_vae: bool = False) -> dict:
    """The licences.json record of one loaded model.

    name: as the config names it; folder: where its files are (None: not local, no hashes);
    hub_id: its hub repository (None for a folder). Keys: name, model_id, revision, license,
    restrictions, files (path relative to the folder -> sha256)."""
    preset = find_preset(name) or (find_preset(hub_id) if hub_id else None)
    files = {}
    if folder is not None:
        files = {p.relative_to(folder).as_posix(): weight_sha256(p) for p in loaded_weight_files(folder, without_vae)}
    return {"name": name,
            "model_id": hub_id or (preset.hub_id if preset else str(folder)),
            "revision": _revision(folder) if folder is not None else (preset.revision if preset else "unknown"),
            "license": preset.license if preset else UNKNOWN_LICENSE,
            "restrictions": list(preset.restrictions) if preset else [],
            "files": files}


def stand_in_record(name: str, roles: list[str]) -> dict:
    """The licences.json record of a built-in stand-in (it loads no weights)."""
    return {"name": name, "model_id": f"scenedreamer built-in: {name}", "revision": "built-in",
            "license": STAND_IN_LICENSE, "restrictions": [], "roles": roles, "files": {}}
