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

import ufl

from busbarfem.physics.thermal import ThermalProblem, heat_linear, preconditioner_dt, quadrature_degree


class _Bundle:
    def __init__(self, msh):
        self.mesh = msh
        n = msh.topology.index_map(3).size_local + msh.topology.index_map(3).num_ghosts
        self._cells = np.arange(n, dtype=np.int32)

    def cells_of(self, name):
        return self._cells

    def space(self, family, degree, shape=()):
        return fem.functionspace(self.mesh, (family, degree, shape) if shape else (family, degree))


def _problem(solver, radiation=False, k=(1.0, 2.0, 3.0)):
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 8, 8, 8)
    msh.topology.create_connectivity(2, 3)
    ext = mesh.exterior_facet_indices(msh.topology)
    left = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 0.0))
    bcs = [("convection", ext, {"h": 10.0, "T_amb": 290.0}), ("temperature", left, {"T": 300.0})]
    if radiation:
        top = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 1.0))
        bcs.append(("radiation", top, {"emissivity": 0.8, "T_amb": 290.0}))
    src = fem.Constant(msh, PETSc.ScalarType(1e5))
    return ThermalProblem(_Bundle(msh), {"all": (k, 1000.0, 800.0)}, bcs, src, 298.0, solver=solver)


@pytest.mark.parametrize("radiation,k", [(False, (1.0, 2.0, 3.0)), (True, (1.0, 2.0, 3.0)), (False, (2.0, 2.0, 2.0))])
def test_summed_operator_equals_the_assembled_one(radiation, k):
    """(the isotropic case has a scalar DG0 k)"""
    th = _problem("lu", radiation, k)
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
    pmats, counts = [], []
    for dt in (10.0, 11.0, 9.0, 30.0, 31.0, 32.0):
        lu.solve(dt)
        it.solve(dt)
        lu.advance()
        it.advance()
        pmats.append(it._P_key)
        counts.append(it._P_count)
        # same steps: CG at rtol 1e-10 on the exact operator, whatever P it is preconditioned with
        assert np.max(np.abs(lu.T.x.array - it.T.x.array)) < 1e-5
    assert pmats[:3] == [(8.0, 0)] * 3          # dt 9-11: one P (dt_q = 8)
    assert pmats[3:] == [(32.0, 0)] * 3
    assert counts == [1, 1, 1, 2, 2, 2]         # P assembled once per bucket
    op, pmat = it.ksp.getOperators()
    assert pmat.handle == it._P.handle
    assert op.handle == it._P.handle            # dt = 32 = dt_q: P is the operator itself
    assert it._K is None                        # the iterative problem holds P and M only


@pytest.mark.parametrize("radiation", [False, True])
def test_iterative_operator_applies_the_assembled_one(radiation):
    """The iterative operator at dt != dt_q (P shifted in place by (1/dt - 1/dt_q) M) applied to
    a vector equals the matrix assembled from the bilinear form at dt (DOLFINx) applied to it, to
    1e-13 of the product; the preconditioner is built once per bucket (dt 10, 11 and 8 share
    dt_q = 8, the shift undone at 8; then 16, steady, 5 -> 4) and, without radiation, kept for
    the bucket's other dt."""
    th = _problem("gamg", radiation)
    rng = np.random.default_rng(3)
    builds = []
    for dt in (10.0, 11.0, 8.0, 16.0, None, 5.0):
        th.solve(dt)
        th.advance()
        op = th.ksp.getOperators()[0]
        assert op.handle == th._P.handle
        builds.append(th._P_count)
        ref = fpetsc.assemble_matrix(th.a, bcs=th.dirichlet)  # inv_dt and T_k as in the solve
        ref.assemble()
        x, y, y_ref = ref.createVecRight(), ref.createVecLeft(), ref.createVecLeft()
        x.array[:] = rng.standard_normal(x.getLocalSize())
        op.mult(x, y)
        ref.mult(x, y_ref)
        y.axpy(-1.0, y_ref)
        assert y.norm() <= 1e-13 * y_ref.norm(), dt
        for o in (ref, x, y, y_ref):
            o.destroy()
    # with radiation P is re-assembled (and the hierarchy rebuilt) on every call
    assert builds == ([1, 2, 3, 4, 5, 6] if radiation else [1, 1, 1, 2, 3, 4])
    th.destroy()


