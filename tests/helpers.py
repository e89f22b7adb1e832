"""Helpers shared by the test tiers (import as ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

import dolfinx_solver  # noqa: F401
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


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
