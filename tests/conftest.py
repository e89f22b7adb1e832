"""Shared fixtures; put tests/ (helpers.py, msmd_fixture.py) on the import path."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def mesh_cache_dir(tmp_path_factory) -> Path:
    """One mesh cache folder per test session, never ~/.cache or the checkout.

    Set as ``BUSBARFEM_MESH_CACHE`` so CLI runs in subprocesses (and mpirun) inherit it.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist: the workers' base folders share one parent, so they share one cache
        # (cache entries are written to a temporary name and renamed, so this is safe).
        path = tmp_path_factory.getbasetemp().parent / "mesh-cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("mesh-cache")
    previous = os.environ.get("BUSBARFEM_MESH_CACHE")
    os.environ["BUSBARFEM_MESH_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("BUSBARFEM_MESH_CACHE", None)
    else:
        os.environ["BUSBARFEM_MESH_CACHE"] = previous


def _plain(value):
    """``value`` with numpy scalars/arrays turned into Python numbers and lists."""
    import json

    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep ``record_property`` values serialisable: pytest-xdist workers cannot send numpy
    scalars to the controller (a worker dies with execnet's DumpError)."""
    outcome = yield
    report = outcome.get_result()
    report.user_properties = [(k, _plain(v)) for k, v in report.user_properties]