# ---------------------------------------------------------------- generated heat from the source vector
def _source_problem(nonpolynomial: bool, fixed_T: bool = True):
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 6, 6, 6)
    msh.topology.create_connectivity(2, 3)
    ext = mesh.exterior_facet_indices(msh.topology)
    left = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[0], 0.0))
    bcs = [("convection", ext, {"h": 10.0, "T_amb": 290.0})]
    if fixed_T:
        bcs.append(("temperature", left, {"T": 300.0}))
    bundle = _Bundle(msh)
    V = bundle.space("Lagrange", 1)
    g = fem.Function(V)
    g.interpolate(lambda x: 1e5 * (1.0 + x[0] + 2.0 * x[1] ** 2))
    th = ThermalProblem(bundle, {"all": ((1.0, 2.0, 3.0), 1000.0, 800.0)}, bcs, None, 298.0, solver="lu")
    th.T_k.interpolate(lambda x: 298.0 + 20.0 * x[2])
    alpha = fem.Constant(msh, PETSc.ScalarType(0.004))
    # P1 x P1 (polynomial, every rule integrates it exactly) or sigma(T)-like (rational)
    q = g / (1.0 + alpha * (th.T_k - 290.0)) if nonpolynomial else g * (1.0 + alpha * (th.T_k - 290.0))
    th.set_source(q)
    return th, q, alpha


def _scalar(th, expr, degree=None):
    md = {} if degree is None else {"quadrature_degree": degree}
    return th.comm.allreduce(fem.assemble_scalar(fem.form(expr * ufl.dx(domain=th.bundle.mesh, metadata=md))),
                             op=MPI.SUM)


@pytest.mark.parametrize("nonpolynomial", [False, True])
def test_generated_heat_is_the_sum_of_the_source_vector(nonpolynomial):
    """heat_flows().generated after a solve = sum of the owned (q, v_i) = (q, 1), the old scalar
    assembly, to 1e-12; a coefficient changed after the solve is seen (no stale cache)."""
    th, q, alpha = _source_problem(nonpolynomial)
    v = ufl.TestFunction(th.V)
    deg = quadrature_degree(q * v * ufl.dx(domain=th.bundle.mesh))
    th.solve(10.0)
    assert th._q_cache is not None
    gen = th.heat_flows().generated
    ref_same_rule = _scalar(th, q, deg)   # the old form, integrated with the rule of (q, v)
    ref_default = _scalar(th, q)          # the old form as it was (UFL's estimate for q alone)
    assert abs(gen - ref_same_rule) <= 1e-12 * abs(ref_same_rule)
    if nonpolynomial:  # the default rule differs from (q, v)'s by its quadrature error only
        assert abs(gen - ref_default) <= 1e-6 * abs(ref_default)
    else:  # degree 2 (q) and 3 (q v): both exact
        assert abs(gen - ref_default) <= 1e-12 * abs(ref_default)
    # a Function the source reads changes after the solve: the next heat_flows sees it
    th.T_k.x.array[:] += 15.0
    gen2 = th.heat_flows().generated
    ref2 = _scalar(th, q, deg)
    assert abs(gen2 - gen) > 1e-4 * abs(gen)
    assert abs(gen2 - ref2) <= 1e-12 * abs(ref2)
    # a Constant too
    alpha.value = 0.002
    gen3 = th.heat_flows().generated
    ref3 = _scalar(th, q, deg)
    assert abs(gen3 - gen2) > 1e-4 * abs(gen2)
    assert abs(gen3 - ref3) <= 1e-12 * abs(ref3)
    th.destroy()


def test_thermal_solve_with_split_source_vector_matches_the_one_form_rhs():
    """The right-hand side assembled as L_main + (q, v) solves to the same T as the single
    form ``heat_linear`` + the convection term (MUMPS both), to 1e-12 relative."""
    th, q, _ = _source_problem(True)
    th.solve(10.0)
    T_new = th.T.x.array.copy()
    v = ufl.TestFunction(th.V)
    dx = ufl.dx(domain=th.bundle.mesh)
    ds = ufl.Measure("ds", domain=th.bundle.mesh, subdomain_data=th.facet_tags)
    h, Ta = fem.Constant(th.bundle.mesh, 10.0), fem.Constant(th.bundle.mesh, 290.0)
    L = heat_linear(th.inv_dt, th.rho_cp, th.T_n, q, v, dx) + h * Ta * v * ds(1)
    b = fpetsc.assemble_vector(fem.form(L))
    fpetsc.apply_lifting(b, [th.a], bcs=[th.dirichlet])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    fpetsc.set_bc(b, th.dirichlet)
    x = b.duplicate()
    th.ksp.solve(b, x)
    ref = x.array_r
    own = th.owned()
    assert np.max(np.abs(own - ref)) <= 1e-12 * np.max(np.abs(ref))
    assert not np.allclose(T_new, 298.0)
    for o in (b, x):
        o.destroy()
    th.destroy()


