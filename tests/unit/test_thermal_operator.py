"""The thermal operator of a new dt as ``K + M/dt`` and the power-of-two preconditioner matrix.

Reference: the operator assembled directly from the bilinear form at the same dt (DOLFINx),
and the MUMPS solution of the same steps.
"""

import dolfinx_solver  # noqa: F401
import numpy as np
import pytest
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem, mesh

from busbarfem.physics.thermal import ThermalProblem, preconditioner_dt


class _Bundle:
    def __init__(self, msh):
        self.mesh = msh
        n = msh.topology.index_map(3).size_local + msh.topology.index_map(3).num_ghosts
        self._cells = np.arange(n, dtype=np.int32)

    def cells_of(self, name):
        return self._cells

    def space(self, family, degree, shape=()):
        return fem.functionspace(self.mesh, (family, degree, shape) if shape else (family, degree))


def _problem(solver, radiation=False):
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 8, 8, 8)
    msh.topology.create_connectivity(2, 3)
    ext = mesh.exterior_facet_indices(msh.topology)
    left = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 0.0))
    bcs = [("convection", ext, {"h": 10.0, "T_amb": 290.0}), ("temperature", left, {"T": 300.0})]
    if radiation:
        top = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 1.0))
        bcs.append(("radiation", top, {"emissivity": 0.8, "T_amb": 290.0}))
    src = fem.Constant(msh, PETSc.ScalarType(1e5))
    return ThermalProblem(_Bundle(msh), {"all": ((1.0, 2.0, 3.0), 1000.0, 800.0)}, bcs, src, 298.0, solver=solver)


@pytest.mark.parametrize("radiation", [False, True])
def test_summed_operator_equals_the_assembled_one(radiation):
    th = _problem("lu", radiation)
    for dt in (10.0, 25.0, None, 5.0):
        th.solve(dt)
        th.advance()
        ref = fpetsc.assemble_matrix(th.a, bcs=th.dirichlet)  # inv_dt and T_k as in the solve
        ref.assemble()
        diff = th.A.copy()
        diff.axpy(-1.0, ref, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
        assert diff.norm() <= 1e-13 * ref.norm(), dt
        ref.destroy()
        diff.destroy()


def test_preconditioner_dt_is_the_nearest_power_of_two():
    assert preconditioner_dt(1.0) == 1.0
    assert preconditioner_dt(30.0) == 32.0
    assert preconditioner_dt(22.0) == 16.0   # log2 22 = 4.46
    assert preconditioner_dt(23.0) == 32.0   # log2 23 = 4.52
    assert preconditioner_dt(0.3) == 0.25


def test_iterative_steps_keep_the_preconditioner_within_a_bucket_and_match_lu():
    lu, it = _problem("lu"), _problem("gamg")
    pmats = []
    for dt in (10.0, 11.0, 9.0, 30.0, 31.0):
        lu.solve(dt)
        it.solve(dt)
        lu.advance()
        it.advance()
        pmats.append(it._P_key)
        # same steps: CG at rtol 1e-10 on the exact operator, whatever P it is preconditioned with
        assert np.max(np.abs(lu.T.x.array - it.T.x.array)) < 1e-5
    assert pmats[0] == pmats[1] == pmats[2] == (8.0, 1)   # dt 9-11: one P (dt_q = 8), one K
    assert pmats[3] == pmats[4] == (32.0, 1)
    assert it.ksp.getOperators()[1].handle == it._P.handle
    assert it.ksp.getOperators()[0].handle == it.A.handle
