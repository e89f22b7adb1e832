"""Bare-DOLFINx baseline for B1: the same mesh, forms and solver options, a plain LinearProblem.

What a user would write by hand for the conductor problem busbarfem solves on B1::

    -div(sigma grad phi) = 0,  phi = 1 on terminal_pos,  phi = 0 on terminal_neg,

with ``sigma`` the same piecewise constants per region (DG0, from the busbarfem material
library), P1 (or the case order), and ``dolfinx.fem.petsc.LinearProblem`` with the
PETSc options of busbarfem's preset. ``LinearProblem.solve`` re-assembles the matrix and
the right-hand side on every call, exactly like busbarfem's electrical solve (sigma(T)
changes between steps), so the two per-solve costs compare like with like.

``sigma="temperature"`` uses busbarfem's own ``sigma(T) = diag(sigma_ref)/(1+alpha(T-T_ref))``
UFL expression (a P1 temperature in the kernel) instead, isolating the framework overhead
from the cost of the richer form.

Run alone (one B1 level, JSON on stdout)::

    .venv/bin/python scripts/bench/bare_dolfinx.py --level 0.25M
    .venv/bin/mpirun -n 2 .venv/bin/python scripts/bench/bare_dolfinx.py --level 0.25M

``b1_busbar.py`` imports :class:`BareConduction` and times both in the same process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


class BareConduction:
    """Plain DOLFINx conduction problem on a busbarfem MeshBundle (passive conductors only).

    Args:
        bundle: the busbarfem MeshBundle (mesh, cell tags, region table).
        materials: material name -> busbarfem Material.
        options: PETSc options (the busbarfem preset).
        T0: temperature at which sigma is evaluated [K].
        order: Lagrange degree.
        sigma: ``"const"`` (DG0 scalar sigma(T0)) or ``"temperature"`` (busbarfem's UFL sigma(T)).
    """

    def __init__(self, bundle, materials: dict, options: dict, T0: float, order: int = 1,
                 sigma: str = "const"):
        from busbarfem import naming

        msh = bundle.mesh
        tdim = msh.topology.dim
        Q0 = fem.functionspace(msh, ("DG", 0))
        s_ref, alpha, tref = (fem.Function(Q0) for _ in range(3))
        for name in bundle.volume_names():
            reg = bundle.regions[name]
            m = materials[reg.material]
            cells = bundle.cells_of(name)
            s_ref.x.array[cells] = float(np.mean(m.sigma_ref))
            alpha.x.array[cells] = m.alpha
            tref.x.array[cells] = m.T_ref
        for f in (s_ref, alpha, tref):
            f.x.scatter_forward()
        V = fem.functionspace(msh, ("Lagrange", order))
        if sigma == "const":
            sig = fem.Function(Q0)
            sig.x.array[:] = s_ref.x.array / (1.0 + alpha.x.array * (T0 - tref.x.array))
            coef = sig
        else:
            T = fem.Function(fem.functionspace(msh, ("Lagrange", order)))
            T.x.array[:] = T0
            coef = ufl.as_matrix([[s_ref, 0, 0], [0, s_ref, 0], [0, 0, s_ref]]) / (1.0 + alpha * (T - tref))
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        a = ufl.inner(coef * ufl.grad(u), ufl.grad(v)) * ufl.dx
        L = fem.Constant(msh, PETSc.ScalarType(0.0)) * v * ufl.dx
        msh.topology.create_connectivity(tdim - 1, tdim)
        pos = fem.locate_dofs_topological(V, tdim - 1, bundle.facets_of(naming.TERMINAL_POS))
        neg = fem.locate_dofs_topological(V, tdim - 1, bundle.facets_of(naming.TERMINAL_NEG))
        bcs = [fem.dirichletbc(PETSc.ScalarType(1.0), pos, V), fem.dirichletbc(PETSc.ScalarType(0.0), neg, V)]
        self.V = V
        self.problem = fpetsc.LinearProblem(a, L, bcs=bcs, petsc_options=dict(options),
                                            petsc_options_prefix="bare_elec_")
        # terminal current by the discrete reaction at the terminal_pos dofs (not timed)
        w = fem.Function(V)
        w.x.array[pos] = 1.0
        self._react = fem.form(ufl.inner(coef * ufl.grad(self.problem.u), ufl.grad(w)) * ufl.dx)
        self.comm = msh.comm

    def solve(self) -> int:
        """One solve (matrix + vector assembly, PC setup, KSP); returns the iterations."""
        self.problem.solve()
        ksp = self.problem.solver
        if ksp.getConvergedReason() <= 0:
            raise RuntimeError(f"bare solve failed: reason {ksp.getConvergedReason()}")
        return ksp.getIterationNumber()

    def resistance(self) -> float:
        """Terminal resistance at V = 1 [ohm]."""
        return 1.0 / self.comm.allreduce(fem.assemble_scalar(self._react), op=MPI.SUM)


def main() -> None:
    from busbarfem.materials import resolve_materials
    from busbarfem.physics import solvers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", default="b1_lbar_welded")
    p.add_argument("--level", default="0.25M", choices=list(common.B1_LEVELS), help="B1 mesh level")
    p.add_argument("--solver", default="gamg", choices=["gamg", "lu"])
    p.add_argument("--rtol", type=float, default=1e-8)
    p.add_argument("--sigma", default="const", choices=["const", "temperature"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    comm = MPI.COMM_WORLD
    case, _ = common.load_bench_case(a.case, common.level_overrides(a.level))
    mem = common.MemTrace(comm)
    mem.mark("start")
    bundle, mesh_t = common.build_level(case, comm, common.B1_LEVELS[a.level][1])
    mem.mark("mesh")
    ndofs = bundle.mesh.geometry.index_map().size_global
    opts = solvers.preset(a.solver, ndofs, a.rtol)
    timer = common.Timer(comm)
    with timer("setup"):
        bare = BareConduction(bundle, resolve_materials(case.materials), opts, case.thermal.initial_temperature,
                              order=bundle.element_order, sigma=a.sigma)
    mem.mark("setup")
    its = []
    for _ in range(a.repeats):
        with timer("solve"):
            its.append(bare.solve())
    mem.mark("solve")
    ndofs = bare.V.dofmap.index_map.size_global
    common.emit({"ndofs": ndofs, "ranks": comm.size, "options": opts, "iterations": its,
                 "resistance_ohm": bare.resistance(), "timings": timer.summary(), "mesh": mesh_t,
                 "maxrss_MiB": common.mem_per_rank(comm), "memory": mem.summary(ndofs)}, comm, a.out)


if __name__ == "__main__":
    main()
