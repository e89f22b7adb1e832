"""The cell-port basis build of the reduced electrical step, timed by method, 1 vs 2 ranks.

    .venv/bin/python scripts/bench/port_basis.py SERIES PARALLEL [METHOD ...]
    .venv/bin/mpirun -n 2 .venv/bin/python scripts/bench/port_basis.py 8 6 block cols16 single

Sets up ``examples/module_4s2p_discharge.yaml`` grown to SERIES x PARALLEL (reduced step on,
so the electrical KSP is CG+GAMG and the basis gets its own MUMPS Cholesky factorisation,
:func:`busbarfem.physics.reduced_ports.ReducedPorts._build_direct`), assembles the N + 1
right-hand sides once, factorises once, then solves them by each METHOD:

* ``block``: one ``KSPMatSolve`` of all N + 1 columns (what the library does on one rank);
* ``colsK``: ``KSPMatSolve`` on blocks of K columns;
* ``single``: N + 1 ``KSPSolve`` calls;
* ``auto``: :func:`busbarfem.physics.reduced_ports.solve_columns`, the library's choice.

``block`` runs first (the reference; its time includes MUMPS's first-solve set-up), and again
where listed. ``KEY=VALUE`` arguments are added to the factorisation's PETSc options.

Prints per method the wall time (max over ranks), the largest column difference from the
``block`` result (relative, max norm) and the load average. Thread counts are pinned to 1
by ``common`` for the bench runs; set ``OPENBLAS_NUM_THREADS`` yourself here to compare.
"""
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from busbarfem.coupling import Simulation
from busbarfem.mesh import build_mesh
from busbarfem.physics import reduced_ports, solvers

series, parallel = int(sys.argv[1]), int(sys.argv[2])
methods = [x for x in sys.argv[3:] if "=" not in x] or ["block", "cols16", "single", "auto"]
# KEY=VALUE arguments: extra PETSc options of the basis factorisation (e.g. mat_mumps_icntl_13=1)
extra_opts = dict(x.split("=", 1) for x in sys.argv[3:] if "=" in x)
comm = MPI.COMM_WORLD
ov = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}",
      "solver.electrical.reduced.enabled=true"]
case, src = common.load_bench_case("module_4s2p_discharge", ov)
bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
out = Path(comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0))
sim = Simulation(case, src, comm, outdir=out, cache_dir=None)
sim.setup(bundle)
el = sim.el
rp = el.reduced
el.update_conductivity()
el._assemble_matrix()
A = el.ksp.getOperators()[0]
A.setOption(PETSc.Mat.Option.SYMMETRIC, True)
m = rp.n + 1
nsub = A.getLocalSize()[0]


def wall(f):
    """Max-over-ranks wall time of ``f()`` (collective)."""
    comm.Barrier()
    t0 = time.perf_counter()
    r = f()
    return comm.allreduce(time.perf_counter() - t0, op=MPI.MAX), r


ksp = solvers.make_ksp(comm, A, "pb_", {**solvers.preset("lu", A.getSize()[0], 0.0, symmetric=True), **extra_opts})
t_setup, _ = wall(ksp.setUp)
Barr = rp._rhs_columns()
ref = None
if comm.rank == 0:
    print(f"{series}s{parallel}p ranks {comm.size} solved unknowns {A.getSize()[0]} columns {m} "
          f"factorisation {t_setup:.3f} s", extra_opts)
for meth in ["block"] + methods:
    if meth == "block":
        t, X = wall(lambda: reduced_ports.solve_columns(ksp, Barr, block=m))
    elif meth.startswith("cols"):
        k = int(meth[4:])
        t, X = wall(lambda: reduced_ports.solve_columns(ksp, Barr, block=k))
    elif meth == "single":
        t, X = wall(lambda: reduced_ports.solve_columns(ksp, Barr, block=1))
    elif meth == "auto":
        t, X = wall(lambda: reduced_ports.solve_columns(ksp, Barr))
    else:
        raise SystemExit(f"unknown method {meth!r}: block, colsK, single, auto")
    if ref is None:
        ref = X
    scale = comm.allreduce(float(np.max(np.abs(ref))), op=MPI.MAX)
    diff = comm.allreduce(float(np.max(np.abs(X - ref))) if X.size else 0.0, op=MPI.MAX) / scale
    if comm.rank == 0:
        print(f"  {meth:8s} {t:7.3f} s  max diff vs block {diff:.1e}")
# a numeric refactorisation at a changed operator (the next basis build with the KSP kept)
A.scale(1.0 + 1e-3)
ksp.setOperators(A)
t_re, _ = wall(ksp.setUp)
t_after, _ = wall(lambda: reduced_ports.solve_columns(ksp, Barr, block=m))
if comm.rank == 0:
    print(f"  refactorisation {t_re:.3f} s, then block {t_after:.3f} s")
if comm.rank == 0:
    print("load average", open("/proc/loadavg").read().split()[:3])
solvers.destroy_ksp(ksp)
sim.close()
