"""The support database of the method: generated views with provenance, persisted and replayable."""

from .records import Provenance, ViewRecord

__all__ = ["Provenance", "ViewRecord"]
