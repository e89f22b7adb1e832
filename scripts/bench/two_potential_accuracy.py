"""Accuracy against MUMPS LU of iterative two-potential solver variants, per electrical call.

Runs ``examples/module_4s2p_discharge.yaml`` grown to SERIES x PARALLEL for STEPS fixed 30 s
steps once with MUMPS LU (the reference) and once per VARIANT with CG+GAMG forced, all in
one process on one mesh. A variant is a comma-separated list of settings:

* ``rfX``: ``solvers.MSMD_RTOL_FACTOR = X`` (the solve runs at ``rtol * X``; the preset 1e-2);
* ``g0``/``g1``: the coarse-corrected initial guess off/on (``solvers.COARSE_GUESS``);
* ``p0``/``p1``: the coarse post-correction off/on (``solvers.COARSE_POST``);
* ``op0``/``op1``: the source solve at V = 0 / at the predicted V (``solvers.OPERATING_POINT_SOLVE``);
* ``bc0``/``bc1``: exact Dirichlet values after the solve off/on (``solvers.EXACT_BC_VALUES``);
* ``swN``: N SOR sweeps per level; ``cs0``/``cs1``: the circuit coarse space in the
  preconditioner off/on (``solvers.CIRCUIT_COARSE_SPACE``).

For every call (the t = 0 one and one per step) it prints the iterations per solve, and
per variant the largest relative differences to LU over the calls: terminal voltage,
terminal current, cell currents (relative to the largest cell current) and the worst
Kirchhoff mismatch per stage (summed cell currents vs the terminal current, relative; LU's
own is printed as the floor), and the CPU seconds of the electrical KSP phase (the
coarse corrections included) and of the whole electrical call.

    .venv/bin/python scripts/bench/two_potential_accuracy.py 4 2 1 rf1e-2,p0 rf1e-1,p1
"""
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from busbarfem.analysis.regions import RegionIntegrator  # noqa: E402
from busbarfem.coupling import Simulation  # noqa: E402
from busbarfem.mesh import build_mesh  # noqa: E402
from busbarfem.physics import solvers  # noqa: E402

series, parallel, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
variants = sys.argv[4:]
comm = MPI.COMM_WORLD
DEFAULTS = {k: getattr(solvers, k) for k in ("MSMD_RTOL_FACTOR", "COARSE_GUESS", "COARSE_POST",
                                             "MSMD_SMOOTH_SWEEPS", "CIRCUIT_COARSE_SPACE", "EXACT_BC_VALUES",
                                             "OPERATING_POINT_SOLVE")}


def configure(variant: str) -> None:
    """Reset the solver module's settings to the defaults, then apply ``variant``."""
    for k, v in DEFAULTS.items():
        setattr(solvers, k, v)
    common.apply_solver_tokens(variant.split(","))


def run(bundle, variant: str) -> dict:
    """One transient; per call the terminal V, I, the cell currents and the iterations."""
    configure(variant)
    kind = "lu" if variant == "lu" else "gamg"
    ov = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}", "solver.adaptive=false",
          "solver.dt=30", f"solver.t_end={steps * 30}", f"solver.electrical_solver={kind}"]
    case, src = common.load_bench_case("module_4s2p_discharge", ov)
    sim = Simulation(case, src, comm, outdir=Path(comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0)), cache_dir=None)
    sim.setup(bundle)
    el = sim.el
    jint = RegionIntegrator(bundle, el.transfer_current())
    names = sorted(el.cell_names)
    out = {"V": [], "I": [], "cells": [], "its": [], "ksp": 0.0, "call": 0.0}
    krylov, sol = el._krylov, el.solve

    def timed_krylov(b, x, step):
        c0 = time.process_time()
        n = krylov(b, x, step)
        out["ksp"] += time.process_time() - c0
        out["its"].append(n)
        return n

    def timed_solve(*a, **k):
        c0 = time.process_time()
        res = sol(*a, **k)
        out["call"] += time.process_time() - c0
        by = jint.by_region()
        out["V"].append(res.voltage)
        out["I"].append(res.current)
        out["cells"].append(np.array([by[n] for n in names]))
        return res

    el._krylov, el.solve = timed_krylov, timed_solve
    sim.run()
    out["names"] = names
    out["circuit_space"] = el.circuit_space
    sim.close()
    return out


def kirchhoff(res: dict) -> float:
    """Worst |sum of a stage's cell currents / terminal current - 1| over stages and calls."""
    worst = 0.0
    for I, cur in zip(res["I"], res["cells"]):
        for st in range(1, series + 1):
            tot = sum(c for n, c in zip(res["names"], cur) if n.startswith(f"cell_{st}_"))
            worst = max(worst, abs(tot / I - 1))
    return worst


ov0 = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}"]
case0, _ = common.load_bench_case("module_4s2p_discharge", ov0)
bundle = build_mesh(case0, comm, cache_dir=common.MESH_CACHE)
ref = run(bundle, "lu")
if comm.rank == 0:
    print(f"{series}s{parallel}p LU: V {ref['V']}, Kirchhoff {kirchhoff(ref):.2e}, call CPU {ref['call']:.2f} s")
for variant in variants:
    res = run(bundle, variant)
    dV = max(abs(v / r - 1) for v, r in zip(res["V"], ref["V"]))
    dI = max(abs(v / r - 1) for v, r in zip(res["I"], ref["I"]))
    dc = max(float(np.max(np.abs(c - r)) / np.max(np.abs(r))) for c, r in zip(res["cells"], ref["cells"]))
    if comm.rank == 0:
        its = res["its"]
        print(f"{variant:24s} its {its} max {max(its)} mean {np.mean(its):.1f} | vs LU: V {dV:.1e} I {dI:.1e} "
              f"cells {dc:.1e} | Kirchhoff {kirchhoff(res):.1e} | KSP CPU {res['ksp']:.2f} s, call {res['call']:.2f} s"
              f" | coarse space in PC {res['circuit_space']}")
if comm.rank == 0:
    print("load average", open("/proc/loadavg").read().split()[:3])
