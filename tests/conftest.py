"""Shared fixtures: run a case through the library API on a chosen communicator."""

from __future__ import annotations

import sys
from pathlib import Path

import dolfinx_solver  # noqa: F401
import pytest
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests"))


def solve_case(path, overrides=(), comm=MPI.COMM_WORLD, outdir=None, cache_dir=None):
    """Load, set up and run a case; returns the Simulation (summary in ``sim.result``)."""
    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    case, src = load_case(path, list(overrides))
    sim = Simulation(case, src, comm, outdir=outdir, cache_dir=cache_dir)
    sim.setup()
    try:
        sim.result = sim.run()
    finally:
        sim.close()
    return sim


@pytest.fixture
def examples_dir() -> Path:
    """The bundled example cases."""
    return EXAMPLES
