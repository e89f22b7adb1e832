"""Helpers shared by the test tiers (import as ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
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


def run_serial_and_two_ranks(case, out_root, args=(), env=None, timeout=600):
    """``busbarfem run`` of ``case`` serially and under ``mpirun -n 2`` (no report).

    Returns the two ``summary.json`` dicts (serial, two ranks); a failed run fails the test
    with the end of its stderr. ``env`` defaults to this environment with one OpenMP thread.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1") if env is None else env
    mpirun = ROOT / ".venv" / "bin" / "mpirun"
    if not mpirun.exists():
        mpirun = Path(sys.executable).parent / "mpirun"
    outs = {}
    for n in (1, 2):
        out = Path(out_root) / f"n{n}"
        cmd = [sys.executable, "-m", "busbarfem", "run", str(case), "-o", str(out), "-q", "--no-report", *args]
        if n > 1:
            cmd = [str(mpirun), "-n", str(n), *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[n] = json.loads((out / "summary.json").read_text())
    assert outs[2]["mpi_size"] == 2
    return outs[1], outs[2]