@pytest.mark.parametrize("fixed_T", [False, True])
def test_stored_heat_from_the_mass_matrix_equals_the_form(fixed_T):
    """Without fixed temperatures the stored heat is 1^T M (T - T_n)/dt; it equals the scalar form
    to 1e-12 (with them, the form itself is used), and the energy balance closes as before."""
    th, q, _ = _source_problem(True, fixed_T)
    for dt in (10.0, 20.0):
        th.solve(dt)
        fl = th.heat_flows()
        ref = th.comm.allreduce(fem.assemble_scalar(th._stored_form), op=MPI.SUM)
        assert abs(ref) > 1e-3 * abs(fl.generated)  # a stored heat that matters
        assert abs(fl.stored - ref) <= 1e-12 * abs(ref)
        th.advance()
    if not fixed_T:  # no reaction: generated = stored + convection up to the solver tolerance
        assert abs(fl.residual) <= 1e-6 * abs(fl.generated)
    th.destroy()


@pytest.mark.parametrize("value", [0.0, 2.0e4])
def test_plain_number_source_matches_a_constant_source(value):
    """A heat source given as a plain number (``source=0.0`` as the coolant tests pass it, or
    any float) solves to the same T as the same value as a ``fem.Constant`` (1e-12), generates
    value * volume (the unit cube: exactly 0 for 0.0, which has no source vector), and the
    energy balance closes."""
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 5, 5, 5)
    msh.topology.create_connectivity(2, 3)
    ext = mesh.exterior_facet_indices(msh.topology)
    bcs = [("convection", ext, {"h": 10.0, "T_amb": 290.0})]
    props = {"all": ((1.0, 2.0, 3.0), 1000.0, 800.0)}
    out = []
    for src in (value, fem.Constant(msh, PETSc.ScalarType(value))):
        th = ThermalProblem(_Bundle(msh), props, bcs, src, 298.0, solver="lu")
        th.solve(50.0)
        fl = th.heat_flows()
        out.append((th.owned().copy(), fl))
        th.destroy()
    (T_num, fl_num), (T_c, fl_c) = out
    assert np.max(np.abs(T_num - T_c)) <= 1e-12 * np.max(np.abs(T_c))
    assert not np.allclose(T_num, 298.0)  # the step did something (cooling, or heating)
    if value == 0.0:
        assert fl_num.generated == 0.0
    assert abs(fl_num.generated - value * 1.0) <= 1e-12 * max(value, 1.0)
    assert abs(fl_num.generated - fl_c.generated) <= 1e-12 * max(value, 1.0)
    assert abs(fl_num.residual) <= 1e-6 * max(abs(fl_num.convection), abs(fl_num.stored))


def _problem_free(solver):
    """Convection and a heat flux, no fixed temperature or radiation: the M T_n / dt right-hand side."""
    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 8, 8, 8)
    msh.topology.create_connectivity(2, 3)
    ext = mesh.exterior_facet_indices(msh.topology)
    top = mesh.locate_entities_boundary(msh, 2, lambda x: np.isclose(x[2], 1.0))
    bcs = [("convection", ext, {"h": 10.0, "T_amb": 290.0}), ("heat_flux", top, {"flux": 500.0})]
    src = fem.Constant(msh, PETSc.ScalarType(1e5))
    return ThermalProblem(_Bundle(msh), {"all": ((1.0, 2.0, 3.0), 1000.0, 800.0)}, bcs, src, 298.0, solver=solver)


