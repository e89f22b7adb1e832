"""Two-potential preconditioner variants: Krylov iterations and CPU per electrical phase.

Runs ``examples/module_4s2p_discharge.yaml`` grown to SERIES x PARALLEL for STEPS fixed
30 s steps, CG+GAMG forced, with the defaults (warm start on) and MODE:

* ``plain``: the preset (GAMG rebuilt per call unless ``PC_REUSE_TOL`` keeps it);
* ``reuse<tol>``: ``ElectricalProblem.pc_reuse_tol = tol`` (``reuse0``: rebuild every call,
  ``reuse10``: build once);
* ``auto``: the library's defaults (the circuit coarse space by ``solvers.CIRCUIT_COARSE_SPACE``);
* ``add`` / ``symm``: GAMG combined (additively / symmetric-multiplicatively) with an exact
  "circuit" coarse correction ``Z (Z^T A Z)^-1 Z^T`` on one indicator vector per
  (region, field) -- the per-conductor constants a 0D network model has as unknowns.

A suffix ``,lin`` adds the linear per-region columns (``solvers.CIRCUIT_COARSE_LINEAR``),
``,swN`` sets N SOR sweeps per multigrid level (``solvers.MSMD_SMOOTH_SWEEPS``), ``,thrF``
or ``,thrF/C`` GAMG's aggregation threshold on every level, or on the finest and below it
(``solvers.MSMD_GAMG_THRESHOLD``),
``,g0``/``,g1`` the coarse-corrected initial guess off/on (``solvers.COARSE_GUESS``),
``,p0``/``,p1`` the coarse post-correction (``solvers.COARSE_POST``), ``,rfX`` the
two-potential tolerance factor (``solvers.MSMD_RTOL_FACTOR = X``).
Prints iterations per solve, their mean, electrical CPU (assembly and KSP split), the
number of preconditioner set-ups and the terminal voltage of the last two calls.
(A PCDEFLATION of the same space broke down with DIVERGED_INDEFINITE_PC at rtol 1e-12.)

    .venv/bin/python scripts/bench/two_potential_pc.py 4 2 2 symm
"""
import sys
import tempfile
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from busbarfem.coupling import Simulation
from busbarfem.mesh import build_mesh
from busbarfem.physics import solvers

series, parallel, steps, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# MODE may carry ",swN": N SOR sweeps per level (solvers.MSMD_SMOOTH_SWEEPS)
mode, *extra = mode.split(",")
# plain/add/symm fix the coarse space off in the library (add/symm apply it below);
# "auto" keeps the library's rule (solvers.CIRCUIT_COARSE_SPACE)
if mode != "auto":
    solvers.CIRCUIT_COARSE_SPACE = False
common.apply_solver_tokens(extra, strict=False)
comm = MPI.COMM_WORLD
ov = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}", "solver.adaptive=false",
      "solver.dt=30", f"solver.t_end={steps * 30}", "solver.electrical_solver=gamg"] + sys.argv[5:]
case, src = common.load_bench_case("module_4s2p_discharge", ov)
bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
sim = Simulation(case, src, comm, outdir=Path(comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None, root=0)), cache_dir=None)
sim.setup(bundle)
el = sim.el
if mode.startswith("reuse"):
    el.pc_reuse_tol = float(mode[5:])


if mode in ("add", "symm"):
    # the library's circuit coarse space (solvers.CIRCUIT_COARSE_SPACE), composed either way
    Z = el._circuit_space()
    solvers.use_circuit_coarse_space(el.ksp, comm, Z, el.options, additive=(mode == "add"))
    if comm.rank == 0:
        print("coarse space", Z.getSize()[1])

T = {"asm": 0.0, "ksp": 0.0, "rhs": 0.0}
_am = el._assemble_matrix
def am():
    c0 = time.process_time(); _am(); T["asm"] += time.process_time() - c0
el._assemble_matrix = am
its = []
checked = solvers.solve_checked
def counted(ksp, b, x, what, *a, **k):
    c0 = time.process_time()
    n = checked(ksp, b, x, what, *a, **k)
    if what == "electrical":
        T["ksp"] += time.process_time() - c0
    if what == "electrical":
        its.append(n)
    return n
solvers.solve_checked = counted
volts = []
cpu = [0.0]
sol = el.solve
def solve(*a, **k):
    c0 = time.process_time()
    out = sol(*a, **k)
    cpu[0] += time.process_time() - c0

    volts.append(out.voltage)
    return out
el.solve = solve
sim.run()
if comm.rank == 0:
    print(mode, "sweeps", solvers.MSMD_SMOOTH_SWEEPS, "threshold", solvers.MSMD_GAMG_THRESHOLD, "coarse", el.circuit_space or mode in ("add", "symm"),
          f"{series}s{parallel}p ndofs", el.ndofs, "its", its, "mean", np.mean(its), "cpu_el", round(cpu[0], 2), "pc_setups", el.pc_setups, {k: round(v, 2) for k, v in T.items()}, "V", [repr(v) for v in volts[-2:]])
    ksp = el.ksp
    print("load average", open("/proc/loadavg").read().split()[:3])
sim.close()
