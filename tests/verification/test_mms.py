r"""Method of manufactured solutions: observed convergence rates of the discretisations.

Each test builds the weak form from the library's own form builders
(:func:`busbarfem.physics.electrical.conduction_form`, ``transfer_form``,
``transfer_source``, :func:`busbarfem.physics.thermal.heat_bilinear`, ``heat_linear``,
``convection_terms``), adds the source that makes a chosen smooth function the exact
solution, solves on unit cubes refined twice (n = 4-8-16 cells per side; 6-12-24 where n = 4
is still pre-asymptotic; 2-4-8 for P2), and fits the log-log slope of the error against h
with ``numpy.polyfit`` (scikit-fem style): the slope must be within 0.1 of the theoretical
rate and the finest error below an absolute cap (about 1.5x the measured value).

Expected rates (smooth solutions, quasi-uniform meshes):

- P1: L2 error O(h^2), H1 seminorm error O(h);  P2: L2 error O(h^3).
- Backward Euler: error O(dt) at fixed (fine) space.

The temperature that sigma(T) reads is a finite-element Function of the same degree as the
potential (as in :class:`~busbarfem.physics.electrical.ElectricalProblem`), while the source
is made with the exact temperature, so the variational crime of interpolating T is part of
what is measured. At P1 the library evaluates sigma once per cell at the cell-mean
temperature (``cell_mean_conductivity``) and the P1 test does the same.
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem, mesh as dmesh

from busbarfem.physics.electrical import (cell_mean_conductivity, conduction_form, conductivity, transfer_form,
                                         transfer_source)
from busbarfem.physics.thermal import convection_terms, heat_bilinear, heat_linear

COMM = MPI.COMM_WORLD
LU = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
NS = (4, 8, 16)

# Conductor data: anisotropic sigma_ref (the library takes a 3-vector), alpha > 0 and a
# temperature field that varies by ~60 K, so sigma(T) changes by ~20 % across the cube.
SIGMA_REF = (1.0, 2.0, 0.5)
ALPHA = 4.0e-3
T_REF = 293.15


def rate(ns, errors) -> float:
    """Least-squares slope of log(error) against log(h), h = 1/n."""
    h = 1.0 / np.asarray(ns, dtype=float)
    return float(np.polyfit(np.log(h), np.log(np.asarray(errors)), 1)[0])


def norms(uh, u_exact, dx) -> tuple[float, float]:
    """(L2 error, H1-seminorm error) of ``uh`` against a UFL expression, over all ranks."""
    e = uh - u_exact
    l2 = fem.assemble_scalar(fem.form(e * e * dx))
    h1 = fem.assemble_scalar(fem.form(ufl.inner(ufl.grad(e), ufl.grad(e)) * dx))
    return (float(np.sqrt(COMM.allreduce(l2, op=MPI.SUM))), float(np.sqrt(COMM.allreduce(h1, op=MPI.SUM))))


def boundary_dofs(V, msh):
    """Dofs of ``V`` on the whole boundary of ``msh``."""
    fdim = msh.topology.dim - 1
    msh.topology.create_connectivity(fdim, msh.topology.dim)
    facets = dmesh.exterior_facet_indices(msh.topology)
    return fem.locate_dofs_topological(V, fdim, facets)


def interpolate(V, expr) -> fem.Function:
    """Interpolate a UFL expression (in x) into ``V``."""
    f = fem.Function(V)
    f.interpolate(fem.Expression(expr, V.element.interpolation_points))
    return f


def temperature_exact(x):
    """A smooth temperature field [K] spanning ~T_ref .. T_ref + 60 K."""
    return T_REF + 30.0 * (1.0 + ufl.sin(2.0 * x[0]) * ufl.cos(1.5 * x[1]) + 0.5 * x[2] ** 2)


def sigma_exact(msh, x):
    sig = ufl.as_vector([fem.Constant(msh, PETSc.ScalarType(s)) for s in SIGMA_REF])
    return conductivity(sig, fem.Constant(msh, PETSc.ScalarType(ALPHA)), fem.Constant(msh, PETSc.ScalarType(T_REF)),
                        temperature_exact(x))


# ------------------------------------------------------------------------------ (a) conductor
def phi_conductor(x):
    return ufl.sin(np.pi * x[0]) * ufl.cos(0.5 * np.pi * x[1]) * ufl.exp(0.5 * x[2]) + x[0] * x[1]


def solve_conductor(n: int, order: int) -> tuple[float, float]:
    """-div(sigma(T) grad phi) = f, phi = phi_exact on the boundary; returns (L2, H1) errors."""
    msh = dmesh.create_unit_cube(COMM, n, n, n)
    x = ufl.SpatialCoordinate(msh)
    V = fem.functionspace(msh, ("Lagrange", order))
    # T as the library holds it: a Lagrange Function of the potential's degree
    T_h = interpolate(V, temperature_exact(x))
    if order == 1:
        # the library's P1 operator: one sigma per cell, at the cell-mean temperature
        sig_c = fem.Function(fem.functionspace(msh, ("DG", 0, (3,))))
        cell_mean_conductivity(T_h, SIGMA_REF, ALPHA, T_REF, sig_c)
        S_h = ufl.diag(sig_c)
    else:
        sig = ufl.as_vector([fem.Constant(msh, PETSc.ScalarType(s)) for s in SIGMA_REF])
        S_h = conductivity(sig, fem.Constant(msh, PETSc.ScalarType(ALPHA)), fem.Constant(msh, PETSc.ScalarType(T_REF)),
                           T_h)
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2 * order + 4})
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = conduction_form([S_h], [u], [v], dx)
    phi_ex = phi_conductor(x)
    f = -ufl.div(sigma_exact(msh, x) * ufl.grad(phi_ex))
    L = f * v * dx
    bc = fem.dirichletbc(interpolate(V, phi_ex), boundary_dofs(V, msh))
    problem = fpetsc.LinearProblem(a, L, bcs=[bc], petsc_options=LU, petsc_options_prefix=f"mms_cond_{order}_{n}_")
    phi_h = problem.solve()
    assert problem.solver.getConvergedReason() > 0
    return norms(phi_h, phi_ex, ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2 * order + 4}))


def test_conductor_sigma_of_T_p1_rates():
    errs = [solve_conductor(n, 1) for n in NS]
    l2, h1 = zip(*errs)
    assert abs(rate(NS, l2) - 2.0) < 0.1, (l2, rate(NS, l2))
    assert abs(rate(NS, h1) - 1.0) < 0.1, (h1, rate(NS, h1))
    assert l2[-1] < 5e-3 and h1[-1] < 0.25, (l2, h1)


def test_conductor_sigma_of_T_p2_rate():
    ns = (2, 4, 8)
    errs = [solve_conductor(n, 2) for n in ns]
    l2, h1 = zip(*errs)
    assert abs(rate(ns, l2) - 3.0) < 0.1, (l2, rate(ns, l2))
    assert abs(rate(ns, h1) - 2.0) < 0.1, (h1, rate(ns, h1))
    assert l2[-1] < 5e-4 and h1[-1] < 0.03, (l2, h1)


# ------------------------------------------------------------------ (b) MSMD two potentials
SIGMA_POS = (3.0, 3.0, 0.5)   # anisotropic collector conductivities (radial, radial, axial)
SIGMA_NEG = (1.0, 1.0, 2.0)
G_CELL = 20.0                 # 1/(R0 Vol): strong enough that the coupling term matters
EMF = 3.7
STAGE_SIGN = -1.0             # an even stage: phi+ = phi2


def msmd_exact(x):
    p1 = ufl.cos(np.pi * x[0]) * ufl.sin(np.pi * x[1]) + 0.5 * x[2]
    p2 = ufl.sin(0.5 * np.pi * x[2]) * ufl.exp(x[0]) - x[1] ** 2
    return p1, p2


def solve_msmd(n: int) -> list[tuple[float, float]]:
    """Both collector fields coupled by g (phi1 - phi2) with an EMF source; per-field errors."""
    msh = dmesh.create_unit_cube(COMM, n, n, n)
    x = ufl.SpatialCoordinate(msh)
    V = fem.functionspace(msh, ("Lagrange", 1, (2,)))  # ElectricalProblem's layout
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 6})
    c = lambda val: fem.Constant(msh, PETSc.ScalarType(val))  # noqa: E731
    S = [ufl.diag(ufl.as_vector([c(s) for s in SIGMA_POS])), ufl.diag(ufl.as_vector([c(s) for s in SIGMA_NEG]))]
    g, s, E = c(G_CELL), c(STAGE_SIGN), c(EMF)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    uc, vc = [u[0], u[1]], [v[0], v[1]]
    a = conduction_form(S, uc, vc, dx) + transfer_form(g, uc, vc, dx)
    p1, p2 = msmd_exact(x)
    # strong form: -div(S1 grad p1) + g (p1 - p2) = g s E + f1, and the mirror for p2
    f1 = -ufl.div(S[0] * ufl.grad(p1)) + g * (p1 - p2) - g * s * E
    f2 = -ufl.div(S[1] * ufl.grad(p2)) - g * (p1 - p2) + g * s * E
    L = transfer_source(g, s, E, vc, dx) + (f1 * vc[0] + f2 * vc[1]) * dx
    exact = interpolate(V, ufl.as_vector([p1, p2]))
    bc = fem.dirichletbc(exact, boundary_dofs(V, msh))
    problem = fpetsc.LinearProblem(a, L, bcs=[bc], petsc_options=LU, petsc_options_prefix=f"mms_msmd_{n}_")
    phi = problem.solve()
    assert problem.solver.getConvergedReason() > 0
    dxe = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 6})
    return [norms(phi[0], p1, dxe), norms(phi[1], p2, dxe)]


def test_msmd_two_potential_rates():
    # 4-8-16 gives L2 slopes 1.95 / 1.92 (pre-asymptotic at n = 4); 6-12-24: 1.97 / 1.95
    ns = (6, 12, 24)
    errs = [solve_msmd(n) for n in ns]
    for field in range(2):
        l2 = [e[field][0] for e in errs]
        h1 = [e[field][1] for e in errs]
        assert abs(rate(ns, l2) - 2.0) < 0.1, (field, l2, rate(ns, l2))
        assert abs(rate(ns, h1) - 1.0) < 0.1, (field, h1, rate(ns, h1))
        assert l2[-1] < 4e-3 and h1[-1] < 0.25, (field, l2, h1)


def test_msmd_coupling_is_exercised():
    """Guard: the transfer term moves the solution (the rates above are not pure Poisson)."""
    msh = dmesh.create_unit_cube(COMM, 4, 4, 4)
    V = fem.functionspace(msh, ("Lagrange", 1, (2,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.dx(domain=msh)
    c = lambda val: fem.Constant(msh, PETSc.ScalarType(val))  # noqa: E731
    S = [ufl.Identity(3), ufl.Identity(3)]
    a = conduction_form(S, [u[0], u[1]], [v[0], v[1]], dx) + transfer_form(c(G_CELL), [u[0], u[1]], [v[0], v[1]], dx)
    L = transfer_source(c(G_CELL), c(1.0), c(EMF), [v[0], v[1]], dx)
    zero = fem.Function(V)
    bc = fem.dirichletbc(zero, boundary_dofs(V, msh))
    phi = fpetsc.LinearProblem(a, L, bcs=[bc], petsc_options=LU, petsc_options_prefix="mms_msmd_guard_").solve()
    # the EMF drives phi1 - phi2 > 0 inside (odd stage: phi+ = phi1)
    diff = phi.x.array[0::2] - phi.x.array[1::2]
    assert COMM.allreduce(float(diff.max()) if diff.size else 0.0, op=MPI.MAX) > 0.1


# ------------------------------------------------------------------ (c) heat, backward Euler
K_DIAG = (1.0, 2.0, 0.5)
RHO_CP = 2.0
H_CONV = 5.0


class HeatMMS:
    """Backward-Euler heat problem on the unit cube with the library's heat forms.

    Convection (Robin) on x = 0 and x = 1 with a manufactured ambient temperature
    ``T_amb = T + (K grad T . n)/h`` (so the exact solution satisfies the BC); the other four
    faces carry the exact temperature (Dirichlet).
    """

    def __init__(self, n: int, order: int, T_exact):
        msh = dmesh.create_unit_cube(COMM, n, n, n)
        self.msh = msh
        x = ufl.SpatialCoordinate(msh)
        self.t = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.inv_dt = fem.Constant(msh, PETSc.ScalarType(1.0))
        self.T_ex = T_exact(x, self.t)
        V = fem.functionspace(msh, ("Lagrange", order))
        self.V = V
        fdim = msh.topology.dim - 1
        robin = dmesh.locate_entities_boundary(msh, fdim, lambda p: np.isclose(p[0], 0.0) | np.isclose(p[0], 1.0))
        msh.topology.create_connectivity(fdim, msh.topology.dim)
        diri = np.setdiff1d(dmesh.exterior_facet_indices(msh.topology), robin)
        tags = dmesh.meshtags(msh, fdim, robin, np.full(len(robin), 1, np.int32))
        q_deg = 2 * order + 4
        dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": q_deg})
        ds = ufl.Measure("ds", domain=msh, subdomain_data=tags, metadata={"quadrature_degree": q_deg})
        self.dx = dx
        c = lambda val: fem.Constant(msh, PETSc.ScalarType(val))  # noqa: E731
        k_diag = ufl.as_vector([c(k) for k in K_DIAG])
        K = ufl.diag(k_diag)
        rho_cp, h = c(RHO_CP), c(H_CONV)
        nrm = ufl.FacetNormal(msh)
        T_amb = self.T_ex + ufl.dot(K * ufl.grad(self.T_ex), nrm) / h
        self.T_n = fem.Function(V)
        u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        # source from the exact time derivative at t^{n+1} (where backward Euler collocates)
        q = rho_cp * self._dTdt(x, T_exact) - ufl.div(K * ufl.grad(self.T_ex))
        a_conv, L_conv = convection_terms(h, T_amb, u, v, ds(1))
        a = heat_bilinear(self.inv_dt, rho_cp, k_diag, u, v, dx) + a_conv
        L = heat_linear(self.inv_dt, rho_cp, self.T_n, q, v, dx) + L_conv
        self.T_D = fem.Function(V)
        self.D_expr = fem.Expression(self.T_ex, V.element.interpolation_points)
        bc = fem.dirichletbc(self.T_D, fem.locate_dofs_topological(V, fdim, diri))
        self.problem = fpetsc.LinearProblem(a, L, bcs=[bc], petsc_options=LU,
                                            petsc_options_prefix=f"mms_heat_{order}_{n}_{id(self)}_")
        self.T_n.interpolate(fem.Expression(self.T_ex, V.element.interpolation_points))

    def _dTdt(self, x, T_exact):
        # d/dt of the exact solution, by differentiating with respect to a UFL variable
        tv = ufl.variable(self.t)
        return ufl.diff(T_exact(x, tv), tv)

    def advance(self, t_end: float, nsteps: int) -> tuple[float, float]:
        """March to ``t_end`` in ``nsteps`` equal steps; returns (L2, H1) errors at t_end."""
        dt = t_end / nsteps
        self.inv_dt.value = 1.0 / dt
        for k in range(1, nsteps + 1):
            self.t.value = k * dt
            self.T_D.interpolate(self.D_expr)
            T = self.problem.solve()
            assert self.problem.solver.getConvergedReason() > 0
            self.T_n.x.array[:] = T.x.array
        return norms(self.T_n, self.T_ex, self.dx)


def heat_linear_in_time(x, t):
    """Linear in t, so backward Euler has no time error and only the space error remains."""
    return (300.0 + 10.0 * ufl.sin(np.pi * x[0]) * ufl.cos(np.pi * x[1]) * ufl.exp(x[2])
            + t * (5.0 + 3.0 * ufl.cos(np.pi * x[2]) * x[0] ** 2))


def heat_smooth_in_time(x, t):
    """Linear in space (P1 represents it exactly), nonlinear in time: only the time error remains."""
    return 300.0 + (1.0 + x[0] + 2.0 * x[1] - x[2]) * (1.0 + ufl.sin(t))


def heat_linear_in_space_and_time(x, t):
    """In the P1 space at every step and exact for backward Euler: reproduced to round-off."""
    return 300.0 + (1.0 + x[0] + 2.0 * x[1] - x[2]) * (1.0 + 2.0 * t)


def test_heat_exactness_linear_in_space_and_time():
    l2, h1 = HeatMMS(4, 1, heat_linear_in_space_and_time).advance(1.0, 3)
    assert l2 < 1e-10 and h1 < 1e-9, (l2, h1)


def test_heat_backward_euler_convection_space_rates():
    # n = 4 is still pre-asymptotic for this solution (slope 1.92 over 4-8-16); 6-12-24 gives 1.96
    ns = (6, 12, 24)
    errs = [HeatMMS(n, 1, heat_linear_in_time).advance(0.2, 4) for n in ns]
    l2, h1 = zip(*errs)
    assert abs(rate(ns, l2) - 2.0) < 0.1, (l2, rate(ns, l2))
    assert abs(rate(ns, h1) - 1.0) < 0.1, (h1, rate(ns, h1))
    # the solution is O(300 K) with O(10 K) variation
    assert l2[-1] < 0.06 and h1[-1] < 4.0, (l2, h1)


def test_heat_backward_euler_time_rate():
    steps = (8, 16, 32, 64)
    errs = [HeatMMS(6, 1, heat_smooth_in_time).advance(1.0, m)[0] for m in steps]
    slope = rate(steps, errs)  # h = 1/n doubles as dt = t_end/steps with t_end = 1
    assert abs(slope - 1.0) < 0.1, (errs, slope)
    assert errs[-1] < 1e-3, errs