@pytest.mark.parametrize("solver", ["lu", "gamg"])
def test_right_hand_side_by_the_mass_matrix_equals_the_assembled_one(solver):
    """Without fixed temperatures, radiation or coolant walls the right-hand side is
    ``M T_n / dt`` + the boundary terms + (q, v); against the assembled ``L`` + ``(q, v)``
    at a non-uniform T_n, for new and repeated dt and the steady solve."""
    th = _problem_free(solver)
    assert th._rhs_by_mass and th._L_bnd is not None
    th.T_n.interpolate(lambda x: 298.0 + 5.0 * x[0] * x[1] + 2.0 * x[2] ** 2)
    th.T.x.array[:] = th.T_n.x.array
    used = []
    for dt in (10.0, 10.0, 25.0, None, 5.0):
        T_n = th.T_n.x.array.copy()
        th.solve(dt)
        used.append(th._MTn is not None)
        ref = fpetsc.create_vector(th.V)
        with ref.localForm() as loc:
            loc.set(0.0)
        th.T_n.x.array[:] = T_n  # (solve does not change T_n; kept explicit)
        fpetsc.assemble_vector(ref, th.L)
        fpetsc.assemble_vector(ref, th.L_q)
        ref.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        diff = th.b.copy()
        diff.axpy(-1.0, ref)
        assert diff.norm() <= 1e-13 * ref.norm(), dt
        ref.destroy()
        diff.destroy()
        th.advance()
    # the direct solve has M from its first operator; GAMG once a dt other than its bucket's came
    assert used[0] if solver == "lu" else any(used)


def _degree_by_form_data(form) -> int:
    """The estimate as FFCx's ``compute_form_data`` leaves it (the reference)."""
    fd = ufl.algorithms.compute_form_data(
        form, do_apply_function_pullbacks=True, do_apply_integral_scaling=True, do_apply_geometry_lowering=True,
        preserve_geometry_types=(ufl.classes.Jacobian,), do_apply_restrictions=True,
        do_append_everywhere_integrals=False, complex_mode=False)
    degs = {int(np.max(i.metadata()["estimated_polynomial_degree"])) for d in fd.integral_data for i in d.integrals}
    assert len(degs) == 1
    return degs.pop()


@pytest.mark.parametrize("geometry_degree", [1, 2])
def test_quadrature_degree_is_compute_form_datas(geometry_degree):
    """``quadrature_degree`` (grouping, estimate and cell scaling only) gives the degree of the
    full ``compute_form_data`` on affine and on curved (P2) tetrahedra, for polynomial, rational,
    gradient and blocked-DG0-test integrands and a subdomain measure."""
    import basix.ufl

    msh = mesh.create_unit_cube(MPI.COMM_WORLD, 2, 2, 2)
    if geometry_degree == 2:
        el = basix.ufl.element("Lagrange", "tetrahedron", 2, shape=(3,))
        x = fem.functionspace(msh, el).tabulate_dof_coordinates()
        cells = fem.functionspace(msh, el).dofmap.list
        dom = ufl.Mesh(el)
        msh = mesh.create_mesh(MPI.COMM_SELF, np.asarray(cells, np.int64), dom, x) if MPI.COMM_WORLD.size == 1 \
            else None
        if msh is None:
            pytest.skip("the curved mesh is built serially")
    V = fem.functionspace(msh, ("Lagrange", geometry_degree))
    Q = fem.functionspace(msh, ("DG", 0, (3,)))
    T, g = fem.Function(V), fem.Function(V)
    k = fem.Function(fem.functionspace(msh, ("DG", 0)))
    v, w = ufl.TestFunction(V), ufl.TestFunction(Q)
    cells = np.arange(msh.topology.index_map(3).size_local, dtype=np.int32)
    tags = mesh.meshtags(msh, 3, cells, np.where(cells % 2 == 0, 1, 2).astype(np.int32))
    dxt = ufl.Measure("dx", domain=msh, subdomain_data=tags)
    dx = ufl.dx(domain=msh)
    forms = [T * g * v * dx, g / (1.0 + 0.004 * (T - 290.0)) * v * dx, k * ufl.inner(ufl.grad(T), ufl.grad(T)) * v * dx,
             (T * g * w[0] + k * w[1] + T * T * T * w[2]) * dx, T * g * w[1] * dxt(1), (T * v + k * v) * dxt((1, 2))]
    degs = [quadrature_degree(f) for f in forms]
    assert degs == [_degree_by_form_data(f) for f in forms]
    # the curved cells' scaling (det J of a P2 map) raises every estimate
    assert degs[0] == (3 if geometry_degree == 1 else 6 + 3), degs
