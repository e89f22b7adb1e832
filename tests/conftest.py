"""Shared fixtures; put tests/ (helpers.py, msmd_fixture.py) on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

import dolfinx_solver  # noqa: F401
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import EXAMPLES  # noqa: E402


@pytest.fixture
def examples_dir() -> Path:
    """The bundled example cases."""
    return EXAMPLES
