"""Fixtures shared by the unit tests."""

from __future__ import annotations

import gmsh
import pytest


@pytest.fixture
def gmsh_session():
    """An initialised gmsh with an empty current model, finalised afterwards."""
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("test")
    yield gmsh
    gmsh.finalize()
