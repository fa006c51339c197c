"""The layer order of docs/conventions.md, enforced by reading every import of the package.

Imports inside functions count too (a lazy import is still a dependency). A module may import
its own package and the packages of lower layers only; siblings of one layer stay independent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "scenedreamer"

# layer rank of each sub-package; top-level modules (errors, atomic, events, config_io, ...) are
# the core every layer may use. Keep in step with docs/conventions.md.
LAYERS: dict[str, int] = {
    "geometry": 1,
    "priors": 2, "support": 2,
    "representation": 3,
    "export": 4,
    "pipeline": 5,
    "eval": 6, "viewer": 6, "batch": 6,
    "cli": 7,
}
CORE_RANK = 0


def _unit(module_path: Path) -> str:
    """'geometry', 'priors', ... for a file in a sub-package; '' for a top-level module."""
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else ""


def _imported_units(source: str, package_parts: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, unit) of every scenedreamer import in ``source``, a module living in the package
    ``package_parts`` (e.g. ("geometry",); () for a top-level module). unit '' = a core module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:                                             # relative: resolve against the package
                base = list(package_parts[:len(package_parts) - (node.level - 1)])
                target = base + (node.module.split(".") if node.module else [alias.name for alias in node.names][:1])
            elif node.module and node.module.split(".")[0] == "scenedreamer":
                target = node.module.split(".")[1:] or [alias.name for alias in node.names][:1]
            else:
                continue
            found.append((node.lineno, target[0] if target and target[0] in LAYERS else ""))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "scenedreamer" and len(parts) > 1:
                    found.append((node.lineno, parts[1] if parts[1] in LAYERS else ""))
    return found


def _imports_of(path: Path) -> list[tuple[int, str]]:
    return _imported_units(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).parts[:-1])


def _python_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "vendor" not in p.parts)


def test_every_sub_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), f"add {sorted(packages - set(LAYERS))} to LAYERS and docs/conventions.md"


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path: Path):
    unit = _unit(path)
    rank = LAYERS.get(unit, CORE_RANK)
    bad = []
    for line, target in _imports_of(path):
        if target == unit:
            continue
        target_rank = LAYERS.get(target, CORE_RANK)
        if target_rank > rank or (target_rank == rank and target != unit and target):
            bad.append(f"line {line}: imports {target or 'core'} (layer {target_rank}) from {unit or 'core'} "
                       f"(layer {rank})")
    assert not bad, f"{path.relative_to(PACKAGE)}: " + "; ".join(bad)


def test_the_checker_sees_violations():
    """The scan itself must catch upward imports: relative or absolute, lazy or not, and tell
    core modules from layers."""
    source = ("from ..errors import UserInputError\nfrom .cameras import Cameras\n"
              "def f():\n    from ..pipeline import config\n    import scenedreamer.cli.generate\n")
    assert [u for _, u in _imported_units(source, ("geometry",))] == ["", "geometry", "pipeline", "cli"]


def _files_mentioning(text: str) -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in _python_files() if text in p.read_text(encoding="utf-8"))


def test_only_the_loading_module_calls_from_pretrained():
    assert _files_mentioning(".from_pretrained(") == ["priors/loading.py"]


def test_ui_code_lives_only_in_the_cli():
    users = [f for f in _files_mentioning("tqdm") if not f.startswith("cli/")]
    # priors/loading.py may name tqdm only to switch the libraries' own bars off
    assert all(f == "priors/loading.py" for f in users), users


def test_the_core_never_imports_ray():
    users = [f for f in _files_mentioning("import ray") if not f.startswith("batch/")]
    assert not users, users
