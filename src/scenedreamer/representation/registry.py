"""THE table of representation kinds: name -> RepresentationKind (representation/kind.py).

Everything that depends on which representation a run uses reads this table: a checkpoint's
``kind`` becomes a class again (checkpoint.py), config.json's ``representation.type`` a config
class (RepresentationConfig below), ``generate --representation`` its choices, the pipeline its
create / grow hooks, the disk estimate its size hook, scene.ply its seed_gaussians hook.
Adding a representation = its module (the class, its config, a KIND entry) + one line here
(or ``register_representation_kind`` from a plug-in; docs/design.md "Adding a component").
"""

from __future__ import annotations

from typing import Any

from ..errors import UserInputError
from .gaussians_kind import KIND as GAUSSIANS
from .kind import RepresentationKind
from .triplane_kind import KIND as TRIPLANE_NERF

REPRESENTATION_KINDS: dict[str, RepresentationKind] = {kind.name: kind for kind in (TRIPLANE_NERF, GAUSSIANS)}
"""kind name (as checkpoints spell it) -> the kind; in the order ``--representation`` lists them."""


def register_representation_kind(kind: RepresentationKind) -> None:
    """Add ``kind`` to the table (ValueError when one of its names is taken by another kind)."""
    for other in REPRESENTATION_KINDS.values():
        if other is not kind and (other.name == kind.name or other.cli_name == kind.cli_name
                                  or other.config_class.__name__ == kind.config_class.__name__):
            raise ValueError(f"representation kind {kind.name!r} clashes with {other.name!r}")
    REPRESENTATION_KINDS[kind.name] = kind


def kind_of_config(config: Any) -> RepresentationKind:
    """The kind whose config class ``config`` is (TypeError for anything else: a bug, not input)."""
    for kind in REPRESENTATION_KINDS.values():
        if type(config) is kind.config_class:
            return kind
    raise TypeError(f"no representation kind has the config class {type(config).__name__}")


def kind_of(representation: Any) -> RepresentationKind:
    """The kind of a representation object (by its ``kind`` attribute)."""
    kind = REPRESENTATION_KINDS.get(getattr(representation, "kind", None))
    if kind is None:
        raise TypeError(f"{type(representation).__name__} is no registered representation kind")
    return kind


def cli_names() -> list[str]:
    """The names ``generate --representation`` accepts, in table order."""
    return [kind.cli_name for kind in REPRESENTATION_KINDS.values()]


def kind_for_cli(cli_name: str) -> RepresentationKind:
    """The kind ``--representation cli_name`` means (UserInputError naming the choices)."""
    for kind in REPRESENTATION_KINDS.values():
        if kind.cli_name == cli_name:
            return kind
    raise UserInputError(f"--representation {cli_name!r}: unknown (known: {', '.join(cli_names())})")


class RepresentationConfig:
    """The type of a config field holding any registered representation's config dataclass.

    config_io reads a value of this type by its "type" key among ``config_variants()`` (the
    config classes of the table), so config.json files of every kind load, and a kind
    registered later loads too. Nothing is an instance of this class."""

    @staticmethod
    def config_variants() -> tuple[type, ...]:
        return tuple(kind.config_class for kind in REPRESENTATION_KINDS.values())
