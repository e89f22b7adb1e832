"""Two-potential preconditioner variants: Krylov iterations and CPU per electrical phase.

Runs ``examples/module_4s2p_discharge.yaml`` grown to SERIES x PARALLEL for STEPS fixed
30 s steps, CG+GAMG forced, with the defaults (warm start on) and MODE:

* ``plain``: the preset (GAMG rebuilt per call unless ``PC_REUSE_TOL`` keeps it);
* ``reuse<tol>``: ``ElectricalProblem.pc_reuse_tol = tol`` (``reuse0``: rebuild every call,
  ``reuse10``: build once);
* ``add`` / ``symm``: GAMG combined (additively / symmetric-multiplicatively) with an exact
  "circuit" coarse correction ``Z (Z^T A Z)^-1 Z^T`` on one indicator vector per
  (region, field) -- the per-conductor constants a 0D network model has as unknowns.

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
from petsc4py import PETSc
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from busbarfem.coupling import Simulation
from busbarfem.mesh import build_mesh
from busbarfem.physics import solvers

series, parallel, steps, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
comm = MPI.COMM_WORLD
ov = [f"geometry.module.series={series}", f"geometry.module.parallel={parallel}", "solver.adaptive=false",
      "solver.dt=30", f"solver.t_end={steps * 30}", "solver.electrical_solver=gamg"] + sys.argv[5:]
case, src = common.load_bench_case("module_4s2p_discharge", ov)
bundle = build_mesh(case, comm, cache_dir=common.MESH_CACHE)
sim = Simulation(case, src, comm, outdir=Path(tempfile.mkdtemp()), cache_dir=None)
sim.setup(bundle)
el = sim.el
if mode.startswith("reuse"):
    el.pc_reuse_tol = float(mode[5:])


def region_space(el):
    """Sparse n x m matrix Z: one column per (volume region, active field), 1 on its owned
    dofs (each dof in the first region that claims it; Dirichlet dofs left out)."""
    V = el.V
    imap = V.dofmap.index_map
    nloc = imap.size_local
    bs = V.dofmap.index_map_bs
    col = np.full(nloc * bs, -1, dtype=np.int64)
    names = sorted(el.bundle.volume_names())
    ncol = 0
    bc_local = set()
    for bc in el.bcs:
        idx, first_ghost = bc.dof_indices()
        bc_local.update(int(i) for i in idx[:first_ghost])
    for name in names:
        cells = el.bundle.cells_of(name)
        for f in range(el.nfields):
            act = el.sig[f].x.array.reshape(-1, 3)[cells, 0] > 0 if len(cells) else np.zeros(0, bool)
            anyact = comm.allreduce(bool(act.any()), op=MPI.LOR)
            if not anyact:
                continue
            nodes = np.unique(V.dofmap.list[cells[act]].ravel()) if act.any() else np.zeros(0, np.int64)
            nodes = nodes[nodes < nloc]
            d = nodes * bs + f
            d = d[col[d] < 0]
            d = np.array([i for i in d if int(i) not in bc_local], dtype=np.int64)
            if comm.allreduce(len(d), op=MPI.SUM) == 0:
                continue
            col[d] = ncol
            ncol += 1
    rstart = imap.local_range[0] * bs
    W = PETSc.Mat().createAIJ(((nloc * bs, None), (None, ncol)), nnz=(1, 1), comm=comm)
    W.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
    rows = np.flatnonzero(col >= 0)
    for r in rows:
        W.setValue(rstart + r, int(col[r]), 1.0)
    W.assemble()
    return W, ncol



class Coarse:
    """Exact solve on the span of Z: y = Z (Z^T A Z)^{-1} Z^T x (replicated dense E)."""

    def __init__(self, Z):
        self.Z = Z
        self.c = Z.createVecRight()
        self.Einv = None

    def setUp(self, pc):
        A, _ = pc.getOperators()
        E = A.ptap(self.Z)
        m = E.getSize()[0]
        r0, r1 = E.getOwnershipRange()
        loc = np.zeros((r1 - r0, m))
        for i in range(r0, r1):
            cols, vals = E.getRow(i)
            loc[i - r0, cols] = vals
        full = np.vstack(comm.allgather(loc))
        self.Einv = np.linalg.inv(0.5 * (full + full.T))
        self.r0, self.r1 = r0, r1
        E.destroy()

    def apply(self, pc, x, y):
        self.Z.multTranspose(x, self.c)
        g = np.concatenate(comm.allgather(self.c.getArray(readonly=True).copy()))
        self.c.setArray((self.Einv @ g)[self.r0:self.r1])
        self.Z.mult(self.c, y)


if mode in ("add", "symm"):
    W, ncol = region_space(el)
    ksp = el.ksp
    prefix = ksp.getOptionsPrefix()
    pc = ksp.getPC()
    gamg = {k: v for k, v in solvers.preset("gamg", 10**9, 1e-12, 2).items() if k.startswith(("pc_", "mg_"))}
    opts = PETSc.Options()
    opts.prefixPush(prefix)
    for k, v in gamg.items():
        opts["sub_1_" + k] = v
    opts.prefixPop()
    pc.setType("composite")
    pc.setCompositeType(PETSc.PC.CompositeType.ADDITIVE if mode == "add" else PETSc.PC.CompositeType.SYMMETRIC_MULTIPLICATIVE)
    pc.addCompositePCType("shell")
    pc.addCompositePCType("gamg")
    sh = pc.getCompositePC(0)
    sh.setType("python")
    sh.setPythonContext(Coarse(W))
    g = pc.getCompositePC(1)
    g.setFromOptions()
    if comm.rank == 0:
        print("coarse space", ncol, g.getOptionsPrefix(), g.getType())

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
    print(mode, f"{series}s{parallel}p ndofs", el.ndofs, "its", its, "mean", np.mean(its), "cpu_el", round(cpu[0], 2), "pc_setups", el.pc_setups, {k: round(v, 2) for k, v in T.items()}, "V", [repr(v) for v in volts[-2:]])
    ksp = el.ksp
    print("load average", open("/proc/loadavg").read().split()[:3])
sim.close()
