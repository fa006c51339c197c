"""Fixtures of the support-database tests."""

from __future__ import annotations

import sys
from pathlib import Path

# support_views.py sits beside the tests (and is imported by the crash test's subprocess).
sys.path.insert(0, str(Path(__file__).parent))
