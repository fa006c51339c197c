"""The support database of the method: generated views with provenance, persisted and replayable."""

from ..lazy_exports import lazy_exports

__all__ = ["Provenance", "SupportConfig", "SupportDatabase", "ViewInfo", "ViewRecord"]

_HOMES = {
    "SupportConfig": ".config", "SupportDatabase": ".database", "Provenance": ".records",
    "ViewRecord": ".records", "ViewInfo": ".storage",
}
"""exported name -> the submodule defining it, imported when the name is first read (lazy_exports:
importing this package imports no torch)."""

__getattr__ = lazy_exports(__name__, _HOMES)
