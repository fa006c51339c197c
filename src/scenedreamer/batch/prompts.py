"""Prompt files of a batch: what scenes to generate.

Two formats, chosen by the file name:

- ``.txt``: one prompt a line; blank lines and lines starting with ``#`` are skipped.
- ``.jsonl``: one JSON object a line (blank and ``#`` lines skipped) with ``prompt`` (required) and
  optionally ``seed`` (int), ``trajectory`` (a preset name or a transforms.json path, relative
  paths resolved against the prompt file's folder), ``name`` (the scene's run folder name) and
  ``set`` (an object of dotted config keys to values, as ``generate --set``).

Every error names the file and line (and the key): one line, exit 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserInputError

MAX_PROMPT_FILE_BYTES = 16 * 2**20
"""Largest prompt file read (bytes): a batch of 100k prompts fits in far less."""
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_JSONL_KEYS = {"prompt", "seed", "trajectory", "name", "set"}


@dataclass(frozen=True)
class SceneSpec:
    """One scene of a batch, as the prompt file gives it.

    line: 1-based line number in the prompt file (for error messages); name: run folder name
    (unique in the batch); seed / trajectory: None = the batch's; overrides: dotted config key
    -> JSON value, applied after the batch's own --set overrides.
    """

    line: int
    name: str
    prompt: str
    seed: int | None = None
    trajectory: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def scene_seed(batch_seed: int, name: str) -> int:
    """The seed of the batch scene ``name`` when neither its line nor the batch fixes one: a
    hash of the batch's seed and the scene's name (unique in the batch), in [0, 2^31): small
    enough for every generator the pipeline seeds with it, also after adding a step offset (a
    seed near 2^63 overflows there: "int too big to convert"). The same prompt file and seed give
    the same seeds on every machine and every re-run (no Python ``hash()``, which is salted per
    process)."""
    import hashlib

    digest = hashlib.sha256(f"{batch_seed}:{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") >> 1


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe lower-case slug of ``text`` (ASCII letters, digits and '-')."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:limit].rstrip("-") or "scene"


def read_prompt_file(path: str | Path) -> list[SceneSpec]:
    """Parse a .txt or .jsonl prompt file into scenes (in file order).

    Default names are ``NNNN-<slug of the prompt>`` (NNNN = the scene's index from 0), so two
    equal prompts still get two folders. Raises UserInputError naming the file and line for a
    missing, unreadable, empty or malformed file, a bad key or value, or a repeated name.
    """
    path = Path(path)
    if path.suffix.lower() not in (".txt", ".jsonl"):
        raise UserInputError(f"{path}: a prompt file must be .txt (one prompt a line) or .jsonl")
    try:
        if not path.is_file():
            raise UserInputError(f"{path}: no such prompt file" if not path.exists()
                                 else f"{path}: not a regular file")
        if path.stat().st_size > MAX_PROMPT_FILE_BYTES:
            raise UserInputError(f"{path}: prompt file larger than {MAX_PROMPT_FILE_BYTES // 2**20} MB")
        raw = path.read_bytes()
    except OSError as err:
        raise UserInputError(f"{path}: cannot read the prompt file ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UserInputError(f"{path} line {line}: not UTF-8 text") from None
    jsonl = path.suffix.lower() == ".jsonl"
    scenes: list[SceneSpec] = []
    names: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{path} line {number}"
        spec = _parse_jsonl_line(stripped, where, number, len(scenes), path.parent) if jsonl \
            else SceneSpec(line=number, name=f"{len(scenes):04d}-{slug(stripped)}", prompt=stripped)
        if spec.name in names:
            raise UserInputError(f"{where}: scene name {spec.name!r} already used on line {names[spec.name]}")
        names[spec.name] = number
        scenes.append(spec)
    if not scenes:
        raise UserInputError(f"{path}: no prompts (every line is blank or a # comment)")
    return scenes


def _parse_jsonl_line(text: str, where: str, number: int, index: int, folder: Path) -> SceneSpec:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        detail = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
        raise UserInputError(f"{where}: not valid JSON ({detail})") from None
    if not isinstance(obj, dict):
        raise UserInputError(f"{where}: expected a JSON object with a \"prompt\", got {type(obj).__name__}")
    unknown = sorted(set(obj) - _JSONL_KEYS)
    if unknown:
        raise UserInputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_JSONL_KEYS))})")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserInputError(f"{where}: key 'prompt' must be a non-empty string")
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise UserInputError(f"{where}: key 'seed' must be an integer in [0, 2^63)")
    trajectory = obj.get("trajectory")
    if trajectory is not None:
        if not isinstance(trajectory, str) or not trajectory:
            raise UserInputError(f"{where}: key 'trajectory' must be a preset name or a file path")
        if trajectory.endswith(".json") and not Path(trajectory).is_absolute():
            trajectory = str(folder / trajectory)
    name = obj.get("name", f"{index:04d}-{slug(prompt)}")
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise UserInputError(f"{where}: key 'name' must be 1-100 letters, digits, '.', '_' or '-' "
                             f"(not starting with '.' or '-'), got {name!r}")
    overrides = obj.get("set", {})
    if not isinstance(overrides, dict) or not all(isinstance(k, str) and k for k in overrides):
        raise UserInputError(f"{where}: key 'set' must be an object of dotted setting names to values")
    return SceneSpec(line=number, name=name, prompt=prompt.strip(), seed=seed, trajectory=trajectory,
                     overrides=dict(overrides))
