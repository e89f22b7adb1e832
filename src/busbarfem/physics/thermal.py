r"""Heat equation on all solids, backward Euler in time (or steady)::

    rho cp (T - T_n)/dt - div(K grad T) = q            in the solids
    -K grad T . n = h (T - T_amb)                      convection
    -K grad T . n = h(x) (T - T_ref(x))                contributions' Robin terms (e.g. coolant channel walls)
    -K grad T . n = eps sigma_SB (T_k^2 + Ta^2)(T_k + Ta)(T - Ta)   radiation (linearised at T_k)
    K grad T . n = q_in                                prescribed flux
    T = T_D                                            fixed temperature

K is diagonal (anisotropic cells: radial/axial principal values along x, y, z). The
steady problem is the same form with ``1/dt = 0``. Forms are compiled once; only the
Constants (dt) and Functions (T_n, T_k, q inputs) change between solves.
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
import ufl.algorithms
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem, mesh as dmesh

from busbarfem.analysis.regions import SupportMeasure, split_by_support
from busbarfem.mesh import MeshBundle
from busbarfem.physics import solvers

STEFAN_BOLTZMANN = 5.670374419e-8  # W/m^2/K^4


def heat_bilinear(inv_dt, rho_cp, k_diag, u, v, dx):
    """``(rho cp/dt u, v) + (K grad u, grad v)`` (K = diag(k_diag), or k_diag itself if it is a
    scalar; 1/dt = 0 for steady)."""
    return inv_dt * rho_cp * u * v * dx + ufl.inner(conductivity(k_diag) * ufl.grad(u), ufl.grad(v)) * dx


def conductivity(k_diag):
    """The conductivity tensor ``diag(k_diag)``, or ``k_diag`` itself if it is a scalar."""
    return k_diag if ufl.as_ufl(k_diag).ufl_shape == () else ufl.diag(k_diag)


def heat_linear(inv_dt, rho_cp, T_n, q, v, dx):
    """``(rho cp/dt T_n + q, v)``."""
    return inv_dt * rho_cp * T_n * v * dx + q * v * dx


def convection_terms(h, T_amb, u, v, ds):
    """Robin pair for ``-K grad T . n = h (T - T_amb)``: (bilinear, linear)."""
    return h * u * v * ds, h * T_amb * v * ds


def quadrature_degree(form) -> int:
    """The quadrature degree FFCx gives the one integral of ``form`` (UFL), from UFL's estimate.

    A form built with ``dx(metadata={"quadrature_degree": quadrature_degree(f)})`` is integrated
    with the same rule as ``f``, so the two agree to round-off. UFL estimates the degree after
    grouping the integrals and before the pullbacks (``compute_form_data``), then adds the
    degree of the reference-cell scaling; only those steps run here (the pullbacks, geometry
    lowering and form data cost ~0.05 s a form and do not change the estimate:
    tests/unit/test_thermal_operator.py compares it with ``compute_form_data``'s).
    """
    from ufl.algorithms.apply_integral_scaling import compute_integrand_scaling_factor
    from ufl.algorithms.compute_form_data import attach_estimated_degrees, preprocess_form
    from ufl.algorithms.domain_analysis import group_form_integrals

    f = group_form_integrals(preprocess_form(form, False), form.ufl_domains(), do_append_everywhere_integrals=False)
    degs = set()
    for itg in attach_estimated_degrees(f).integrals():
        _, scale = compute_integrand_scaling_factor(itg)
        degs.add(int(np.max(np.asarray(itg.metadata()["estimated_polynomial_degree"]) + np.asarray(scale))))
    if len(degs) != 1:
        raise ValueError(f"form has integrals of several quadrature degrees {sorted(degs)}")
    return degs.pop()


def coefficient_values(expr):
    """A callable returning the current value arrays of every Function and Constant ``expr``
    (UFL) depends on."""
    from ufl.algorithms.analysis import extract_constants

    funcs, consts = ufl.algorithms.extract_coefficients(expr), extract_constants(expr)
    return lambda: [f.x.array for f in funcs] + [np.asarray(c.value) for c in consts]


def preconditioner_dt(dt: float) -> float:
    """``dt`` rounded to the nearest power of two (in log): the step size an iterative thermal
    solve builds its preconditioner at (within a factor sqrt(2) of ``dt``)."""
    return float(2.0 ** round(np.log2(dt)))


@dataclass
class HeatFlows:
    """Integrated heat flows of one thermal solve [W] (positive = out of the body for losses).

    Attributes:
        generated: volume heat source.
        stored: rate of change of thermal energy (rho cp dT/dt).
        convection: convective loss per boundary condition index.
        radiation: radiative loss.
        flux_in: prescribed flux into the body.
        fixed_temperature: heat leaving through fixed-temperature boundaries (reaction).
        coolant: heat taken up by coolant channels (Robin terms booked as ``"coolant"``).
    """

    generated: float
    stored: float
    convection: float
    radiation: float
    flux_in: float
    fixed_temperature: float
    coolant: float = 0.0

    @property
    def residual(self) -> float:
        """Energy balance residual: generated + flux in - stored - losses [W]."""
        return (self.generated + self.flux_in - self.stored - self.convection - self.radiation
                - self.fixed_temperature - self.coolant)


class ThermalProblem:
    """Heat conduction with the case's boundary conditions.

    Args:
        bundle: mesh and regions.
        props: region name -> (k 3-vector, rho, cp).
        bcs: list of (type, facet indices, parameters dict) in case order.
        source: UFL expression of the volumetric heat source q [W/m^3].
        T0: initial temperature [K].
        order: polynomial degree.
        solver, rtol, prefix: linear solver settings.
        robin_terms: Robin terms for :meth:`set_source` when ``source`` is given here.

    Robin terms ``h (T - T_ref)`` (``(facets, h, T_ref[, heat])``, :meth:`set_source`) may have
    UFL coefficients (Functions, e.g. DG0 per segment of a coolant channel); whoever changes
    such an ``h`` increments ``robin_version``, and the operator is re-assembled then.

    The problem owns the temperature: ``T`` (the new step), ``T_n`` (the accepted step)
    and ``T_k`` (the coupling iterate that sigma(T), the cell temperatures and the
    radiation linearisation read). A coupled model that needs ``T_k`` before its heat
    source exists (the source depends on the electrical problem, which reads ``T_k``)
    passes ``source=None`` and calls :meth:`set_source` once it has built it.
    """

    def __init__(self, bundle: MeshBundle, props: dict, bcs: list, source, T0: float, order: int = 1,
                 solver: str = "auto", rtol: float = 1e-10, prefix: str = "bbf_heat_",
                 robin_terms=()):
        msh = bundle.mesh
        self.comm = msh.comm
        self.bundle = bundle
        self.V = bundle.space("Lagrange", order)
        self.T = fem.Function(self.V, name="T")
        self.T_n = fem.Function(self.V, name="T_n")
        # last iterate (read by the electrical problem's sigma(T)); radiation linearises at it
        self.T_k = fem.Function(self.V, name="T_k")
        self.set_uniform(T0)
        self._bcs, self._solver, self._rtol, self._prefix = list(bcs), solver, rtol, prefix
        self.ksp = self.A = self.b = self.x = None
        self.robin_version = 0  # bumped by the owner of a Function-valued Robin h when it changes
        self._props(props)
        if source is not None:
            self.set_source(source, robin_terms)

    def _props(self, props: dict) -> None:
        bundle, msh = self.bundle, self.bundle.mesh
        Q0 = bundle.space("DG", 0)
        # k: a DG0 3-vector (diagonal K), or a scalar DG0 when every region is isotropic
        # (one array per cell instead of three; props are the same on every rank)
        iso = all(np.ptp(np.asarray(kvec, float)) == 0.0 for kvec, _, _ in props.values())
        self.k = fem.Function(Q0 if iso else bundle.space("DG", 0, (3,)), name="k")
        self.rho_cp = fem.Function(Q0, name="rho_cp")
        kv = self.k.x.array.reshape(-1, 1 if iso else 3)
        for name, (kvec, rho, cp) in props.items():
            cells = bundle.cells_of(name)
            kvec = np.asarray(kvec, float)
            kv[cells] = kvec.ravel()[:1] if iso else kvec  # scalar or 3-vector
            self.rho_cp.x.array[cells] = rho * cp
        self.k.x.scatter_forward()
        self.rho_cp.x.scatter_forward()
        self.inv_dt = fem.Constant(msh, PETSc.ScalarType(0.0))

    def set_source(self, source, robin_terms=(), parts=None) -> None:
        """Compile the forms and create the solver for the heat source ``source`` (UFL, W/m^3).

        Args:
            source: volumetric heat source (UFL, or a plain number; 0 means none).
            parts: ``source`` as ``[(density, cell tags)]``, the densities summing to it and each
                exactly zero outside the cells of its tags (None: anywhere); the source vector
                ``(q, v)`` then integrates each density over its cells only
                (:func:`busbarfem.analysis.regions.split_by_support`: the Joule heat alone, by
                the one-point rule it needs on P1, outside the cell bodies). None: ``source``
                over the whole mesh.
            robin_terms: extra Robin conditions ``-K grad T . n = h (T - T_ref)`` as
                ``(facets, h, T_ref)`` or ``(facets, h, T_ref, heat)`` with ``h``/``T_ref``
                floats or UFL (e.g. DG0 Functions updated between steps) and ``heat`` the
                energy-balance entry of the heat they remove: ``"convection"`` (default) or
                ``"coolant"``; they follow the case's conditions and override them on shared
                facets (a later term overrides an earlier one).
        """
        msh, bundle = self.bundle.mesh, self.bundle
        tdim = msh.topology.dim
        bcs = self._bcs + [("robin", np.asarray(t[0], np.int32),
                            {"h": t[1], "T_amb": t[2], "heat": t[3] if len(t) > 3 else "convection"})
                           for t in robin_terms]
        # a plain number (e.g. source=0.0) becomes a UFL constant; an identically zero source
        # has no source vector and generates no heat
        source = ufl.as_ufl(source)
        self.source = source
        self._source_zero = isinstance(source, ufl.constantvalue.Zero)

        # One facet tag per boundary condition; a later condition overrides an earlier one.
        ids = np.zeros(0, np.int32)
        vals = np.zeros(0, np.int32)
        facet_owner: dict[int, int] = {}
        for i, (kind, facets, prm) in enumerate(bcs):
            for fc in facets:
                facet_owner[int(fc)] = i + 1
        if facet_owner:
            ids = np.fromiter(facet_owner.keys(), np.int32)
            vals = np.fromiter(facet_owner.values(), np.int32)
            order_ = np.argsort(ids)
            ids, vals = ids[order_], vals[order_]
        self.facet_tags = dmesh.meshtags(msh, tdim - 1, ids, vals)
        ds = ufl.Measure("ds", domain=msh, subdomain_data=self.facet_tags)
        dx = ufl.Measure("dx", domain=msh)
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)

        a = heat_bilinear(self.inv_dt, self.rho_cp, self.k, u, v, dx)
        # a = inv_dt * a_mass + a_rest: the operator of a new dt is the sum of two matrices
        # assembled once (a_rest again when robin_version changes or with radiation)
        a_mass = self.rho_cp * u * v * dx
        a_rest = ufl.inner(conductivity(self.k) * ufl.grad(u), ufl.grad(v)) * dx  # scalar k when every region is isotropic
        # the source part (q, v) is a vector of its own: its owned entries sum to the generated
        # heat (q, 1) (the Lagrange basis is a partition of unity), see heat_flows
        L = self.inv_dt * self.rho_cp * self.T_n * v * dx
        L_bnd = []  # the boundary part of L (without the mass term): for the M T_n / dt right-hand side
        self.dirichlet = []
        conv_terms, rad_terms, flux_terms, coolant_terms = [], [], [], []
        L_cool = None  # the coolant walls' h T_f part of L (re-assembled alone within a step)
        msh.topology.create_connectivity(tdim - 1, tdim)
        for i, (kind, facets, prm) in enumerate(bcs):
            tag = i + 1
            if kind == "convection":
                h = fem.Constant(msh, PETSc.ScalarType(prm["h"]))
                Ta = fem.Constant(msh, PETSc.ScalarType(prm["T_amb"]))
                da, dL = convection_terms(h, Ta, u, v, ds(tag))
                a += da
                a_rest += da
                L += dL
                L_bnd.append(dL)
                conv_terms.append(h * (self.T - Ta) * ds(tag))
            elif kind == "robin":  # a physics contribution's term: h and T_ref may be Functions
                h = prm["h"] if not isinstance(prm["h"], (int, float)) else fem.Constant(msh, PETSc.ScalarType(prm["h"]))
                Ta = (prm["T_amb"] if not isinstance(prm["T_amb"], (int, float))
                      else fem.Constant(msh, PETSc.ScalarType(prm["T_amb"])))
                da, dL = convection_terms(h, Ta, u, v, ds(tag))
                a += da
                a_rest += da
                if prm.get("heat") == "coolant":
                    L_cool = dL if L_cool is None else L_cool + dL
                else:
                    L += dL
                    L_bnd.append(dL)
                if prm.get("heat", "convection") not in ("convection", "coolant"):
                    raise ValueError(f"unknown heat booking {prm['heat']!r} of a Robin term")
                (coolant_terms if prm.get("heat") == "coolant" else conv_terms).append(h * (self.T - Ta) * ds(tag))
            elif kind == "radiation":
                Ta = fem.Constant(msh, PETSc.ScalarType(prm["T_amb"]))
                hr = prm["emissivity"] * STEFAN_BOLTZMANN * (self.T_k**2 + Ta**2) * (self.T_k + Ta)
                a += hr * u * v * ds(tag)
                a_rest += hr * u * v * ds(tag)
                L += hr * Ta * v * ds(tag)
                rad_terms.append(prm["emissivity"] * STEFAN_BOLTZMANN * (self.T**4 - Ta**4) * ds(tag))
            elif kind == "heat_flux":
                qn = fem.Constant(msh, PETSc.ScalarType(prm["flux"]))
                L += qn * v * ds(tag)
                L_bnd.append(qn * v * ds(tag))
                flux_terms.append(qn * ds(tag))
            elif kind == "temperature":
                dofs = fem.locate_dofs_topological(self.V, tdim - 1, np.asarray(facets, np.int32))
                self.dirichlet.append(fem.dirichletbc(PETSc.ScalarType(prm["T"]), dofs, self.V))
            else:
                raise ValueError(f"unknown thermal boundary condition {kind!r}")
        self.a = fem.form(a)
        self._a_mass = fem.form(a_mass)
        self.L = fem.form(L)
        # without fixed temperatures, radiation or coolant walls the right-hand side is
        # M T_n / dt plus the boundary terms: a product with the operator's mass matrix (once it
        # exists) and a facet assembly, instead of a volume assembly per solve
        self._rhs_by_mass = not self.dirichlet and not rad_terms and L_cool is None
        self._L_bnd = fem.form(sum(L_bnd)) if (L_bnd and self._rhs_by_mass) else None
        self._MTn = None
        self.L_q = None if self._source_zero else fem.form(self._source_form(source, parts, v))
        self._bq = None if self._source_zero else fpetsc.create_vector(self.V)
        self._q_values = coefficient_values(source)
        self._q_cache: tuple | None = None  # (local generated heat, coefficient copies) of the last L_q assembly
        self.L_cool = fem.form(L_cool) if L_cool is not None else None
        self._b_main: tuple | None = None  # (operator key, local form of the assembled L + lifting)
        L = L + source * v * dx  # the whole right-hand side (for the reaction below)
        if L_cool is not None:
            L = L + L_cool
        # heat-flow functionals; None where the case has no such term (its flow is 0). The
        # generated heat has none: it is the sum of the (q, v) vector's owned entries
        # (:meth:`_generated_local`), which spares compiling a functional and UFL's ~0.1 s degree estimate
        self._stored_form = fem.form(self.inv_dt * self.rho_cp * (self.T - self.T_n) * dx)
        self._conv_form = fem.form(sum(conv_terms)) if conv_terms else None
        self._rad_form = fem.form(sum(rad_terms)) if rad_terms else None
        self._flux_form = fem.form(sum(flux_terms)) if flux_terms else None
        self._coolant_form = fem.form(sum(coolant_terms)) if coolant_terms else None
        self.has_coolant = bool(coolant_terms)
        self.robin_version = 0  # bumped by the owner of the extra Robin h when it changes
        # reaction at fixed-temperature dofs: heat flowing in there (negated below)
        self._wD = fem.Function(self.V)
        for bc in self.dirichlet:
            self._wD.x.array[bc.dof_indices()[0]] = 1.0
        self._react = (fem.form(ufl.replace(a, {u: self.T, v: self._wD}) - ufl.replace(L, {v: self._wD}))
                       if self.dirichlet else None)

        ndofs = self.V.dofmap.index_map.size_global
        self.ndofs = ndofs
        # symmetric unless coolant walls couple it to the coolant (those cases keep LU and the
        # default size limit, as measured for issue 15)
        sym = not self.has_coolant
        self.options = solvers.preset(self._solver, ndofs, self._rtol, symmetric=sym,
                                      limit=solvers.THERMAL_LU_DOF_LIMIT if sym else None)
        self._direct = self.options.get("pc_type") in ("lu", "cholesky")
        self._M_ok, self._K_key, self._A_sum = False, None, False
        self._P_key = None
        self._P_count = 0        # preconditioner-matrix assemblies so far
        self._P_shift = 0.0      # P holds the form at dt_q plus this times M (iterative solves)
        self._K = self._P = None
        if self._direct:
            # the two parts of A on A's sparsity: M with the Dirichlet rows/columns zeroed (diagonal 0),
            # K with them set to the identity, so A = K + M/dt keeps the bcs; K_key says for which
            # robin_version K was assembled
            self._a_rest = fem.form(a_rest)  # only a direct solve assembles K on its own
            self.A = fpetsc.create_matrix(self.a)
            self._M = self.A.duplicate(copy=False)  # A's sparsity, not built again
            self._K = self.A.duplicate(copy=False)
        else:
            # iterative: one assembled matrix, P = a at dt_q (:meth:`_iterative_operators`); the
            # mass matrix M (on P's sparsity) only once a dt other than dt_q is solved, which
            # then shifts P in place to the operator at dt
            self._P = fpetsc.create_matrix(self.a)
            self._M = None
            self.A = self._P
        self.b = fpetsc.create_vector(self.V)
        self.x = fpetsc.create_vector(self.V)
        self.ksp = solvers.make_ksp(self.comm, self.A, self._prefix, self.options)
        self.stats = solvers.KSPStats(self.options)
        self._assembled_key = None
        self.has_radiation = bool(rad_terms)

    def _source_form(self, source, parts, v):
        """``(q, v)``: over the whole mesh, or (``parts``) each density over its tagged cells."""
        if parts is None:
            return source * v * ufl.dx(domain=self.bundle.mesh)
        groups = split_by_support(self.bundle, parts)
        dxs = SupportMeasure(self.bundle, [key for _, key in groups])
        return sum(d * v * dxs(key) for d, key in groups)

    def solve(self, dt: float | None, step: int | None = None, reuse_source: bool = False) -> int:
        """Advance one backward-Euler step of size ``dt`` (``None`` = steady state).

        The operator is rebuilt only when dt or ``robin_version`` changes (or radiation is present), so at
        fixed dt the factorisation / preconditioner is reused. A direct solve forms a new dt's
        operator as the sum ``K + M/dt`` of parts assembled once (K again when ``robin_version``
        moves, every call with radiation); an iterative one keeps its preconditioner matrix while
        dt stays within a factor sqrt(2) of the same power of two (:meth:`_iterative_operators`).

        Args:
            reuse_source: with coolant walls, keep the right-hand side of the previous call but
                for the walls' ``h T_f`` term (re-assembled): for the coolant's Picard
                iterations within one step, where nothing else in it changes.

        Returns:
            KSP iterations.
        """
        self.inv_dt.value = 0.0 if dt is None else 1.0 / dt
        key = (dt, self.robin_version)
        if key != self._assembled_key or self.has_radiation:
            if self._direct:
                self._assemble_operator(0.0 if dt is None else 1.0 / dt)
                self.ksp.setOperators(self.A, self.A)
            else:
                self.ksp.setOperators(*self._iterative_operators(dt))
            self._assembled_key = key
        by_mass = False
        with self.b.localForm() as loc:
            if self.L_cool is not None and reuse_source and self._b_main is not None and self._b_main[0] == key:
                loc.array[:] = self._b_main[1]
            else:
                loc.set(0.0)
                by_mass = self._rhs_by_mass and (self._M_ok or self.inv_dt.value == 0.0)
                if not by_mass:
                    fpetsc.assemble_vector(self.b, self.L)
                elif self._L_bnd is not None:
                    fpetsc.assemble_vector(self.b, self._L_bnd)
                if self.dirichlet:  # no fixed temperature: no lifting (DOLFINx would still pack and loop)
                    fpetsc.apply_lifting(self.b, [self.a], bcs=[self.dirichlet])
                if self.L_q is not None:
                    loc.array[:] += self._assemble_source()
                if self.L_cool is not None:  # the lifting depends on the operator: keyed by it
                    self._b_main = (key, loc.array.copy())
        if self.L_cool is not None:
            fpetsc.assemble_vector(self.b, self.L_cool)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if by_mass and self.inv_dt.value != 0.0:  # + M T_n / dt on the owned rows
            if self._MTn is None:
                self._MTn = self._M.createVecLeft()
            self._M.mult(self.T_n.x.petsc_vec, self._MTn)
            self.b.axpy(float(self.inv_dt.value), self._MTn)
        fpetsc.set_bc(self.b, self.dirichlet)
        # warm start from the current temperature for iterative solvers
        fpetsc.assign(self.T, self.x)
        self.ksp.setInitialGuessNonzero(self.options.get("ksp_type") == "cg")
        if self.stats.solves == 0:
            # the first solve sets the preconditioner up (GAMG's squared graph: ~0.5 GiB
            # transient at 1.2M dofs) on top of the electrical hierarchy: hand the heap the
            # electrical solve freed back to the system first (B1 peak -12 MiB at 0.26M,
            # -18 MiB at 1.19M; docs/performance.md)
            solvers.release_free_memory()
        its = solvers.solve_checked(self.ksp, self.b, self.x, "thermal", step, self.stats)
        self.x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        fpetsc.assign(self.x, self.T)
        self.T.x.scatter_forward()
        return its

    def _assemble_source(self) -> np.ndarray:
        """Assemble (q, v) (local form, ghosts unsummed) and keep its generated heat for :meth:`heat_flows`
        with copies of the source's coefficients it was assembled from."""
        with self._bq.localForm() as loc:
            loc.set(0.0)
        fpetsc.assemble_vector(self._bq, self.L_q)
        with self._bq.localForm() as loc:
            local = loc.array.copy()
        self._bq.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        gen = float(np.sum(self._bq.array_r))  # owned entries, ghost contributions summed in
        self._q_cache = (gen, [np.array(a, copy=True) for a in self._q_values()])
        return local

    def _generated_local(self) -> float:
        """This rank's share of the generated heat (q, 1): the sum of the owned entries of the
        last (q, v) assembly while the source's coefficients are unchanged since, else of a new
        one (collective: every rank assembles if any rank's coefficients moved)."""
        if self._source_zero:
            return 0.0
        c = self._q_cache
        hit = c is not None and all(np.array_equal(a, b) for a, b in zip(self._q_values(), c[1]))
        if self.comm.allreduce(not hit, op=MPI.LOR):
            self._assemble_source()
        return self._q_cache[0]

    def _stored_local(self) -> float:
        """This rank's share of the stored heat (rho cp (T - T_n)/dt, 1): without fixed-temperature
        conditions ``1^T M (T - T_n) / dt`` from the operator's mass part (both integrals are exact
        for the polynomial integrand: equal to rounding), else the scalar form."""
        if self.inv_dt.value == 0.0:
            return 0.0
        if self.dirichlet or not self._M_ok:
            return fem.assemble_scalar(self._stored_form)
        if getattr(self, "_dT", None) is None:
            self._dT, self._MdT = self._M.createVecRight(), self._M.createVecLeft()
        n = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        self._dT.array[:] = self.T.x.array[:n] - self.T_n.x.array[:n]
        self._M.mult(self._dT, self._MdT)
        return float(self.inv_dt.value) * float(np.sum(self._MdT.array_r))

    def _ensure_mass(self) -> None:
        """Assemble the mass matrix M once, Dirichlet rows/columns zeroed (diagonal 0), on the
        operator's sparsity (a direct problem's M exists from the set-up; an iterative one's is
        created from P on first use)."""
        if self._M_ok:
            return
        if self._M is None:
            self._M = self._P.duplicate(copy=False)
        else:
            self._M.zeroEntries()
        fpetsc.assemble_matrix(self._M, self._a_mass, bcs=self.dirichlet, diag=0.0)
        self._M.assemble()
        self._M_ok = True

    def _assemble_operator(self, inv_dt: float) -> None:
        """``A = K + inv_dt M`` from the cached parts (re-assembling K if robin_version moved or with radiation).

        Equal to assembling ``a`` at ``inv_dt`` up to round-off (the per-cell sums are added in
        another order), and a function of (dt, robin_version, T_k) alone, as before.
        """
        self._ensure_mass()
        if self._K_key != self.robin_version or self.has_radiation:
            self._K.zeroEntries()
            fpetsc.assemble_matrix(self._K, self._a_rest, bcs=self.dirichlet)
            self._K.assemble()
            self._K_key = self.robin_version
        same = PETSc.Mat.Structure.SAME_NONZERO_PATTERN
        if not self._A_sum:  # A as created has no assembled structure to copy into: a duplicate of K
            self.A.destroy()
            self.A = self._K.duplicate(copy=True)
            self._A_sum = True
        else:
            self._K.copy(self.A, structure=same)
        if inv_dt != 0.0:
            self.A.axpy(inv_dt, self._M, structure=same)

    def _iterative_operators(self, dt: float | None):
        """(operator, preconditioner matrix) of an iterative solve at ``dt`` (None: steady): P, twice.

        P is the bilinear form assembled at ``dt_q``, dt rounded to a power of two
        (:func:`preconditioner_dt`), re-assembled only when dt_q or ``robin_version`` moves
        (every call with radiation); the GAMG hierarchy is built from that matrix right after
        the assembly, so it depends on (dt_q, the coefficients) alone, not on the run's history.
        Another dt of the same bucket shifts P in place to the exact operator,
        ``P <- P + (1/dt - 1/dt_q - c) M`` (``c`` the shift it holds; one MatAXPY on the same
        sparsity, M the mass matrix assembled once, at the first such dt), and the KSP keeps
        its preconditioner (``KSPSetReusePreconditioner``): CG iterates on the assembled
        operator at dt with native products, and the problem holds two matrices, P and M
        (session 9 applied ``P + c M`` as a Python shell of two products per iteration: +16-30 %
        thermal time on an adaptive 4s2p discharge; docs/performance.md).
        """
        dt_q = None if dt is None else preconditioner_dt(dt)
        pkey = (dt_q, self.robin_version)
        pc = self.ksp.getPC()
        if pkey != self._P_key or self.has_radiation:
            if self._P_key is not None and (self._P_key[0] is None) != (dt_q is None):
                # steady <-> transient: GAMG would reuse an interpolation built for a mass-dominated
                # (or mass-free) operator, which can leave the V-cycle indefinite: build it afresh
                pc.reset()
            self.inv_dt.value = 0.0 if dt_q is None else 1.0 / dt_q
            self._P.zeroEntries()
            fpetsc.assemble_matrix(self._P, self.a, bcs=self.dirichlet)
            self._P.assemble()
            self.inv_dt.value = 0.0 if dt is None else 1.0 / dt
            self._P_key = pkey
            self._P_count += 1
            self._P_shift = 0.0
            pc.setReusePreconditioner(False)
            self.ksp.setOperators(self._P, self._P)
            self.ksp.setUp()  # the hierarchy of P at dt_q, before any shift
        pc.setReusePreconditioner(True)
        shift = 0.0 if dt is None or dt == dt_q else 1.0 / dt - 1.0 / dt_q
        if shift != self._P_shift:
            self._ensure_mass()
            self._P.axpy(shift - self._P_shift, self._M, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
            self._P_shift = shift
        self.A = self._P
        return self._P, self._P

    def heat_flows(self) -> HeatFlows:
        """Integrated heat flows for the current T (and T_n, dt) [W].

        Terms the case does not have are 0 without an assembly; the rest are summed over
        the ranks in one reduction. The stored heat comes from the mass matrix when there is no
        fixed-temperature condition. The generated heat is the sum of the owned entries of the
        last solve's source vector (q, v_i) = (q, 1) while the source's coefficients (and
        Constants) are the same as then; otherwise (q, 1) is assembled, with the same rule.
        """
        forms = (None, None, self._conv_form, self._rad_form, self._flux_form,
                 self._react, self._coolant_form)
        local = np.array([0.0 if f is None else fem.assemble_scalar(f) for f in forms])
        local[0] = self._generated_local()
        local[1] = self._stored_local()
        g = np.empty_like(local)
        self.comm.Allreduce(local, g, op=MPI.SUM)
        return HeatFlows(generated=float(g[0]), stored=float(g[1]), convection=float(g[2]),
                         radiation=float(g[3]), flux_in=float(g[4]), fixed_temperature=-float(g[5]),
                         coolant=float(g[6]))

    def advance(self) -> None:
        """Accept the step: T_n <- T."""
        self.T_n.x.array[:] = self.T.x.array

    # ------------------------------------------------------------------ the iterate T_k
    def set_uniform(self, T0: float) -> None:
        """T = T_n = T_k = ``T0`` everywhere (initial state)."""
        for f in (self.T, self.T_n, self.T_k):
            f.x.array[:] = T0

    def restart_step(self) -> None:
        """Start (or retry) a step from the accepted state: T = T_k = T_n."""
        self.T.x.array[:] = self.T_n.x.array
        self.T_k.x.array[:] = self.T_n.x.array

    def accept_iterate(self) -> None:
        """Coupling iterate from the last solve: T_k <- T."""
        self.T_k.x.array[:] = self.T.x.array

    def set_iterate(self, owned: np.ndarray) -> None:
        """Coupling iterate from owned dof values (e.g. an Anderson mix), ghosts updated."""
        self.T_k.x.array[:len(owned)] = owned
        self.T_k.x.scatter_forward()

    def owned(self, fn: fem.Function | None = None) -> np.ndarray:
        """Owned dof values of ``fn`` (default ``T``), a view."""
        fn = self.T if fn is None else fn
        return fn.x.array[:self.V.dofmap.index_map.size_local]

    def destroy(self) -> None:
        """Free the PETSc objects (matrix, vectors, KSP); the problem cannot solve afterwards."""
        solvers.destroy_ksp(self.ksp)
        seen = set()
        for obj in (self.A, self.b, self.x, getattr(self, "_M", None), getattr(self, "_K", None),
                    getattr(self, "_P", None), getattr(self, "_bq", None),
                    getattr(self, "_dT", None), getattr(self, "_MdT", None), getattr(self, "_MTn", None)):
            if obj is not None and id(obj) not in seen:  # A may be P
                seen.add(id(obj))
                obj.destroy()
        self.ksp = self.A = self.b = self.x = None
