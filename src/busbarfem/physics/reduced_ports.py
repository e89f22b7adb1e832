r"""Reduced electrical step of the two-potential (MSMD) problem: a cell-port basis.

At a frozen operator (sigma(T), every cell's g_c = 1/(R0_c Vol_c) and the contact
conductances unchanged) the potential is exactly linear in the terminal voltage and the
cells' EMFs::

    phi = V phi_b + sum_c E_c psi_c,

``phi_b`` the solution with V = 1 and no sources, ``psi_c`` the solution with V = 0 and a unit
EMF in cell c only. :class:`ReducedPorts` computes these N + 1 fields once (one operator,
one sparse factorisation and one multi-right-hand-side solve: the direct electrical solver's
own factorisation, or a separate one when the electrical solver is iterative
(:data:`BUILD_DIRECT`; else N + 1 preconditioned solves) and then answers each electrical
call without a Krylov solve: a Galerkin projection of the current problem on the basis

    Psi^T A Psi y_a = Psi^T L,          Psi^T A Psi y_b = -Psi^T A phi_b
    phi_a = Psi y_a,  phi_b' = phi_b + Psi y_b,  phi = phi_a + V phi_b'

with ``A`` the current operator (assembled without Dirichlet rows, so ``Psi^T A x`` is the
unconstrained action on the free dofs) and ``L`` the current source vector. At a frozen
operator the exact solution lies in the span, so the projection reproduces it; when the
operator has moved, it is the energy-best approximation in the span (the cell currents
and the terminal current are functionals whose dual solutions are, to first order, in the
span too, so their error is second order in the change). The terminal quantities are the
same discrete reactions as the full solve, ``w^T (A phi - L)``, evaluated from the
projected products, and the control mode goes through
:meth:`ElectricalProblem._terminal_voltage` unchanged.

Error control: after each reduced call the true residual of the assembled current system
``||b - A phi|| / ||b||`` (free rows; ``b`` the right-hand side with the terminal voltage
lifted, as in the full solve) is evaluated from the same products; above ``tol`` the basis
is rebuilt at the current operator and the call repeated. That residual is the error
control; optionally (``coefficient_tol``, default None: off) the basis is also rebuilt when any
operator coefficient moved by more than that fraction of its largest value since the
build (the measure of :meth:`ElectricalProblem._decide_pc_reuse`). MPI: every rank holds its
owned rows of the basis; the projected matrices and the port sums are allreduced, and the
small dense systems are solved redundantly on every rank.
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx.fem.petsc as fpetsc
from dolfinx import fem, la

from busbarfem.physics import solvers

#: build the basis by one sparse Cholesky factorisation (MUMPS) and one multi-right-hand-side
#: solve when the electrical KSP is iterative, instead of N + 1 preconditioned CG solves
#: (docs/performance.md "Reduced electrical step": 8s6p); False: always the electrical KSP
BUILD_DIRECT = True

#: ... up to this many solved unknowns (measured at 414,952, 8s6p: peak RSS 1.9 GB per rank on
#: 2 ranks for the whole run; the factorisation's fill grows faster than the size, so larger
#: systems keep the CG solves until measured)
BUILD_DIRECT_MAX_DOFS = 1_000_000

#: largest per-rank size of the stored per-cell basis gradients [bytes]; above it the
#: reduced step assembles the operator each call instead (same result, slower)
FEATURE_BYTES = 2 * 1024**3

#: keep the basis's own factorisation (iterative electrical solver) between builds, so that a
#: rebuild is a numeric refactorisation at the symbolic analysis of the first build (8s6p,
#: 389,028 unknowns: 1.2 s instead of 3.2-3.5 s on 1 rank, 0.7 instead of 2.2-2.5 s on 2; and
#: MUMPS's first-solve set-up of the 49-column solve, 0.7-1.3 s, is not repeated). It holds the
#: factor's memory through the run (the peak is the build's either way); False frees it
KEEP_BASIS_FACTOR = True



def _mv(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` over the last axis of ``a`` without BLAS.

    The reduced call's products are tall and thin (10^5 rows, N + 1 columns): OpenBLAS runs
    such a gemv / dot on all its threads, which on a loaded machine spin-wait for each other
    (measured on the 4s2p step: 18.6 ms CPU for the six F c products threaded against 7.5 ms
    in numpy's own loop, and 2.8 against 1.1 ms for Zfull c). Same sums to rounding.
    """
    return np.einsum("...k,k->...", a, x)


