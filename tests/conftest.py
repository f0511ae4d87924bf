"""Shared test helpers.

``SHARED_FIXTURES`` is the captures directory of ../shared when it exists; tests that use it
skip cleanly when it does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures" / "envoy"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

needs_shared = pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="../shared is not beside the repo")
