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


def assert_heat_support_exact(sim, rel=1e-12) -> None:
    """The heat sources a contribution declares zero outside its regions
    (``Contribution.heat_support``) are: with the run's current fields, the thermal source
    vector equals the whole-mesh assembly of the summed source entry for entry, and the
    per-region heat book (and its extra totals) a whole-mesh ``RegionBreakdown``'s, to ``rel``
    of the largest entry; a supported source reads exactly 0 in every other region."""
    import numpy as np
    import ufl
    from dolfinx import fem
    from dolfinx.fem import petsc as fpetsc
    from petsc4py import PETSc

    from busbarfem.analysis.regions import RegionBreakdown

    m, th = sim.model, sim.th
    ref = fpetsc.assemble_vector(fem.form(m.q_expr * ufl.TestFunction(th.V) * ufl.dx(domain=th.V.mesh)))
    got = fpetsc.create_vector(th.V)
    fpetsc.assemble_vector(got, th.L_q)
    for vec in (ref, got):
        vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    comm = sim.comm
    err = comm.allreduce(float(np.max(np.abs(got.array_r - ref.array_r), initial=0.0)), op=MPI.MAX)
    scale = comm.allreduce(float(np.max(np.abs(ref.array_r), initial=0.0)), op=MPI.MAX)
    assert err <= rel * scale, (err, scale)
    hb = m.heat_by_region
    whole = RegionBreakdown(sim.bundle, m.heat_sources, total="total", extra=hb.extra)
    a, b = whole.by_region(), hb.by_region()
    for k in a:
        top = max(abs(x) for x in a[k].values())
        for r in a[k]:
            assert abs(b[k][r] - a[k][r]) <= rel * top, (k, r, a[k][r], b[k][r])
            if r not in m.heat_support.get(k, (r,)):
                assert b[k][r] == 0.0 and abs(a[k][r]) <= rel * top, (k, r, a[k][r])
    for k, v in whole.extra_totals.items():
        assert abs(hb.extra_totals[k] - v) <= rel * abs(v), k


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
