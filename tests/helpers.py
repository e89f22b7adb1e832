"""Helpers shared by the test tiers (import as ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import signal
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


class Hang(Exception):
    """The command did not return within the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` if the block runs longer than ``seconds`` (main thread, POSIX)."""

    def handler(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