def coefficient_change(comm, now: list, ref: list | None) -> float:
    """Largest ``max|c - c0| / max|c0|`` over the coefficient arrays (inf without ``ref``; collective)."""
    if ref is None:
        return np.inf
    change = 0.0
    for c, c0 in zip(now, ref):
        scale = comm.allreduce(float(np.max(np.abs(c0))) if c0.size else 0.0, op=MPI.MAX)
        if scale > 0:
            d = float(np.max(np.abs(c - c0))) if c.size else 0.0
            change = max(change, comm.allreduce(d, op=MPI.MAX) / scale)
    return change


def solve_columns(ksp: PETSc.KSP, B: np.ndarray, block: int | None = None) -> np.ndarray:
    """Solve ``A X = B`` for the owned rows ``B`` (``(nloc, m)``) with a set-up direct ``ksp``.

    ``block`` columns per ``KSPMatSolve`` (MUMPS's blocked solve); 1: one ``KSPSolve`` per
    column; None: all at once. Returns ``X`` in Fortran order. Measured at 8s6p (389,028
    unknowns, 49 columns, ``scripts/bench/port_basis.py``): all at once 1.16 s on 1 rank and
    2.23-2.34 s on 2 (blocks of 16: 1.29 / 2.20-2.31 s; single solves 6.0-6.5 / 4.2-4.5 s).
    """
    A = ksp.getOperators()[0]
    comm = A.getComm().tompi4py()
    nloc, m = B.shape
    if block is None:
        block = m
    block = max(1, min(int(block), m))
    X = np.zeros((nloc, m), order="F")
    if block == 1:
        b, x = A.createVecs()
        for k in range(m):
            b.setArray(B[:, k])
            ksp.solve(b, x)
            X[:, k] = x.getArray(readonly=True)
        b.destroy()
        x.destroy()
        return X
    for j0 in range(0, m, block):
        j1 = min(m, j0 + block)
        Bb = PETSc.Mat().createDense(((nloc, None), (j1 - j0, j1 - j0)), comm=comm,
                                     array=np.asfortranarray(B[:, j0:j1]))
        Xb = PETSc.Mat().createDense(((nloc, None), (j1 - j0, j1 - j0)), comm=comm)
        Xb.setUp()
        Bb.assemble()
        Xb.assemble()
        ksp.matSolve(Bb, Xb)
        X[:, j0:j1] = Xb.getDenseArray(readonly=True)
        Bb.destroy()
        Xb.destroy()
    return X


