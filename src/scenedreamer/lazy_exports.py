"""Package namespaces that import their submodules on first use (PEP 562).

A package such as ``scenedreamer.priors`` re-exports names from modules that import torch. Importing
the package (which Python does for every ``from scenedreamer.priors.config import ...``) must not
import those modules: ``scenedreamer --help`` and ``generate --dry-run`` only read config classes
and would otherwise pay torch's start-up (issue 21: <= 2 s). So each package lists where its
names live and this module's ``__getattr__`` imports that submodule when a name is first read.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps an exported name to the relative
    submodule defining it (".cameras"); any other name that is a submodule is imported as such
    (``package.submodule`` works as it did when the package imported everything)."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(homes[name], package), name)
        if not name.startswith("__"):
            try:
                return import_module(f".{name}", package)
            except ModuleNotFoundError as err:
                if err.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
