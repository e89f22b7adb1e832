r"""Quasi-static electrical problem: conductors and MSMD two-potential cells.

Conductors carry one global potential phi_f (f = 1 or 2, see :mod:`busbarfem.naming`)::

    -div(sigma(T) grad phi_f) = 0,   sigma(T) = sigma_ref / (1 + alpha (T - T_ref))

Cells carry both; with stage sign s = +1 (odd stage: phi+ = phi1) or -1 (even stage)::

    -div(sigma+ grad phi+) = +j,   -div(sigma- grad phi-) = -j,
    j = g (E - (phi+ - phi-)),     g = 1 / (R0_c Vol_c),   phi+ - phi- = s (phi1 - phi2)

Weak form (test functions psi1, psi2)::

    sum_f (S_f(T) grad phi_f, grad psi_f) + (g (phi1 - phi2), psi1 - psi2)
        = (g s E, psi1 - psi2)

which is symmetric positive definite once ``terminal_neg`` is grounded. Each field is
pinned to zero outside its active region (Dirichlet on inactive dofs; a zero-weighted
mass term keeps their diagonal in the sparsity pattern).

Terminals are equipotential: ``phi = 0`` on ``terminal_neg`` and ``phi = V`` on
``terminal_pos``. With sigma and the cell EMFs frozen the terminal current is affine,
``I(V) = I0 + G V``: one solve with sources and V = 0 and one without sources and V = 1
(same operator, one factorisation) give I0 and G, and V follows for a target current,
voltage or power. Iterative solves run the source solve at a predicted V* instead of 0
(near the operating point: a close warm start, :meth:`ElectricalProblem._predicted_voltage`)
and end with the exact circuit coarse correction, so Kirchhoff holds to rounding.
Terminal currents are evaluated as the discrete reaction
``a(phi, w) - L(w)`` with ``w`` the indicator of the terminal dofs (exactly conservative).
"""

from __future__ import annotations

from dataclasses import dataclass

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem.petsc as fpetsc
from dolfinx import fem
from dolfinx import mesh as dmesh

from busbarfem import naming
from busbarfem.mesh import MeshBundle
from busbarfem.physics import solvers


@dataclass
class TerminalSolution:
    """Outcome of one electrical solve at the terminals.

    Attributes:
        voltage: terminal_pos potential relative to terminal_neg [V].
        current: load current [A] (into terminal_pos for a passive conductor; out of it,
            i.e. discharge-positive, when the domain contains cells).
        conductance: dI_load/dV at frozen state [S] (sign as ``current``).
        iterations: KSP iterations of the two solves.
    """

    voltage: float
    current: float
    conductance: float
    iterations: int


def conductivity(sigma_ref, alpha, T_ref, T):
    """UFL tensor ``diag(sigma_ref) / (1 + alpha (T - T_ref))`` [S/m] (sigma_ref a 3-vector)."""
    return ufl.diag(sigma_ref) / (1.0 + alpha * (T - T_ref))


def cell_mean_conductivity(T: fem.Function, sigma_ref, alpha, T_ref, out: fem.Function) -> None:
    """Fill the DG0 3-vector ``out`` with ``sigma_ref / (1 + alpha (T_c - T_ref))`` per cell
    (a scalar DG0 ``out``, for isotropic conductors, takes the first component).

    ``T_c`` is the cell mean of the P1 temperature ``T`` (mean of its vertex values). For a
    P1 potential the stiffness matrix sees sigma only through its cell mean, so this is a
    second-order accurate evaluation of the sigma(T) operator at one sigma per cell.
    ``sigma_ref`` is a per-cell ``(ncells, 3)`` array or a 3-vector; ``alpha`` and ``T_ref``
    per-cell arrays or scalars (cells indexed as in the mesh, local + ghost).
    """
    msh = out.function_space.mesh
    tdim = msh.topology.dim
    ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    g = np.take(T.x.array, T.function_space.dofmap.list[:ncells])  # (ncells, 4) vertex values
    den = g[:, 0] + g[:, 1]
    den += g[:, 2]
    den += g[:, 3]
    den *= 0.25                 # cell-mean temperature
    den -= T_ref
    den *= alpha
    den += 1.0                  # 1 + alpha (T_c - T_ref), in place (this runs every step)
    q = out.function_space.dofmap.list[:ncells, 0]
    sig = np.asarray(sigma_ref, dtype=float)
    bs = out.function_space.dofmap.index_map_bs  # 3, or 1: a scalar (isotropic) sigma
    vals = out.x.array.reshape(-1, bs)
    if bs == 1:
        sig = sig[..., :1]  # the isotropic value (all three components are equal)
    if q.size == vals.shape[0] and np.array_equal(q, np.arange(q.size)):
        np.divide(sig, den[:, None], out=vals)  # DG0 dofs numbered like the cells
    else:
        vals[q] = sig / den[:, None]


def conduction_form(sigmas, u_comps, v_comps, dx):
    """``sum_f (S_f grad u_f, grad v_f)``: the conductor/collector part of the operator."""
    return sum(ufl.inner(S * ufl.grad(u), ufl.grad(v)) for S, u, v in zip(sigmas, u_comps, v_comps)) * dx


def transfer_form(g, u_comps, v_comps, dx):
    """``(g (u1 - u2), v1 - v2)``: the MSMD cell coupling (symmetric, positive semi-definite)."""
    return g * (u_comps[0] - u_comps[1]) * (v_comps[0] - v_comps[1]) * dx


def transfer_source(g, stage_sign, emf, v_comps, dx):
    """``(g s E, v1 - v2)``: the cell EMF driving the transfer current."""
    return g * stage_sign * emf * (v_comps[0] - v_comps[1]) * dx


