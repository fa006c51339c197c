"""The support database of the method: generated views with provenance, persisted and replayable."""

from .config import SupportConfig
from .database import SupportDatabase
from .records import Provenance, ViewRecord
from .storage import ViewInfo

__all__ = ["Provenance", "SupportConfig", "SupportDatabase", "ViewInfo", "ViewRecord"]
