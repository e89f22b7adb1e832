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
from dolfinx import fem


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
        emf = el.emf.x.array.copy()
        try:
            for k, cells in enumerate(self.region_cells):
                el.emf.x.array[:] = 0.0
                el.emf.x.array[cells] = 1.0
                el.emf.x.scatter_forward()
                self._scratch.x.array[:self.nloc] = self.Z[:, k + 1]  # warm start: the old psi_c
                its += el._solve_rhs(0.0, True, self._scratch, step)
                self.Z[:, k + 1] = self._scratch.x.array[:self.nloc]
        finally:
            el.emf.x.array[:] = emf
            el.source_on.value = 1.0
        self._Zmat.assemble()  # the array changed under the Mat
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
        V, I0, G, res = self._project(mode, value)
        if res > self.tol and not fresh:
            self.rebuilds_residual += 1
            its += self.build(step)
            fresh = True
            V, I0, G, res = self._project(mode, value)
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
        gram = comm.allreduce(Z[:, :n + 1].T @ AZ[:, :n + 1], op=MPI.SUM)
        zl = zl_all[1:]        # psi_c vanish on the Dirichlet dofs
        M = gram[1:, 1:]
        M = 0.5 * (M + M.T)
        y = np.linalg.solve(M, np.column_stack([zl, -gram[1:, 0]]))
        y_a, y_b = y[:, 0], y[:, 1]
        # Terminal reactions in their variational form: for the exact fields the reaction
        # w^T (A phi - L) equals a(phi, phi_b) - L(phi_b) (w - phi_b vanishes on every
        # Dirichlet dof, and the residual is zero on the free ones), so G = a(phi_b, phi_b),
        # I0 = -(a(phi_a, phi_b) - L(phi_b)). With the projected fields this form is second
        # order in the operator change (the nodal indicator w is not in the span: first order).
        cb = np.concatenate([[1.0], y_b])
        ca = np.concatenate([[0.0], y_a])
        sign = -1.0  # load current = -(current into terminal_pos) with cells
        G = sign * float(cb @ gram_all @ cb)
        I0 = sign * (float(ca @ gram_all @ cb) - float(zl_all @ cb))
        V = el._terminal_voltage(mode, value, I0, G)
        c = np.zeros(n + 1)
        c[0] = V
        c[1:] = y_a + V * y_b
        el.phi.x.array[:self.nloc] = Z[:, :n + 1] @ c
        el.phi.x.scatter_forward()
        r = L - AZ[:, :n + 1] @ c
        b = L - V * AZ[:, n + 1]
        rr = comm.allreduce(float(r @ r), op=MPI.SUM)
        bb = comm.allreduce(float(b @ b), op=MPI.SUM)
        res = float(np.sqrt(rr / bb)) if bb > 0 else float(np.sqrt(rr))
        return float(V), I0, G, res

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