@dataclass
class _Reduction:
    """The electrical system restricted to the nodes of the conducting cells.

    Attributes:
        iset: block IS of the owned global indices of the kept nodes.
        dx: measure over the conducting cells (the forms integrate there only).
        keep: mask of the kept local nodes (owned and ghost).
        sub: the submatrix handed to the KSP (None until the first assembly).
    """

    iset: PETSc.IS
    dx: ufl.Measure
    keep: np.ndarray
    sub: PETSc.Mat | None = None


class ElectricalProblem:
    """Potential problem on a :class:`MeshBundle`; forms compiled once in ``__init__``.

    Args:
        bundle: mesh and regions.
        materials: material name -> Material (conductors).
        T: temperature Function (P1) that sigma(T) reads; updated by the caller.
        cell_params: optional per-region cell data: region name -> dict with
            ``sigma_pos``, ``sigma_neg`` (3-vectors [S/m]) and optionally their temperature
            coefficients ``alpha_pos``, ``alpha_neg`` [1/K] at ``T_ref`` [K].
        order: polynomial degree of the potential (1 or 2).
        solver: ``"auto"``, ``"lu"`` or ``"gamg"``; ``rtol`` for iterative solves.
        prefix: PETSc options prefix.
        elements: extra electrical elements of physics contributions
            (:class:`busbarfem.coupling.contributions.Conductance`): each adds its
            ``(g (u1 - u2), v1 - v2)`` term between the two potentials in its region.
        warm_start: start each iterative two-potential solve from this problem's previous
            solution of the same right-hand side (None: :data:`solvers.WARM_START`). The
            guess lives in this instance only, so two runs in one process are identical.
    """

    def __init__(self, bundle: MeshBundle, materials: dict, T: fem.Function, cell_params: dict | None = None,
                 order: int = 1, solver: str = "auto", rtol: float = 1e-10, prefix: str = "bbf_elec_",
                 elements=(), warm_start: bool | None = None):
        self.bundle = bundle
        self.elements = list(elements)
        msh = bundle.mesh
        self.comm = msh.comm
        self.T = T
        self.cell_params = cell_params or {}
        tdim = msh.topology.dim
        self.cell_names = [n for n in bundle.volume_names() if bundle.regions[n].kind == "cell"]
        fields_used = {bundle.regions[n].field for n in bundle.volume_names()
                       if bundle.regions[n].kind not in ("cell", "thermal")}
        self.nfields = 2 if (self.cell_names or 2 in fields_used) else 1

        # --- piecewise-constant coefficients -------------------------------------------
        self.Q0 = bundle.space("DG", 0)
        self.Q0v = bundle.space("DG", 0, (3,))
        self.sig = [fem.Function(self.Q0v, name=f"sigma{f + 1}_ref") for f in range(self.nfields)]
        # temperature coefficient and reference temperature of each field's conductivity
        # (a cell's two collector networks differ: aluminium and copper foil)
        self.alpha = [fem.Function(self.Q0, name=f"alpha{f + 1}") for f in range(self.nfields)]
        self.Tref = [fem.Function(self.Q0, name=f"T_ref{f + 1}") for f in range(self.nfields)]
        for fn in self.Tref:
            fn.x.array[:] = 293.15
        # the cells' per-cell fields exist with two potentials only (a one-field conductor
        # has no cells and no transfer term: None there, one DG0 array each saved)
        two = self.nfields == 2
        self.g = fem.Function(self.Q0, name="g_cell") if two else None       # 1/(R0 Vol) [S/m^3]
        self.s_stage = fem.Function(self.Q0, name="stage_sign") if two else None
        self.emf = fem.Function(self.Q0, name="emf") if two else None        # E_c = OCV - sum V_RC [V]
        self.ocv = fem.Function(self.Q0, name="ocv") if two else None        # OCV(SOC, T) [V]
        self.dudt = fem.Function(self.Q0, name="dUdT") if two else None      # entropic coefficient [V/K]
        self.source_on = fem.Constant(msh, PETSc.ScalarType(1.0))
        self._fill_conductors(materials)
        # P1: sigma(T) enters the operator only through its cell mean, so it is evaluated
        # per cell at the cell-mean temperature (second-order accurate, exactly the DG0
        # coefficient a hand-written solver would use) and refreshed before each assembly.
        # P2 keeps the quadrature-point UFL expression.
        self.cellwise_sigma = order == 1 and T.function_space.element.basix_element.degree == 1
        if self.cellwise_sigma:
            ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
            q = self.Q0.dofmap.list[:ncells, 0]
            # per-cell reference data in cell order, compressed: the distinct (sigma_ref,
            # alpha, T_ref) rows (one per material, in practice) and each cell's row index;
            # the DG0 reference Functions are released at the end of __init__
            self._cell_data = [self._reference_table(f, q) for f in range(self.nfields)]
            # a one-field conductor of isotropic materials only (every busbar metal) keeps a
            # scalar sigma per cell instead of three equal components (collective)
            iso = self.nfields == 1 and self.comm.allreduce(
                bool(np.all(self._cell_data[0][1][:, 0:1] == self._cell_data[0][1][:, 1:3])), op=MPI.LAND)
            Qs = self.Q0 if iso else self.Q0v
            self.sig_T = [fem.Function(Qs, name=f"sigma{f + 1}") for f in range(self.nfields)]
            self.update_conductivity()

        # --- spaces and functions -------------------------------------------------------
        shape = (2,) if self.nfields == 2 else ()
        self.V = bundle.space("Lagrange", order, shape)  # one field: the thermal problem's space
        self.phi = fem.Function(self.V, name="phi")
        self._phi_a = fem.Function(self.V)
        self._phi_b = fem.Function(self.V)
        self._w = fem.Function(self.V)
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        dx = ufl.Measure("dx", domain=msh)
        self.dx = dx

        # --- Dirichlet conditions: terminals and inactive dofs -----------------------------
        self.V_term = fem.Constant(msh, PETSc.ScalarType(0.0))
        fdim = tdim - 1
        msh.topology.create_connectivity(fdim, tdim)
        self.pos_field = self._terminal_field(naming.TERMINAL_POS)
        self.neg_field = self._terminal_field(naming.TERMINAL_NEG)
        pos_facets = bundle.facets_of(naming.TERMINAL_POS)
        neg_facets = bundle.facets_of(naming.TERMINAL_NEG)
        Vp = self.V.sub(self.pos_field - 1) if self.nfields == 2 else self.V
        Vn = self.V.sub(self.neg_field - 1) if self.nfields == 2 else self.V
        self.pos_dofs = fem.locate_dofs_topological(Vp, fdim, pos_facets)
        neg_dofs = fem.locate_dofs_topological(Vn, fdim, neg_facets)
        self.bcs = [fem.dirichletbc(self.V_term, self.pos_dofs, Vp),
                    fem.dirichletbc(PETSc.ScalarType(0.0), neg_dofs, Vn)]
        self.inactive_dofs = []
        # nodes outside every conducting cell (cold plates, gap pads: kind "thermal") are
        # left out of the solved system: the forms integrate over the conducting cells only
        # and the KSP works on the submatrix of the other nodes (None: nothing to drop)
        self._red = self._reduction()
        if self._red is not None:
            self.dx = dx = self._red.dx
        keep = self._red.keep if self._red is not None else None
        bs_v = self.V.dofmap.index_map_bs

        def pinned(dofs):  # the pinned dofs the solved system still holds
            return dofs if keep is None else dofs[keep[dofs // bs_v]]

        # thermal-only regions (cold plates, gap pads: kind "thermal") carry no potential
        thermal_only = any(bundle.regions[n].kind == "thermal" for n in bundle.volume_names())
        if self.nfields == 1 and thermal_only and keep is None:
            ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
            active = np.flatnonzero(self.sig[0].x.array.reshape(-1, 3)[:, 0] > 0).astype(np.int32)
            dof_all = fem.locate_dofs_topological(self.V, tdim, np.arange(ncells, dtype=np.int32))
            inactive = np.setdiff1d(dof_all, fem.locate_dofs_topological(self.V, tdim, active)).astype(np.int32)
            self.inactive_dofs.append(inactive)
            self.bcs.append(fem.dirichletbc(PETSc.ScalarType(0.0), inactive, self.V))
        if self.nfields == 2:
            ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
            allc = np.arange(ncells, dtype=np.int32)
            for f in range(2):
                active = np.flatnonzero(self.sig[f].x.array.reshape(-1, 3)[:, 0] > 0).astype(np.int32)
                dof_all = fem.locate_dofs_topological(self.V.sub(f), tdim, allc)
                dof_act = fem.locate_dofs_topological(self.V.sub(f), tdim, active)
                inactive = pinned(np.setdiff1d(dof_all, dof_act).astype(np.int32))
                self.inactive_dofs.append(inactive)
                self.bcs.append(fem.dirichletbc(PETSc.ScalarType(0.0), inactive, self.V.sub(f)))
        # w = 1 on the terminal_pos dofs: the reaction there is the terminal current
        self._w.x.array[:] = 0.0
        self._w.x.array[self.pos_dofs] = 1.0

        # --- forms ---------------------------------------------------------------------------
        self.a_ufl = self._bilinear(u, v)
        self.L_ufl = self._linear(v)
        self.a = fem.form(self.a_ufl)
        self.L = fem.form(self.L_ufl)
        # the reaction only involves cells touching terminal_pos: integrate over those alone
        bs = self.V.dofmap.index_map_bs
        imap = self.V.dofmap.index_map
        mark = np.zeros(imap.size_local + imap.num_ghosts, dtype=bool)
        mark[np.asarray(self.pos_dofs, dtype=np.int64) // bs] = True
        react_cells = np.flatnonzero(mark[self.V.dofmap.list].any(axis=1)).astype(np.int32)
        react_tags = dmesh.meshtags(msh, tdim, react_cells, np.ones_like(react_cells))
        dx_r = ufl.Measure("dx", domain=msh, subdomain_data=react_tags, subdomain_id=1)
        self.react_a = fem.form(self._bilinear(self.phi, self._w, dx_r))
        self.react_L = fem.form(self._linear(self._w, dx_r))
        self.A = fpetsc.create_matrix(self.a)
        self.b = fpetsc.create_vector(self.V)
        self.x = fpetsc.create_vector(self.V)
        ndofs = self.V.dofmap.index_map.size_global * self.V.dofmap.index_map_bs
        self.A.setOptionsPrefix(prefix + "A_")
        if self.nfields == 2:
            self.A.setBlockSize(2)
        self.ndofs_solved = ndofs if self._red is None else self._red.iset.getSize()
        rtol_eff = rtol * solvers.MSMD_RTOL_FACTOR if self.nfields == 2 else rtol
        self.options = solvers.preset(solver, self.ndofs_solved, rtol_eff, block_size=2 if self.nfields == 2 else 1)
        self.ndofs = ndofs
        # (a reduced problem hands its submatrix to the KSP at the first assembly)
        self.ksp = solvers.make_ksp(self.comm, self.A, prefix, self.options)
        #: start each iterative solve from the previous solution of the same right-hand side
        #: (kept in ``_phi_a``/``_phi_b`` of this instance: no state outlives the problem).
        #: Two-potential systems only: a one-field conductor converges in ~13 iterations
        #: from zero, and its restarts (which begin from zero) stay exact to rtol.
        warm = solvers.WARM_START if warm_start is None else bool(warm_start)
        self.warm_start = self.options.get("ksp_type") != "preonly" and self.nfields == 2 and warm
        #: keep the GAMG preconditioner across calls while no operator coefficient moved by
        #: more than this relative amount since it was built (None/0: rebuild every call)
        self.pc_reuse_tol = (solvers.PC_REUSE_TOL if self.options.get("pc_type") == "gamg"
                             and self.nfields == 2 else 0.0)
        self._pc_coeffs: list | None = None
        self.pc_setups = 0
        self.circuit_space = 0
        #: the exact circuit coarse solve (:class:`solvers.CircuitCoarse`, formed after every
        #: assembly): part of the preconditioner above :data:`solvers.CIRCUIT_COARSE_MIN_DOFS`,
        #: and the correction of the initial guess / the solution (:data:`solvers.COARSE_GUESS`,
        #: :data:`solvers.COARSE_POST`); None for LU and one-field problems
        self._coarse = None
        self.coarse_guess = self.coarse_post = False
        self._Z = None
        iterative2 = self.options.get("pc_type") == "gamg" and self.nfields == 2
        in_pc = iterative2 and solvers.circuit_coarse_space_on(self.ndofs_solved)
        if iterative2 and (in_pc or solvers.COARSE_GUESS or solvers.COARSE_POST):
            self._Z = self._circuit_space()
            if self._red is not None:  # keep the rows of the solved nodes only
                Z = self._Z
                c0, c1 = Z.getOwnershipRangeColumn()
                cols = PETSc.IS().createStride(c1 - c0, first=c0, step=1, comm=self.comm)
                self._Z = Z.createSubMatrix(self._red.iset, cols)
                cols.destroy()
                Z.destroy()
            self._coarse = solvers.CircuitCoarse(self.comm, self._Z)
            self._coarse.owner_forms = True
            self.coarse_guess, self.coarse_post = bool(solvers.COARSE_GUESS), bool(solvers.COARSE_POST)
        if in_pc:
            self.circuit_space = self._Z.getSize()[1]
            solvers.use_circuit_coarse_space(self.ksp, self.comm, self._Z, self.options, context=self._coarse)
        self.ksp.setInitialGuessNonzero(self.warm_start or self.coarse_guess)
        #: iterative solves: reset the Dirichlet dofs (terminals, inactive dofs) to their
        #: exact values after the KSP (:data:`solvers.EXACT_BC_VALUES`)
        self.exact_bc_values = self.options.get("ksp_type") != "preonly" and bool(solvers.EXACT_BC_VALUES)
        self.stats = solvers.KSPStats(self.options)
        #: iterative two-potential solves: the source right-hand side at a predicted
        #: terminal voltage (:meth:`_predicted_voltage`, :data:`solvers.OPERATING_POINT_SOLVE`)
        self.operating_point = (self.options.get("ksp_type") != "preonly" and self.nfields == 2
                                and bool(solvers.OPERATING_POINT_SOLVE))
        self._v_last: float | None = None
        self.has_sources = bool(self.cell_names)
        if self.cellwise_sigma:
            # P1: after set-up only the compressed table is read (update_conductivity,
            # conductivity_positive); the five per-cell reference arrays per field go
            self.sig = self.alpha = self.Tref = None

    def _reference_table(self, f: int, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, table)`` of field ``f``: ``table`` the distinct per-cell rows
        ``(sigma_ref (3), alpha, T_ref)``, ``ids`` each cell's row (cells in mesh order)."""
        rows = np.column_stack([self.sig[f].x.array.reshape(-1, 3)[q], self.alpha[f].x.array[q],
                                self.Tref[f].x.array[q]])
        # the distinct rows in lexicographic order, as np.unique(rows, axis=0) gives them (that
        # sorts a structured view: ~0.3 s per field at 117k cells; lexsort is ~20x faster)
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int32), rows
        order = np.lexsort(rows.T[::-1])
        srt = rows[order]
        new = np.ones(len(srt), dtype=bool)
        new[1:] = np.any(srt[1:] != srt[:-1], axis=1)
        table = srt[new]
        ids = np.empty(len(rows), dtype=np.int32)
        ids[order] = np.cumsum(new) - 1
        return ids, table

    def _reference_sigma_x(self, f: int) -> np.ndarray:
        """Field ``f``'s reference conductivity sigma_x per local cell (owned and ghost, mesh order):
        from its DG0 function during set-up, from the compressed table after it
        (:attr:`cellwise_sigma` drops the functions), so a circuit space built later agrees."""
        if self.sig is not None:
            return self.sig[f].x.array.reshape(-1, 3)[:, 0]
        ids, table = self._cell_data[f]
        return table[ids, 0]

    def _circuit_space(self) -> PETSc.Mat:
        """Indicator matrix Z: one column per (volume region, active field), 1 on its dofs.

        A dof shared by several regions belongs to the first (sorted names) that claims it,
        over all ranks' cells (a dof's owner may not hold every cell around it: deciding on
        the owner's cells alone left some dofs in no column, 7 of 0.78M at 16s6p on 2 ranks,
        and gave another space than the serial one); Dirichlet dofs are left out, and columns
        without dofs are dropped (collective). With :data:`solvers.CIRCUIT_COARSE_LINEAR`
        each (region, field) also gets the three centred, normalised coordinates on its dofs
        (a linear potential per conductor).
        """
        V, bs = self.V, self.V.dofmap.index_map_bs
        imap = V.dofmap.index_map
        nloc = imap.size_local
        nf = self.nfields
        fixed = np.zeros(nloc * bs, dtype=bool)
        for bc in self.bcs:
            idx, first_ghost = bc.dof_indices()
            fixed[idx[:first_ghost][idx[:first_ghost] < nloc * bs]] = True
        names = sorted(self.bundle.volume_names())
        # each dof's first claiming region (its position in names), over the local cells
        # (owned and ghost dofs), then the smallest over every rank holding the dof (a MAX
        # reverse scatter of the negated position; -len(names) - 1: none)
        none = -(len(names) + 1.0)
        claim = fem.Function(V)
        arr = claim.x.array
        arr[:] = none
        sig_x = [self._reference_sigma_x(f) for f in range(nf)]
        for r, name in enumerate(names):
            cells = self.bundle.cells_of(name)
            if not len(cells):
                continue
            for f in range(nf):
                act = cells[sig_x[f][cells] > 0]
                if len(act):
                    d = np.unique(V.dofmap.list[act].ravel()).astype(np.int64) * bs + f
                    arr[d] = np.maximum(arr[d], -float(r))
        vec = claim.x.petsc_vec
        vec.ghostUpdate(addv=PETSc.InsertMode.MAX_VALUES, mode=PETSc.ScatterMode.REVERSE)
        first = -np.asarray(vec.array_r[: nloc * bs])                 # owned dofs: region position
        field = np.arange(nloc * bs) % bs
        free = (first < len(names)) & ~fixed
        key = np.where(free, np.rint(first).astype(np.int64) * nf + field, -1)
        counts = np.bincount(key[free], minlength=len(names) * nf) if len(names) else np.zeros(0, np.int64)
        counts = self.comm.allreduce(counts, op=MPI.SUM)
        colof = np.full(len(counts), -1, dtype=np.int64)
        colof[counts > 0] = np.arange(int(np.sum(counts > 0)))
        ncol = int(np.sum(counts > 0))
        col = np.where(free, colof[np.maximum(key, 0)], -1)
        lin = bool(solvers.CIRCUIT_COARSE_LINEAR)
        xval = np.zeros((nloc * bs, 3))
        if lin:
            X = np.repeat(V.tabulate_dof_coordinates()[:nloc], bs, axis=0)   # per dof
            rows_ = np.flatnonzero(col >= 0)
            n = self.comm.allreduce(np.bincount(col[rows_], minlength=ncol), op=MPI.SUM)
            s1 = self.comm.allreduce(np.stack([np.bincount(col[rows_], X[rows_, k], minlength=ncol)
                                               for k in range(3)], axis=1), op=MPI.SUM)
            mean = s1 / n[:, None]
            dev = X[rows_] - mean[col[rows_]]
            s2 = self.comm.allreduce(np.stack([np.bincount(col[rows_], dev[:, k] ** 2, minlength=ncol)
                                               for k in range(3)], axis=1), op=MPI.SUM)
            rms = np.sqrt(s2 / n[:, None])
            xval[rows_] = dev / np.where(rms > 0, rms, 1.0)[col[rows_]]
        rows = np.flatnonzero(col >= 0).astype(PETSc.IntType)
        per = 4 if lin else 1
        Z = PETSc.Mat().createAIJ(((nloc * bs, None), (None, ncol * per)), nnz=(per, per), comm=self.comm)
        ia = np.zeros(nloc * bs + 1, dtype=PETSc.IntType)
        ia[1:] = np.cumsum(col >= 0) * per
        if lin:
            ja = (col[rows][:, None] * 4 + np.arange(4)).ravel()
            va = np.column_stack([np.ones(len(rows)), xval[rows]]).ravel()
        else:
            ja, va = col[rows], np.ones(len(rows))
        Z.setValuesCSR(ia, ja.astype(PETSc.IntType), va)
        Z.assemble()
        return Z

    def _reduction(self):
        """The :class:`_Reduction` to the nodes of the conducting cells, or None if every
        node is one.

        A node that no conducting cell touches (a cold plate's or gap pad's interior, kind
        "thermal") has potential zero in every field and no coupling to the others, so the
        system restricted to the other nodes has the same solution there (the full system
        pins it with a Dirichlet row). The forms integrate over the conducting cells only
        (``dx``); ``keep`` marks the kept local nodes (owned and ghost). Whole nodes are kept
        or dropped, so the block size (both potentials of a node) survives. The IS holds the
        owned global indices; ``sub`` is None until the first :meth:`_assemble_matrix`
        extracts it (then refills it in place; collective).
        """
        # only with thermal-only regions: other cases keep their system as it was (an
        # insulating holder's pinned nodes stay in it)
        if not solvers.DROP_INACTIVE_NODES or not any(
                self.bundle.regions[n].kind == "thermal" for n in self.bundle.volume_names()):
            return None
        msh = self.bundle.mesh
        tdim = msh.topology.dim
        imap, bs = self.V.dofmap.index_map, self.V.dofmap.index_map_bs
        ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
        conducting = np.zeros(ncells, dtype=bool)
        for sig in self.sig:
            conducting |= sig.x.array.reshape(-1, 3)[:ncells, 0] > 0
        mark = dolfinx.la.vector(imap, 1)
        mark.array[:] = 0.0
        mark.array[self.V.dofmap.list[:ncells][conducting].ravel()] = 1.0
        # a node is kept if a conducting cell of any rank touches it (owner and ghosts agree)
        mark.scatter_reverse(dolfinx.la.InsertMode.add)
        mark.scatter_forward()
        keep = mark.array > 0
        owned = np.flatnonzero(keep[:imap.size_local])
        dropped = self.comm.allreduce(int(imap.size_local - len(owned)), op=MPI.SUM)
        if dropped == 0:
            return None
        blocks = (owned + imap.local_range[0]).astype(PETSc.IntType)
        cells = np.flatnonzero(conducting).astype(np.int32)
        tags = dmesh.meshtags(msh, tdim, cells, np.ones_like(cells))
        dx = ufl.Measure("dx", domain=msh, subdomain_data=tags, subdomain_id=1)
        return _Reduction(PETSc.IS().createBlock(bs, blocks, comm=self.comm), dx, keep)

    # ----------------------------------------------------------------------------------------
    def _components(self, u):
        return [u[0], u[1]] if self.nfields == 2 else [u]

    def sigma(self, f: int):
        """UFL conductivity tensor of field ``f`` (0-based) at the temperature of the last assembly.

        P1: the per-cell ``diag(sigma)`` of :meth:`update_conductivity`; P2: sigma(T) at
        the quadrature points.
        """
        if self.cellwise_sigma:
            s = self.sig_T[f]
            return s if s.ufl_shape == () else ufl.diag(s)  # scalar: isotropic one-field conductor
        return conductivity(self.sig[f], self.alpha[f], self.Tref[f], self.T)

    def conductivity_positive(self) -> bool:
        """True if ``1 + alpha (T - T_ref) > 0`` at every node of every cell and field (collective)."""
        msh = self.bundle.mesh
        tdim = msh.topology.dim
        ncells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
        Tv = self.T.x.array[self.T.function_space.dofmap.list[:ncells]]
        q = self.Q0.dofmap.list[:ncells, 0]
        ok = True
        if self.cellwise_sigma:
            coeffs = [(tab[ids, 3], tab[ids, 4]) for ids, tab in self._cell_data]
        else:
            coeffs = [(a_f.x.array[q], r_f.x.array[q]) for a_f, r_f in zip(self.alpha, self.Tref)]
        for a, r in coeffs:
            ok &= bool(np.all(1.0 + a * (Tv.max(axis=1) - r) > 0) and np.all(1.0 + a * (Tv.min(axis=1) - r) > 0))
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def update_conductivity(self) -> None:
        """P1: re-evaluate the per-cell sigma(T) at the cell-mean temperature (no-op for P2)."""
        if not self.cellwise_sigma:
            return
        for f, (ids, tab) in enumerate(self._cell_data):
            if len(tab) == 1:  # one material: scalars broadcast
                cell_mean_conductivity(self.T, tab[0, :3], tab[0, 3], tab[0, 4], self.sig_T[f])
            else:
                cell_mean_conductivity(self.T, tab[ids, :3], tab[ids, 3], tab[ids, 4], self.sig_T[f])

    def _bilinear(self, u, v, dx=None):
        dx = dx if dx is not None else self.dx
        uc, vc = self._components(u), self._components(v)
        form = conduction_form([self.sigma(f) for f in range(self.nfields)], uc, vc, dx)
        if self.nfields == 2:
            form += transfer_form(self.g, uc, vc, dx)
            for el in self.elements:
                form += transfer_form(el.conductance, uc, vc, dx)
            # zero-weighted mass keeps inactive dofs' diagonal in the sparsity pattern
            form += fem.Constant(self.bundle.mesh, PETSc.ScalarType(0.0)) * ufl.inner(u, v) * dx
        return form

    def _linear(self, v, dx=None):
        dx = dx if dx is not None else self.dx
        vc = self._components(v)
        if self.nfields == 2:
            return self.source_on * transfer_source(self.g, self.s_stage, self.emf, vc, dx)
        return fem.Constant(self.bundle.mesh, PETSc.ScalarType(0.0)) * vc[0] * dx

    def _terminal_field(self, name: str) -> int:
        """Field carried by the conductor a terminal surface lies on."""
        facets = self.bundle.facets_of(name)
        msh = self.bundle.mesh
        tdim = msh.topology.dim
        f2c = msh.topology.connectivity(tdim - 1, tdim)
        local = set()
        fields = self.sig
        for fc in facets[:50]:
            c = f2c.links(fc)[0]
            for f in range(self.nfields):
                if fields[f].x.array[3 * c] > 0:
                    local.add(f + 1)
        allf = set().union(*self.comm.allgather(local))
        if len(allf) != 1:
            return 1
        return allf.pop()

    def _fill_conductors(self, materials: dict) -> None:
        b = self.bundle
        for name in b.volume_names():
            reg = b.regions[name]
            cells = b.cells_of(name)
            if reg.kind == "cell":
                cp = self.cell_params.get(name)
                if cp is None:
                    continue
                s = 1.0 if naming.positive_field(reg.stage) == 1 else -1.0
                pf, nf = naming.positive_field(reg.stage) - 1, naming.negative_field(reg.stage) - 1
                for f, key in ((pf, "pos"), (nf, "neg")):
                    # a scalar or a 3-vector: numpy broadcasts either over (cells, 3)
                    self.sig[f].x.array.reshape(-1, 3)[cells] = np.asarray(cp[f"sigma_{key}"], float)
                    self.alpha[f].x.array[cells] = cp.get(f"alpha_{key}", 0.0)
                    self.Tref[f].x.array[cells] = cp.get("T_ref", 293.15)
                self.s_stage.x.array[cells] = s
                continue
            if reg.kind == "thermal":  # a cold plate or gap pad: not part of the circuit
                continue
            mat = materials[reg.material]
            f = (reg.field or 1) - 1
            if f >= len(self.sig):
                f = 0
            self.sig[f].x.array.reshape(-1, 3)[cells] = mat.sigma_ref
            self.alpha[f].x.array[cells] = mat.alpha
            self.Tref[f].x.array[cells] = mat.T_ref
        for fn in (*self.sig, *self.alpha, *self.Tref, *([self.s_stage] if self.s_stage is not None else [])):
            fn.x.scatter_forward()

    # ----------------------------------------------------------------------------------------
    def _assemble_matrix(self) -> None:
        self.update_conductivity()
        self.A.zeroEntries()
        fpetsc.assemble_matrix(self.A, self.a, bcs=self.bcs)
        self.A.assemble()
        if self._red is not None:
            red = self._red
            if red.sub is None:
                red.sub = self.A.createSubMatrix(red.iset, red.iset)
                self.ksp.setOperators(red.sub)
            else:
                self.A.createSubMatrix(red.iset, red.iset, submat=red.sub)
        if self._coarse is not None:
            self._coarse.form(self.A if self._red is None else self._red.sub)
        self._decide_pc_reuse()

    def _operator_coefficients(self) -> list[np.ndarray]:
        """The coefficient arrays the operator depends on (sigma per field, g, extra elements)."""
        sig = self.sig_T if self.cellwise_sigma else [*self.sig, *self.alpha, self.T]
        g = [self.g] if self.g is not None else []
        return [f.x.array for f in (*sig, *g, *(el.conductance for el in self.elements))]

    def _decide_pc_reuse(self) -> None:
        """Keep the preconditioner if every coefficient is within ``pc_reuse_tol`` of its set-up.

        The change is the largest ``|c - c0| / max|c0|`` over each coefficient array (sigma
        per field, the cells' g, contact conductances); collective. A stale preconditioner
        still converges (CG stops on the true residual), it only costs iterations.
        """
        if not self.pc_reuse_tol:
            return
        now = self._operator_coefficients()
        change = np.inf
        if self._pc_coeffs is not None:
            change = 0.0
            for c, c0 in zip(now, self._pc_coeffs):
                scale = self.comm.allreduce(float(np.max(np.abs(c0))) if c0.size else 0.0, op=MPI.MAX)
                if scale > 0:
                    d = float(np.max(np.abs(c - c0))) if c.size else 0.0
                    change = max(change, self.comm.allreduce(d, op=MPI.MAX) / scale)
        keep = change <= self.pc_reuse_tol
        self.ksp.getPC().setReusePreconditioner(keep)
        if not keep:
            self._pc_coeffs = [c.copy() for c in now]
            self.pc_setups += 1

    def _solve_rhs(self, V_value: float, sources: bool, out: fem.Function, step, guess=None) -> int:
        """Solve for one right-hand side into ``out``.

        Iterative solves start from ``out``'s previous content (the same right-hand side's
        solution of the previous call: the operator changes only through sigma(T) and the
        cells' state), or from ``guess`` if given, so a step costs the iterations of its
        change, not of the whole field. The stopping test is relative to ``||b||`` either
        way, so the accuracy is the same.
        """
        if self.warm_start:
            fpetsc.assign(out if guess is None else guess, self.x)
        elif self.coarse_guess:
            self.x.set(0.0)
        self._assemble_rhs(V_value, sources)
        if self.coarse_guess:  # the guess carries the Dirichlet values (their rows are decoupled)
            fpetsc.set_bc(self.x, self.bcs)
        if self._red is None:
            its = self._krylov(self.b, self.x, step)
        else:  # the dropped entries of x stay at their pinned value 0
            iset = self._red.iset
            b_sub, x_sub = self.b.getSubVector(iset), self.x.getSubVector(iset)
            try:
                its = self._krylov(b_sub, x_sub, step)
            finally:
                self.b.restoreSubVector(iset, b_sub)
                self.x.restoreSubVector(iset, x_sub)
        if self.exact_bc_values:
            fpetsc.set_bc(self.x, self.bcs)
        self.x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
        fpetsc.assign(self.x, out)
        out.x.scatter_forward()
        return its

    def _krylov(self, b, x, step) -> int:
        """The KSP solve of the solved system, with the coarse corrections before and after."""
        if self.coarse_guess or self.coarse_post:
            A = self.ksp.getOperators()[0]
        if self.coarse_guess:
            self._coarse.correct(A, b, x)
        its = solvers.solve_checked(self.ksp, b, x, "electrical", step, self.stats)
        if self.coarse_post:
            self._coarse.correct(A, b, x)
        return its

    def _assemble_rhs(self, V_value: float, sources: bool) -> None:
        """The right-hand side of the solved system into ``self.b`` (lifted, Dirichlet rows set)."""
        self.V_term.value = V_value
        self.source_on.value = 1.0 if sources else 0.0
        with self.b.localForm() as loc:
            loc.set(0.0)
        if sources:  # with the cell EMFs off the source vector is zero
            fpetsc.assemble_vector(self.b, self.L)
        if V_value != 0.0:  # every other Dirichlet value is 0: at V = 0 the lifting is zero
            fpetsc.apply_lifting(self.b, [self.a], bcs=[self.bcs])
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fpetsc.set_bc(self.b, self.bcs)

    def _reaction(self, include_source: bool) -> float:
        val = fem.assemble_scalar(self.react_a)
        if include_source:
            val -= fem.assemble_scalar(self.react_L)
        return self.comm.allreduce(val, op=MPI.SUM)

    #: the reduced port step (:mod:`busbarfem.physics.reduced_ports`) once
    #: :meth:`use_reduced_step` switched it on; None: every call solves the full system
    reduced = None

    def use_reduced_step(self, tol: float = 1e-7, coefficient_tol: float | None = None) -> None:
        """Answer :meth:`solve` from a cell-port basis (:class:`~busbarfem.physics.reduced_ports.ReducedPorts`).

        Two-potential problems with cell regions only (ValueError otherwise).
        """
        from busbarfem.physics.reduced_ports import ReducedPorts

        self.reduced = ReducedPorts(self, tol=tol, coefficient_tol=coefficient_tol)

    def solve(self, mode: str, value: float, step: int | None = None) -> TerminalSolution:
        """Solve at the current temperature and cell state for a terminal target.

        Args:
            mode: ``"current"`` [A], ``"voltage"`` [V], ``"power"`` [W] (load sign
                convention of :class:`TerminalSolution`) or ``"resistance"`` [ohm]: a resistor
                across the terminals, ``I = V / R`` (an external short of the module).
            value: the target.
            step: step index for error messages.

        Returns:
            The terminal voltage/current; ``self.phi`` holds the potential.
        """
        if self.reduced is not None:
            return self.reduced.solve(mode, value, step)
        self._assemble_matrix()
        its = 0
        sign = -1.0 if self.has_sources else 1.0  # load current = -(current into terminal_pos) with cells
        I0 = 0.0
        # the source solve runs at a predicted terminal voltage V* (0 for LU and without
        # OPERATING_POINT_SOLVE): phi_a = phi(V = 0) + V* phi_b, see _predicted_voltage
        Vs = self._predicted_voltage(mode, value) if self.has_sources else 0.0
        if self.has_sources:
            self.source_on.value = 1.0
            its += self._solve_rhs(Vs, True, self._phi_a, step,
                                   guess=self.phi if (self.operating_point and self._v_last is not None) else None)
            self.phi.x.array[:] = self._phi_a.x.array
            I0 = sign * self._reaction(True)  # the current at V* for now
        else:
            self._phi_a.x.array[:] = 0.0
        its += self._solve_rhs(1.0, False, self._phi_b, step)
        self.phi.x.array[:] = self._phi_b.x.array
        self.source_on.value = 0.0
        G = sign * self._reaction(False)
        self.source_on.value = 1.0
        I0 -= G * Vs  # the current at V = 0
        V = self._terminal_voltage(mode, value, I0, G)
        self.phi.x.array[:] = self._phi_a.x.array + (V - Vs) * self._phi_b.x.array
        self.V_term.value = V
        if self.has_sources:
            self._v_last = V
        return TerminalSolution(voltage=V, current=I0 + G * V, conductance=G, iterations=its)

    def _predicted_voltage(self, mode: str, value: float) -> float:
        """Terminal voltage V* at which the source right-hand side is solved (iterative
        two-potential solves with :data:`solvers.OPERATING_POINT_SOLVE`; else 0, the
        short-circuit solve).

        The answer ``phi = phi(V*) + (V - V*) phi_b`` is exact for any V*; V* sets what the
        source solve is warm-started from and measured against. At V = 0 it is the module's
        short circuit, far from the previous call's solution (a warm start saved nothing) and
        with a right-hand side ~1e5 smaller than the V = 1 solve's, so the rtol test asked
        ~1e5 more absolute accuracy of it than of ``V phi_b`` in the sum. Near the operating
        point the previous solution ``phi`` is a close guess and both parts of the sum are
        solved to the same absolute level. V* is the target voltage in voltage mode, else
        the previous call's V, else (the first call) the open-circuit estimate: the sum over
        stages of the stage's mean cell EMF (collective).
        """
        if not self.operating_point:
            return 0.0
        if mode == "voltage":
            return float(value)
        if self._v_last is not None:
            return float(self._v_last)
        nloc = self.bundle.mesh.topology.index_map(self.bundle.mesh.topology.dim).size_local
        q = self.Q0.dofmap.list[:, 0]
        sums: dict[int, list[float]] = {}
        for name in self.cell_names:
            cells = self.bundle.cells_of(name)
            cells = cells[cells < nloc]
            acc = sums.setdefault(self.bundle.regions[name].stage, [0.0, 0.0])
            acc[0] += float(np.sum(self.emf.x.array[q[cells]]))
            acc[1] += len(cells)
        stages = sorted(set().union(*self.comm.allgather(set(sums))))
        vals = np.array([sums.get(st, [0.0, 0.0]) for st in stages]).reshape(-1, 2)
        vals = self.comm.allreduce(vals, op=MPI.SUM)
        return float(np.sum(vals[:, 0] / np.maximum(vals[:, 1], 1)))

    @staticmethod
    def _terminal_voltage(mode: str, value: float, I0: float, G: float) -> float:
        from busbarfem.errors import SolveError

        if mode == "voltage":
            return float(value)
        if mode == "current":
            return (value - I0) / G
        if mode == "resistance":
            # the terminals loaded by a resistor R: I0 + G V = V / R (load sign convention:
            # discharge-positive with cells, so a source has G < 0 and V = I0 / (1/R - G) > 0)
            if value <= 0.0:
                return 0.0
            denom = 1.0 / value - G
            if denom == 0.0:
                raise SolveError(f"a {value:.6g} ohm resistor across terminals of conductance {G:.6g} S "
                                 "has no solution", reason="singular resistance load")
            return float(I0 / denom)
        if mode == "power":
            from busbarfem.loads import power_current

            # I = I0 + G V is V = A - B I with A = -I0/G, B = -1/G: the root on the branch
            # through I = 0 (largest V for a source, the positive one for a passive conductor)
            current = power_current(-I0 / G, -1.0 / G, value)
            if current is None:
                raise SolveError(f"requested power {value:.6g} W exceeds the maximum deliverable "
                                 f"{-I0 * I0 / (4 * G):.6g} W at this state", reason="power not deliverable")
            return float((current - I0) / G)
        raise ValueError(f"unknown control mode {mode!r}")

    def destroy(self) -> None:
        """Free the PETSc objects (matrix, vectors, KSP); the problem cannot solve afterwards."""
        if self.reduced is not None:
            self.reduced.destroy()
        solvers.destroy_ksp(self.ksp)
        for obj in (self.A, self.b, self.x, getattr(self, "_Z", None),
                    *((self._red.iset, self._red.sub) if self._red is not None else ())):
            if obj is not None:
                obj.destroy()
        if getattr(self, "_coarse", None) is not None:
            self._coarse.free()
            self._coarse = None
        self.ksp = self.A = self.b = self.x = self._Z = self._red = None

    # ----------------------------------------------------------------------------------------
    def joule_density(self):
        """UFL Joule heat density ``sum_f grad phi_f . S_f grad phi_f`` [W/m^3]."""
        pc = self._components(self.phi)
        return sum(ufl.inner(self.sigma(f) * ufl.grad(pc[f]), ufl.grad(pc[f])) for f in range(self.nfields))

    def current_density(self):
        """UFL current density vector ``-sum_f S_f grad phi_f`` [A/m^2]."""
        pc = self._components(self.phi)
        return -sum(self.sigma(f) * ufl.grad(pc[f]) for f in range(self.nfields))

    def transfer_current(self):
        """UFL volumetric transfer current j = g (E - (phi+ - phi-)) [A/m^3] (0 outside cells)."""
        if self.nfields == 1:
            return fem.Constant(self.bundle.mesh, PETSc.ScalarType(0.0))
        pc = self._components(self.phi)
        return self.g * (self.emf - self.s_stage * (pc[0] - pc[1]))

    def cell_voltage_field(self):
        """UFL local cell voltage phi+ - phi- [V] (0 outside cells)."""
        if self.nfields == 1:
            return fem.Constant(self.bundle.mesh, PETSc.ScalarType(0.0))
        pc = self._components(self.phi)
        return self.s_stage * (pc[0] - pc[1])