class ReducedPorts:
    """The reduced step of a two-potential :class:`~busbarfem.physics.electrical.ElectricalProblem`.

    Args:
        el: the electrical problem (two fields, with cell regions).
        tol: largest relative residual ``||b - A phi|| / ||b||`` accepted from the basis.
        coefficient_tol: also rebuild when an operator coefficient moved by more than this
            fraction of its largest value since the basis was built (None: the residual alone
            decides).
    """

    def __init__(self, el, tol: float = 1e-7, coefficient_tol: float | None = None):
        if el.nfields != 2 or not el.cell_names:
            raise ValueError("the reduced electrical step needs cell bodies (two potentials)")
        self.el, self.tol = el, float(tol)
        self.coefficient_tol = None if coefficient_tol is None else float(coefficient_tol)
        self.comm = el.comm
        V = el.V
        bs = V.dofmap.index_map_bs
        self.nloc = V.dofmap.index_map.size_local * bs
        self.region_cells = [el.bundle.cells_of(n) for n in el.cell_names]
        self.n = len(self.region_cells)
        m = self.n + 2  # phi_b, psi_1..psi_N, w (the terminal_pos indicator: the lifted data)
        self.Z = np.zeros((self.nloc, m), order="F")
        fixed = np.zeros(self.nloc, dtype=bool)
        for bc in el.bcs:
            idx, first_ghost = bc.dof_indices()
            own = idx[:first_ghost]
            fixed[own[own < self.nloc]] = True
        self.fixed = fixed
        pos = np.asarray(el.pos_dofs, dtype=np.int64)
        self.pos_owned = pos[pos < self.nloc]
        self.Z[self.pos_owned, m - 1] = 1.0
        self._Zmat = PETSc.Mat().createDense(((self.nloc, None), (m, m)), array=self.Z, comm=self.comm)
        self._Zmat.assemble()
        self._scratch = fem.Function(V)
        self._acc = [fem.Function(V), fem.Function(V)]
        self.fast = self._setup_fast()
        self._coeffs: list | None = None
        self._built = False
        #: counters for the run's solver statistics
        self.builds = 0
        self.reduced_steps = 0
        self.rebuilds_coefficient = 0
        self.rebuilds_residual = 0
        self.max_residual = 0.0
        self.last_residual = np.nan
        self.direct_failures = 0      # direct builds that fell back to the KSP solves
        self.direct_residual = np.nan  # largest column residual of the last direct build
        #: the basis's own MUMPS Cholesky KSP, kept between builds (:data:`KEEP_BASIS_FACTOR`)
        self._basis_ksp: PETSc.KSP | None = None

    # ------------------------------------------------------------------ basis
    def build(self, step) -> int:
        """Solve for the N + 1 basis fields at the current operator; returns the KSP iterations."""
        el = self.el
        el._assemble_matrix()  # with the Dirichlet rows: the system the KSP solves
        its = 0
        if el.options.get("ksp_type") == "preonly":  # a direct electrical solver: its own factor
            if not self._build_direct(reuse=True):
                its = self._build_ksp(step)
        elif not (BUILD_DIRECT and el.ndofs_solved <= BUILD_DIRECT_MAX_DOFS and self._build_direct()):
            its = self._build_ksp(step)
        self._Zmat.assemble()  # the array changed under the Mat
        if self.fast:
            self._features()
        self._coeffs = [c.copy() for c in el._operator_coefficients()]
        self._built = True
        self.builds += 1
        return its

    def _build_direct(self, reuse: bool = False) -> bool:
        """The N + 1 fields by one MUMPS Cholesky factorisation of the solved operator and one
        multi-right-hand-side solve (``KSPMatSolve``); the factorisation is kept for the next
        build (:data:`KEEP_BASIS_FACTOR`), which then refactorises numerically only.
        ``reuse``: the electrical KSP is itself direct (``preonly``), so its factorisation of the
        same operator is used (set up here, kept) instead of a second one: one blocked MUMPS
        solve of the N + 1 right-hand sides replaces N + 1 single solves (BLAS-3 triangular
        solves; the single solves were 0.05 s each at 64,718 unknowns on 1 and on 2 ranks).

        Every column's true relative residual ``||B - A X|| / ||B||`` must be below a tenth of
        the reduced step's ``tol`` (measured 1.4e-10 on 2s2p; the CG solves stop on the
        preconditioned residual, so their true one is not smaller); False (nothing stored) if
        the factorisation failed or missed it, and the caller falls back to the KSP solves
        (counted in ``direct_failures``)."""
        el, comm, m = self.el, self.comm, self.n + 1
        A = el.ksp.getOperators()[0]
        if reuse:
            ksp = el.ksp
        elif self._basis_ksp is not None:  # a rebuild: numeric refactorisation only
            ksp = self._basis_ksp
            A.setOption(PETSc.Mat.Option.SYMMETRIC, True)
            ksp.setOperators(A)
        else:
            A.setOption(PETSc.Mat.Option.SYMMETRIC, True)
            # MUMPS Cholesky with the ordering rule of every direct solve (solvers.preset)
            ksp = solvers.make_ksp(comm, A, "busbarfem_basis_",
                                   solvers.preset("lu", A.getSize()[0], 0.0, symmetric=True))
        keep = not reuse and KEEP_BASIS_FACTOR
        red = el._red
        try:
            ksp.setUp()
            Barr = self._rhs_columns()
            Xarr = solve_columns(ksp, Barr)
            Xm = PETSc.Mat().createDense((A.getSizes()[0], (m, m)), array=Xarr, comm=comm)
            Xm.assemble()
            R = A.matMult(Xm)
            Rarr = R.getDenseArray(readonly=True)
            num = comm.allreduce(np.sum((Rarr - Barr) ** 2, axis=0), op=MPI.SUM)
            den = comm.allreduce(np.sum(Barr ** 2, axis=0), op=MPI.SUM)
            R.destroy()
            Xm.destroy()
            rel = float(np.max(np.sqrt(num / np.where(den > 0, den, 1.0))))
            self.direct_residual = rel
            if not np.isfinite(rel) or rel > 0.1 * self.tol:
                self.direct_failures += 1
                return False
            for k in range(m):
                out = el._phi_b if k == 0 else self._scratch
                if red is None:
                    el.x.setArray(Xarr[:, k])
                else:  # the dropped entries of x stay at their pinned value 0
                    el.x.set(0.0)
                    sub = el.x.getSubVector(red.iset)
                    sub.setArray(Xarr[:, k])
                    el.x.restoreSubVector(red.iset, sub)
                el.x.ghostUpdate(addv=PETSc.InsertMode.INSERT, mode=PETSc.ScatterMode.FORWARD)
                fpetsc.assign(el.x, out)
                out.x.scatter_forward()
                self.Z[:, k] = out.x.array[:self.nloc]
                if self.fast:
                    self.Zfull[:, k] = out.x.array
        except PETSc.Error:  # e.g. MUMPS out of memory: the KSP solves instead
            self.direct_failures += 1
            keep = False
            return False
        finally:
            if not reuse:
                if keep:
                    self._basis_ksp = ksp
                else:
                    solvers.destroy_ksp(ksp)
                    self._basis_ksp = None
        return True

    def _rhs_columns(self) -> np.ndarray:
        """The N + 1 right-hand sides of the basis on the solved rows, ``(nsub, N + 1)``
        Fortran order: V = 1 without sources, then a unit EMF in each cell at V = 0. The
        EMF field and the source switch are restored afterwards."""
        el, m = self.el, self.n + 1
        red = el._red
        nsub = el.ksp.getOperators()[0].getLocalSize()[0]
        Barr = np.zeros((nsub, m), order="F")
        emf = el.emf.x.array.copy()
        try:
            for k in range(m):
                if k == 0:
                    el._assemble_rhs(1.0, False)
                else:
                    el.emf.x.array[:] = 0.0
                    el.emf.x.array[self.region_cells[k - 1]] = 1.0
                    el.emf.x.scatter_forward()
                    el._assemble_rhs(0.0, True)
                if red is None:
                    Barr[:, k] = el.b.getArray(readonly=True)
                else:
                    sub = el.b.getSubVector(red.iset)
                    Barr[:, k] = sub.getArray(readonly=True)
                    el.b.restoreSubVector(red.iset, sub)
        finally:
            el.emf.x.array[:] = emf
            el.emf.x.scatter_forward()
            el.source_on.value = 1.0
        return Barr

    def _build_ksp(self, step) -> int:
        """The N + 1 fields by the electrical KSP, one warm-started solve each; the iterations."""
        el = self.el
        its = el._solve_rhs(1.0, False, el._phi_b, step)
        self.Z[:, 0] = el._phi_b.x.array[:self.nloc]
        if self.fast:
            self.Zfull[:, 0] = el._phi_b.x.array
        emf = el.emf.x.array.copy()
        try:
            for k, cells in enumerate(self.region_cells):
                el.emf.x.array[:] = 0.0
                el.emf.x.array[cells] = 1.0
                el.emf.x.scatter_forward()
                self._scratch.x.array[:self.nloc] = self.Z[:, k + 1]  # warm start: the old psi_c
                its += el._solve_rhs(0.0, True, self._scratch, step)
                self.Z[:, k + 1] = self._scratch.x.array[:self.nloc]
                if self.fast:
                    self.Zfull[:, k + 1] = self._scratch.x.array
        finally:
            el.emf.x.array[:] = emf
            el.source_on.value = 1.0
        return its

    # ------------------------------------------------------------------ step
    def solve(self, mode: str, value: float, step=None):
        """The electrical call of :meth:`ElectricalProblem.solve` from the basis (rebuilt if needed)."""
        from busbarfem.physics.electrical import TerminalSolution

        el = self.el
        el.update_conductivity()
        its = 0
        fresh = False
        if not self._built:
            its += self.build(step)
            fresh = True
        elif (self.coefficient_tol is not None and coefficient_change(
                self.comm, el._operator_coefficients(), self._coeffs) > self.coefficient_tol):
            its += self.build(step)
            self.rebuilds_coefficient += 1
            fresh = True
        fast = self.fast and self._region_constant() and self._const_unchanged()
        project = self._project_fast if fast else self._project
        V, I0, G, res = project(mode, value)
        if res > self.tol and not fresh:
            self.rebuilds_residual += 1
            its += self.build(step)
            fresh = True
            V, I0, G, res = project(mode, value)
        if not fresh:
            self.reduced_steps += 1
        self.last_residual = res
        self.max_residual = max(self.max_residual, res)
        el.V_term.value = V
        return TerminalSolution(voltage=V, current=I0 + G * V, conductance=G, iterations=its)

    def _project(self, mode: str, value: float):
        """Galerkin solve on the basis with the current operator; fills ``el.phi``.

        Returns ``(V, I0, G, relative residual)``.
        """
        el, comm, n = self.el, self.comm, self.n
        # the current operator without Dirichlet rows: Psi^T A x is the free-row action
        el.A.zeroEntries()
        fpetsc.assemble_matrix(el.A, el.a, bcs=[])
        el.A.assemble()
        with el.b.localForm() as loc:
            loc.set(0.0)
        el.source_on.value = 1.0
        fpetsc.assemble_vector(el.b, el.L)
        el.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        L = el.b.getArray(readonly=True).copy()
        AZm = el.A.matMult(self._Zmat)
        AZ = AZm.getDenseArray().copy()
        AZm.destroy()
        Z = self.Z
        # unconstrained products over all rows, for the terminal reactions below
        gram_all = comm.allreduce(Z[:, :n + 1].T @ AZ[:, :n + 1], op=MPI.SUM)
        zl_all = comm.allreduce(Z[:, :n + 1].T @ L, op=MPI.SUM)
        AZ[self.fixed] = 0.0   # free rows only: the Galerkin conditions and the residual
        L[self.fixed] = 0.0
        V, I0, G, c = self._galerkin(mode, value, gram_all, zl_all)
        el.phi.x.array[:self.nloc] = Z[:, :n + 1] @ c
        el.phi.x.scatter_forward()
        r = L - AZ[:, :n + 1] @ c
        b = L - V * AZ[:, n + 1]
        rr = comm.allreduce(float(r @ r), op=MPI.SUM)
        bb = comm.allreduce(float(b @ b), op=MPI.SUM)
        res = float(np.sqrt(rr / bb)) if bb > 0 else float(np.sqrt(rr))
        return float(V), I0, G, res

    # ------------------------------------------------------------------ P1 element path
    def _setup_fast(self) -> bool:
        """Per-cell geometry for the assembly-free products (P1, cellwise sigma, no extra
        electrical elements, affine tets). False when it does not apply or would take
        more than :data:`FEATURE_BYTES` per rank."""
        el = self.el
        msh = el.bundle.mesh
        tdim = msh.topology.dim
        gdm = msh.geometry.dofmaps[0]
        ok = el.cellwise_sigma and not el.elements and gdm.shape[1] == 4 and tdim == 3  # P1 on affine tets
        ce = msh.topology.index_map(tdim).size_local
        if ok:
            # per field, the owned cells whose sigma depends on T (alpha != 0): only their part
            # of the conduction Gram matrix changes between builds, so only they keep gradients
            self.var_cells = [np.flatnonzero(tab[np.asarray(ids[:ce], dtype=np.int64), 3] != 0.0)
                              for ids, tab in el._cell_data]
            nvar = sum(len(c) for c in self.var_cells)
            ok = nvar * 3 * (self.n + 1) * 8 <= FEATURE_BYTES
        if not self.comm.allreduce(bool(ok), op=MPI.LAND):
            return False
        self.ce = ce
        self.dofs = np.asarray(el.V.dofmap.list[:ce], dtype=np.int64)  # (ce, 4) nodes (block dofs)
        X = msh.geometry.x[gdm[:ce]]                                      # (ce, 4, 3)
        E = X[:, 1:, :] - X[:, :1, :]                                     # rows x_a - x_0
        Einv = np.linalg.inv(E)
        grad = np.empty((ce, 4, 3))
        grad[:, 1:, :] = np.transpose(Einv, (0, 2, 1))                    # grad lambda_a = column a of E^-1
        grad[:, 0, :] = -grad[:, 1:, :].sum(axis=1)
        self.grad = grad
        self.gradT = np.ascontiguousarray(np.transpose(grad, (1, 2, 0)))  # (4, 3, ce)
        self.vol = np.abs(np.linalg.det(E)) / 6.0
        self.q = np.asarray(el.Q0.dofmap.list[:ce, 0], dtype=np.int64)
        # owned cells of each cell region (positions in 0..ce-1)
        self.region_owned = [c[c < ce] for c in self.region_cells]
        self.nnodes = el.V.dofmap.index_map.size_local + el.V.dofmap.index_map.num_ghosts
        # owned cells with a terminal_pos dof (where the indicator w lives)
        mark = np.zeros(self.nnodes, dtype=bool)
        mark[np.asarray(el.pos_dofs, dtype=np.int64) // 2] = True
        self.pos_cells = np.flatnonzero(mark[self.dofs].any(axis=1))
        self.Zfull = np.zeros((2 * self.nnodes, self.n + 1))
        self._idx = (2 * self.dofs[:, :, None] + np.arange(2)).ravel()  # the element loops' scatter
        # the source vector L = sum_k (g E s)_k L_k on the owned rows: L_k that of unit g E s on
        # region k (geometry only; g, E, s are constant per region on the fast path, g is 0
        # outside the cell regions)
        # outside the cell regions); kept sparse as (row, region, value) triplets
        out = fem.Function(el.V)
        rows, regs, vals = [], [], []
        for k, c in enumerate(self.region_owned):
            contrib = np.zeros((ce, 4, 2))
            contrib[c, :, 0] = (self.vol[c] / 4.0)[:, None]
            contrib[c, :, 1] = -(self.vol[c] / 4.0)[:, None]
            out.x.array[:] = np.bincount(self._idx, weights=contrib.ravel(), minlength=2 * self.nnodes)
            out.x.scatter_reverse(la.InsertMode.add)  # collective: every rank, every region
            r = np.flatnonzero(out.x.array[:self.nloc])
            rows.append(r)
            regs.append(np.full(len(r), k))
            vals.append(out.x.array[r])
        self._L_rows, self._L_regs, self._L_vals = (np.concatenate(a) for a in (rows, regs, vals))
        return True

    def _region_constant(self) -> bool:
        """True if g and E are constant over every cell region (the ECM cells' case; collective)."""
        g, e = self.el.g.x.array, self.el.emf.x.array
        ok = all(np.ptp(g[self.q[c]]) == 0 and np.ptp(e[self.q[c]]) == 0 for c in self.region_owned if len(c))
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def _features(self) -> None:
        """Per-region transfer Gram matrices ``T_c`` and source moments ``l_c``, the conduction
        Gram matrix ``G_const`` of the cells with a temperature-independent sigma (per field:
        ``alpha = 0``; their sigma is the build's for good) and the per-cell basis gradients
        ``F_var`` of the others (from the columns incl. ghosts). The sigma of the constant
        cells is kept to check that it really stays put (:meth:`_const_unchanged`)."""
        m = self.n + 1
        el = self.el
        zn = self.Zfull.reshape(self.nnodes, 2, m)
        self.T_c = np.zeros((self.n, m, m))
        self.l_c = np.zeros((self.n, m))
        self.G_const = np.zeros((m, m))
        region = np.full(self.ce, -1)
        for k, c in enumerate(self.region_owned):
            region[c] = k
        var = np.zeros((2, self.ce), dtype=bool)
        for f in range(2):
            var[f, self.var_cells[f]] = True
        self.F_var = [np.empty((3, len(self.var_cells[f]), m)) for f in range(2)]
        pos = [np.cumsum(var[f]) - 1 for f in range(2)]  # cell -> row in F_var[f]
        sig = [el.sig_T[f].x.array.reshape(-1, 3)[self.q] for f in range(2)]
        self._sig_const = [sig[f][~var[f]].copy() for f in range(2)]
        chunk = 50000
        for a in range(0, self.ce, chunk):
            sl = slice(a, min(a + chunk, self.ce))
            ze = zn[self.dofs[sl]]                                          # (c, 4, 2, m)
            v = self.vol[sl]
            for f in range(2):
                vf = var[f, sl]
                cf = ~vf
                for dd in range(3):
                    Fk = np.einsum("ea,eak->ek", self.grad[sl, :, dd], ze[:, :, f, :])
                    if cf.any():
                        Fw = Fk[cf] * np.sqrt(sig[f][sl, dd][cf] * v[cf])[:, None]
                        self.G_const += Fw.T @ Fw
                    if vf.any():
                        self.F_var[f][dd, pos[f][sl][vf]] = Fk[vf]
            d = ze[:, :, 0, :] - ze[:, :, 1, :]                             # (c, 4, m)
            S = d.sum(axis=1)
            reg = region[sl]
            for k in np.unique(reg[reg >= 0]):
                sel = reg == k
                w = v[sel]
                Sk, dk = S[sel], d[sel]
                self.T_c[k] += (Sk * (w / 20.0)[:, None]).T @ Sk
                dk2 = dk.reshape(-1, m)
                self.T_c[k] += (dk2 * np.repeat(w / 20.0, 4)[:, None]).T @ dk2
                self.l_c[k] += (w / 4.0) @ Sk

    def _const_unchanged(self) -> bool:
        """True if sigma of every constant-sigma cell is still the build's (collective)."""
        el = self.el
        ok = True
        for f in range(2):
            keep = np.ones(self.ce, dtype=bool)
            keep[self.var_cells[f]] = False
            ok = ok and np.array_equal(el.sig_T[f].x.array.reshape(-1, 3)[self.q[keep]], self._sig_const[f])
        return bool(self.comm.allreduce(ok, op=MPI.LAND))

    def _action(self, x: np.ndarray, out: fem.Function, source: bool, cells=None) -> np.ndarray:
        """Owned rows of ``A x`` (minus ``L`` if ``source``) with the current coefficients, by
        element loops over the owned cells, or over ``cells`` where x is supported
        (x: all local rows incl. ghosts)."""
        el = self.el
        sel = slice(None) if cells is None else cells
        dofs, vol, q = self.dofs[sel], self.vol[sel], self.q[sel]
        gT = self.gradT[:, :, sel]                                          # (4, 3, c)
        x2 = x.reshape(self.nnodes, 2)
        contrib = np.empty((len(vol), 4, 2))
        for f in range(2):
            sig = el.sig_T[f].x.array.reshape(-1, 3)[q]
            # (the basis' per-cell gradients are stored for the T-dependent cells only)
            xa = [x2[dofs[:, a], f] for a in range(4)]
            gx = [(gT[0, d] * xa[0] + gT[1, d] * xa[1] + gT[2, d] * xa[2] + gT[3, d] * xa[3])
                  * sig[:, d] * vol for d in range(3)]
            for a in range(4):
                contrib[:, a, f] = gT[a, 0] * gx[0] + gT[a, 1] * gx[1] + gT[a, 2] * gx[2]
        g = el.g.x.array[q] * vol / 20.0
        dn = x2[:, 0] - x2[:, 1]
        d = [dn[dofs[:, a]] for a in range(4)]
        dsum = d[0] + d[1] + d[2] + d[3]
        lsrc = g * el.emf.x.array[q] * el.s_stage.x.array[q] * 5.0 if source else 0.0  # g vol E s / 4
        for a in range(4):
            tr = g * (d[a] + dsum) - lsrc
            contrib[:, a, 0] += tr
            contrib[:, a, 1] -= tr
        idx = self._idx if cells is None else (2 * dofs[:, :, None] + np.arange(2)).ravel()
        out.x.array[:] = np.bincount(idx, weights=contrib.ravel(), minlength=2 * self.nnodes)
        out.x.scatter_reverse(la.InsertMode.add)
        return out.x.array[:self.nloc].copy()

    def _project_fast(self, mode: str, value: float):
        """:meth:`_project` without assembly: the Galerkin products from the stored per-cell
        basis gradients and region moments (P1, exact to rounding)."""
        el, comm, n = self.el, self.comm, self.n
        gram = self.G_const.copy()  # the constant-sigma cells: summed at the build
        for f in range(2):
            cells = self.var_cells[f]
            if not len(cells):
                continue
            w = el.sig_T[f].x.array.reshape(-1, 3)[self.q[cells]] * self.vol[cells, None]
            for d in range(3):
                Fw = self.F_var[f][d] * np.sqrt(w[:, d:d + 1])
                gram += Fw.T @ Fw
        zl = np.zeros(n + 1)
        g, e, s = el.g.x.array, el.emf.x.array, el.s_stage.x.array
        for k, c in enumerate(self.region_owned):
            if len(c):
                qc = self.q[c[0]]
                gram += g[qc] * self.T_c[k]
                zl += g[qc] * e[qc] * s[qc] * self.l_c[k]
        gram_all = comm.allreduce(gram, op=MPI.SUM)
        zl_all = comm.allreduce(zl, op=MPI.SUM)
        V, I0, G, c = self._galerkin(mode, value, gram_all, zl_all)
        el.phi.x.array[:] = _mv(self.Zfull, c)
        # the true residual of the current system on the free rows (two element loops)
        mr = -self._action(el.phi.x.array, self._acc[0], True)   # L - A phi
        Aw = self._action(el._w.x.array, self._acc[1], False, self.pos_cells)
        b = self._source_regions() - V * Aw
        mr[self.fixed] = 0.0
        b[self.fixed] = 0.0
        rr = comm.allreduce(float(_mv(mr, mr)), op=MPI.SUM)
        bb = comm.allreduce(float(_mv(b, b)), op=MPI.SUM)
        res = float(np.sqrt(rr / bb)) if bb > 0 else float(np.sqrt(rr))
        return float(V), I0, G, res

    def _source_regions(self) -> np.ndarray:
        """Owned rows of the source vector ``L`` from the per-region vectors (g, E, s constant
        per region: the fast path); equal to :meth:`_source_owned` to rounding."""
        el = self.el
        g, e, s = el.g.x.array, el.emf.x.array, el.s_stage.x.array
        w = np.full(self.n, -np.inf)  # a rank's owned rows may get a region's source from other ranks only
        for k, c in enumerate(self.region_owned):
            if len(c):
                qc = self.q[c[0]]
                w[k] = g[qc] * e[qc] * s[qc]
        if self.comm.size > 1:
            wg = np.empty_like(w)
            self.comm.Allreduce(w, wg, op=MPI.MAX)
            w = wg
        w[np.isinf(w)] = 0.0
        return np.bincount(self._L_rows, weights=self._L_vals * w[self._L_regs], minlength=self.nloc)

    def _source_owned(self) -> np.ndarray:
        """Owned rows of the source vector ``L`` (element loop)."""
        el = self.el
        l = el.g.x.array[self.q] * self.vol * el.emf.x.array[self.q] * el.s_stage.x.array[self.q] / 4.0
        contrib = np.zeros((self.ce, 4, 2))
        contrib[:, :, 0] = l[:, None]
        contrib[:, :, 1] = -l[:, None]
        idx = (2 * self.dofs[:, :, None] + np.arange(2)).ravel()
        out = self._acc[1]
        out.x.array[:] = np.bincount(idx, weights=contrib.ravel(), minlength=2 * self.nnodes)
        out.x.scatter_reverse(la.InsertMode.add)
        return out.x.array[:self.nloc].copy()

    def _galerkin(self, mode, value, gram_all, zl_all):
        """Solve the projected systems and the terminal law; returns ``(V, I0, G, coefficients)``.

        ``gram_all = Z^T A Z`` and ``zl_all = Z^T L`` over all rows (the columns: phi_b, psi_c).
        Terminal reactions in their variational form: for the exact fields the reaction
        ``w^T (A phi - L)`` equals ``a(phi, phi_b) - L(phi_b)`` (``w - phi_b`` vanishes on every
        Dirichlet dof and the residual on the free ones), so ``G = -a(phi_b, phi_b)`` and
        ``I0 = -(a(phi_a, phi_b) - L(phi_b))``. With the projected fields this form is second
        order in the operator change (the nodal indicator w is not in the span: first order).
        """
        n = self.n
        M = gram_all[1:, 1:]
        M = 0.5 * (M + M.T)
        y = np.linalg.solve(M, np.column_stack([zl_all[1:], -gram_all[1:, 0]]))
        y_a, y_b = y[:, 0], y[:, 1]
        cb = np.concatenate([[1.0], y_b])
        ca = np.concatenate([[0.0], y_a])
        sign = -1.0  # load current = -(current into terminal_pos) with cells
        G = sign * float(cb @ gram_all @ cb)
        I0 = sign * (float(ca @ gram_all @ cb) - float(zl_all @ cb))
        V = self.el._terminal_voltage(mode, value, I0, G)
        c = np.zeros(n + 1)
        c[0] = V
        c[1:] = y_a + V * y_b
        return V, I0, G, c

    # ------------------------------------------------------------------ reporting
    def to_dict(self) -> dict:
        """Counters for summary.json's ``linear_solvers.electrical_reduced``."""
        return {"tol": self.tol, "coefficient_tol": self.coefficient_tol, "basis_size": self.n + 1,
                "basis_builds": self.builds, "reduced_steps": self.reduced_steps,
                "rebuilds_coefficient": self.rebuilds_coefficient, "rebuilds_residual": self.rebuilds_residual,
                "max_residual": self.max_residual, "direct_build_failures": self.direct_failures}

    def destroy(self) -> None:
        """Free the PETSc objects."""
        if self._basis_ksp is not None:
            solvers.destroy_ksp(self._basis_ksp)
            self._basis_ksp = None
        if self._Zmat is not None:
            self._Zmat.destroy()
            self._Zmat = None
