"""The steady solver: Anderson-accelerated Picard iteration on sigma(T) and T.

A fixed point that is not physical (temperature below every boundary temperature, or a
negative conductivity) or a temperature past ``runaway_temperature`` means no steady
state exists: thermal runaway (:class:`busbarfem.events.Runaway`), a result.
"""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI

from busbarfem.coupling.model import CoupledModel, global_min
from busbarfem.errors import SolveError
from busbarfem.events import Runaway


class Anderson:
    """Anderson acceleration of a fixed-point map x -> G(x) on distributed vectors."""

    def __init__(self, comm: MPI.Comm, depth: int):
        self.comm, self.depth = comm, depth
        self.X: list[np.ndarray] = []
        self.F: list[np.ndarray] = []

    def mix(self, x: np.ndarray, gx: np.ndarray) -> np.ndarray:
        """Next iterate from the current ``x`` and its image ``gx`` (owned entries)."""
        f = gx - x
        self.X.append(gx.copy())
        self.F.append(f.copy())
        if self.depth == 0 or len(self.F) < 2:
            return gx
        self.X, self.F = self.X[-(self.depth + 1):], self.F[-(self.depth + 1):]
        dF = np.array([self.F[i + 1] - self.F[i] for i in range(len(self.F) - 1)])
        dX = np.array([self.X[i + 1] - self.X[i] for i in range(len(self.X) - 1)])
        M = self.comm.allreduce(dF @ dF.T, op=MPI.SUM)
        rhs = self.comm.allreduce(dF @ f, op=MPI.SUM)
        try:
            gamma = np.linalg.lstsq(M + 1e-14 * np.trace(M) * np.eye(len(M)), rhs, rcond=None)[0]
        except np.linalg.LinAlgError:
            return gx
        return gx - gamma @ dX


def picard_converged(change: float, rise: float, tolerance: float) -> bool:
    """The Picard stopping test ``max |T - T_k| <= tol (1 + |rise|)`` (steady and transient)."""
    return change <= tolerance * (1.0 + abs(rise))


class SteadySolver:
    """Steady coupled solve of a :class:`CoupledModel`."""

    def __init__(self, model: CoupledModel):
        self.model = model

    def min_boundary_temperature(self) -> float:
        """The coldest temperature any boundary (or, without boundaries, the initial state) imposes [K]."""
        thermal = self.model.case.thermal
        temps = [thermal.initial_temperature] if not thermal.boundaries else []
        for bc in thermal.boundaries:
            if bc.type == "temperature":
                temps.append(bc.T)
            elif bc.type in ("convection", "radiation"):
                temps.append(thermal.ambient_of(bc))
        return min(temps) if temps else thermal.initial_temperature

    def solve(self, target=None) -> dict:
        """Anderson-accelerated Picard on the steady coupled problem.

        Returns:
            A convergence report (iterations, last change, terminal solution).

        Raises:
            Runaway: no physical steady state exists.
            SolveError: the iteration did not converge (and did not run away).
        """
        m = self.model
        s = m.case.solver
        th, comm = m.thermal, m.comm
        acc = Anderson(comm, s.picard.anderson_depth)
        T_floor = self.min_boundary_temperature()
        history = []
        target = target if target is not None else m.target(0.0)
        for it in range(1, s.picard.max_iterations + 1):
            sol = m.electrical_step(0.0, it, target=target)
            m.thermal_step(None, it)
            Tnew = th.owned()
            m.check_temperature(it)
            Told = th.owned(th.T_k)
            nown = len(Tnew)
            change = comm.allreduce(float(np.max(np.abs(Tnew - Told))) if nown else 0.0, op=MPI.MAX)
            rise = comm.allreduce(float(np.max(Tnew) - T_floor) if nown else 0.0, op=MPI.MAX)
            history.append(change)
            if picard_converged(change, rise, s.picard.tolerance):
                th.accept_iterate()
                sol = m.electrical_step(0.0, it, target=target)
                m.thermal_step(None, it)
                self._assert_physical(T_floor)
                return {"iterations": it, "last_change_K": change, "history_K": history, "terminal": sol}
            th.set_iterate(acc.mix(Told.copy(), Tnew.copy()))
            if not m.electrical.conductivity_positive():
                raise Runaway("the temperature iterate makes the conductivity negative: no steady state "
                              "(thermal runaway)")
        raise SolveError(f"steady Picard iteration did not converge in {s.picard.max_iterations} iterations "
                         f"(last change {history[-1]:.3g} K)", step=s.picard.max_iterations,
                         reason="Picard not converged")

    def _assert_physical(self, T_floor: float) -> None:
        """A steady state with heat sources >= 0 cannot dip below the coldest boundary."""
        m = self.model
        tmin = global_min(m.comm, m.thermal.owned())
        if m.electrical.nfields == 1 and tmin < T_floor - 1e-6 * max(1.0, T_floor):
            raise Runaway(f"the only fixed point has T_min = {tmin:.2f} K below the coldest boundary "
                          f"{T_floor:.2f} K: no physical steady state (thermal runaway)")
        if not m.electrical.conductivity_positive():
            raise Runaway("steady state needs a negative conductivity: thermal runaway")

    def tmax_at(self, current: float) -> float | None:
        """Steady T_max [K] at a fixed load current, or None if no steady state exists.

        Restarts from the initial temperature; used by the critical-current search.
        """
        from busbarfem.loads import Target

        m = self.model
        m.thermal.set_uniform(m.case.thermal.initial_temperature)
        try:
            self.solve(Target("current", float(current), 0))
        except Runaway:
            return None
        return m.tmax()
