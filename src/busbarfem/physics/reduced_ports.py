r"""Reduced electrical step of the two-potential (MSMD) problem: a cell-port basis.

At a frozen operator (sigma(T), every cell's g_c = 1/(R0_c Vol_c) and the contact
conductances unchanged) the potential is exactly linear in the terminal voltage and the
cells' EMFs::

    phi = V phi_b + sum_c E_c psi_c,

``phi_b`` the solution with V = 1 and no sources, ``psi_c`` the solution with V = 0 and a unit
EMF in cell c only. :class:`ReducedPorts` computes these N + 1 fields once (one operator,
one preconditioner set-up or factorisation, N + 1 solves) and then answers each electrical
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
is rebuilt at the current operator and the call repeated. The basis is also rebuilt when any
operator coefficient moved by more than ``coefficient_tol`` of its largest value since the
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

#: largest per-rank size of the stored per-cell basis gradients [bytes]; above it the
#: reduced step assembles the operator each call instead (same result, slower)
FEATURE_BYTES = 2 * 1024**3


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


class ReducedPorts:
    """The reduced step of a two-potential :class:`~busbarfem.physics.electrical.ElectricalProblem`.

    Args:
        el: the electrical problem (two fields, with cell regions).
        tol: largest relative residual ``||b - A phi|| / ||b||`` accepted from the basis.
        coefficient_tol: rebuild when an operator coefficient moved by more than this
            fraction of its largest value since the basis was built.
    """

    def __init__(self, el, tol: float = 1e-7, coefficient_tol: float = 0.5):
        if el.nfields != 2 or not el.cell_names:
            raise ValueError("the reduced electrical step needs cell bodies (two potentials)")
        self.el, self.tol, self.coefficient_tol = el, float(tol), float(coefficient_tol)
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

    # ------------------------------------------------------------------ basis
    def build(self, step) -> int:
        """Solve for the N + 1 basis fields at the current operator; returns the KSP iterations."""
        el = self.el
        el._assemble_matrix()  # with the Dirichlet rows: the system the KSP solves
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
        self._Zmat.assemble()  # the array changed under the Mat
        if self.fast:
            self._features()
        self._coeffs = [c.copy() for c in el._operator_coefficients()]
        self._built = True
        self.builds += 1
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
        elif coefficient_change(self.comm, el._operator_coefficients(), self._coeffs) > self.coefficient_tol:
            its += self.build(step)
            self.rebuilds_coefficient += 1
            fresh = True
        project = self._project_fast if self.fast and self._region_constant() else self._project
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
        ok = ok and ce * 6 * (self.n + 1) * 8 <= FEATURE_BYTES
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
        """Per-cell gradients of the basis fields (``F``), the per-region transfer Gram
        matrices ``T_c`` and source moments ``l_c`` (from the columns incl. ghosts)."""
        m = self.n + 1
        zn = self.Zfull.reshape(self.nnodes, 2, m)
        F = np.empty((6, self.ce, m))  # (field x direction, cell, column): contiguous per direction
        self.T_c = np.zeros((self.n, m, m))
        self.l_c = np.zeros((self.n, m))
        region = np.full(self.ce, -1)
        for k, c in enumerate(self.region_owned):
            region[c] = k
        chunk = 50000
        for a in range(0, self.ce, chunk):
            sl = slice(a, min(a + chunk, self.ce))
            ze = zn[self.dofs[sl]]                                          # (c, 4, 2, m)
            for f in range(2):
                for dd in range(3):
                    F[3 * f + dd, sl] = np.einsum("ea,eak->ek", self.grad[sl, :, dd], ze[:, :, f, :])
            d = ze[:, :, 0, :] - ze[:, :, 1, :]                             # (c, 4, m)
            S = d.sum(axis=1)
            reg = region[sl]
            v = self.vol[sl]
            for k in np.unique(reg[reg >= 0]):
                sel = reg == k
                w = v[sel]
                Sk, dk = S[sel], d[sel]
                self.T_c[k] += (Sk * (w / 20.0)[:, None]).T @ Sk
                dk2 = dk.reshape(-1, m)
                self.T_c[k] += (dk2 * np.repeat(w / 20.0, 4)[:, None]).T @ dk2
                self.l_c[k] += (w / 4.0) @ Sk
        self.F = F

    def _action(self, x: np.ndarray, out: fem.Function, source: bool, cells=None, coeffs=None) -> np.ndarray:
        """Owned rows of ``A x`` (minus ``L`` if ``source``) with the current coefficients, by
        element loops over the owned cells, or over ``cells`` where x is supported
        (x: all local rows incl. ghosts; ``coeffs``: x is ``Zfull @ coeffs``, whose per-cell
        gradients are then ``F @ coeffs``, all cells only)."""
        el = self.el
        sel = slice(None) if cells is None else cells
        dofs, vol, q = self.dofs[sel], self.vol[sel], self.q[sel]
        gT = self.gradT[:, :, sel]                                          # (4, 3, c)
        x2 = x.reshape(self.nnodes, 2)
        contrib = np.empty((len(vol), 4, 2))
        for f in range(2):
            sig = el.sig_T[f].x.array.reshape(-1, 3)[q]
            if coeffs is not None:  # x = Zfull c: the per-cell gradients are F c
                gx = [_mv(self.F[3 * f + d], coeffs) * sig[:, d] * vol for d in range(3)]
            else:
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
        F = self.F
        gram = np.zeros((n + 1, n + 1))
        for f in range(2):
            w = el.sig_T[f].x.array.reshape(-1, 3)[self.q] * self.vol[:, None]
            for d in range(3):
                Fk = F[3 * f + d]
                gram += (Fk * w[:, d:d + 1]).T @ Fk
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
        mr = -self._action(el.phi.x.array, self._acc[0], True, coeffs=c)   # L - A phi
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
                "max_residual": self.max_residual}

    def destroy(self) -> None:
        """Free the PETSc objects."""
        if self._Zmat is not None:
            self._Zmat.destroy()
            self._Zmat = None
