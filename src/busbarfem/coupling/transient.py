r"""The 3D coupled model as a system for the shared :class:`~busbarfem.coupling.stepper.TransientStepper`.

Operator splitting per step: the electrical problem is solved with sigma(T^n) and the
contributions' states at t_n integrated over the step (the ECM RC pairs exactly at
constant current, so the solve gives the end-of-step currents and voltages and stays
stable for dt >> tau_RC); its heat drives the thermal step to T^{n+1} (optionally
Picard-iterated on sigma(T)); then the contributions' states advance with those
currents. Terminations and step sizes are the stepper's (as in the lumped model).
"""

from __future__ import annotations

import math
import time

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI

from busbarfem.coupling.model import CoupledModel
from busbarfem.coupling.stepper import StepOutcome, TrialResult
from busbarfem.errors import SolveError
from busbarfem.events import VARYING_CURRENT_MODES, Runaway, StopKind, hold_decay_time

#: Largest SOC change an adaptive step grows to (the growth cap; the step's end-of-step OCV
#: is the secant over the predicted SOC change, exact for a constant current).
SOC_STEP = 0.03

#: Rungs per doubling of the step lengths the SOC cap sets (``2**(k / SOC_RUNGS)`` s): the
#: capped step is the rung at or below the length that changes the SOC by :data:`SOC_STEP`,
#: so it stays the same while the cell currents drift by less than a rung (4.4 %), and the
#: thermal solve reuses its factorisation. Before, the cap halved the overshoot each step and
#: every step had a new length converging on that one (4s2p 1C to 1800 s: 15 Cholesky
#: refactorisations after the four growing steps, 2 with the ladder).
SOC_RUNGS = 16


def soc_rung(h: float) -> float:
    """The largest step length ``2**(k / SOC_RUNGS)`` s (k integer) not above ``h`` > 0."""
    k = math.floor(SOC_RUNGS * math.log2(h) + 1e-9)
    r = 2.0 ** (k / SOC_RUNGS)
    return r if r <= h else 2.0 ** ((k - 1) / SOC_RUNGS)


class FEMSystem:
    """:class:`~busbarfem.coupling.stepper.SteppedSystem` of a :class:`CoupledModel`.

    Args:
        model: the coupled model.
        on_record: ``callable(t, step, sol, flows) -> StepRecord`` that records a solved time.
        write_fields: ``callable(t)`` that writes the fields at ``t``.
        events: the list the load events are appended to (as dicts).
    """

    def __init__(self, model: CoupledModel, on_record, write_fields, events: list):
        self.model = model
        self.controller = model.controller
        self.on_record, self.write_fields, self.events = on_record, write_fields, events
        self.solution = None     # terminal solution at the current time
        self._hold_step = None   # (load step, event count) whose start current is known
        self.every = model.case.output.every

    # ------------------------------------------------------------------ start
    def start(self, t: float, step: int, record_initial: bool) -> None:
        """The solution at the start time (and its record, unless restarting)."""
        m = self.model
        m.thermal.restart_step()
        self.solution = m.electrical_step(t, step)
        if record_initial:
            f0 = m.thermal.heat_flows()
            # at t = 0 all net heat goes into storage: the instantaneous balance is exact
            f0.stored = (f0.generated + f0.flux_in - f0.convection - f0.radiation - f0.fixed_temperature
                         - f0.coolant)
            self.on_record(t, step, self.solution, f0)
        self.write_fields(t)

    # ------------------------------------------------------------------ SteppedSystem
    def save(self) -> dict:
        """Contribution states at the start of the step (the temperature is ``T_n``)."""
        return self.model.snapshot()

    def start_conditions(self, t: float, step: int) -> list:
        """Conditions at the start of the step, from the last solution."""
        return self.model.conditions(t, self.solution, self.model.tmax(self.model.thermal.T_n))

    def hold_start_current(self, t: float, step: int, start: dict):
        """Cell currents at the start of a held-voltage step (None for other targets).

        Within one hold step the end currents of the previous step are the start currents;
        when the step has just begun (the current jumps) an instantaneous solve gives them.
        """
        m = self.model
        if m.cells is None or m.target(t).mode not in VARYING_CURRENT_MODES:
            self._hold_step = None
            return None
        key = (self.controller.step_index, len(self.controller.events), m.target(t).mode)
        if self._hold_step != key:
            m.restore(start)
            m.electrical_step(t, step, 0.0)
            self._hold_step = key
        return m.cells.current.copy()

    def hold_time_constant(self, t: float, start: dict, i_start) -> float | None:
        """Decay time of the cell currents at the start of a hold, from the ECM cells'
        state (:func:`busbarfem.events.hold_decay_time`); None for other cell models."""
        c = self.model.cells
        if c is None or not hasattr(c, "params") or not hasattr(c, "state"):
            return None
        return hold_decay_time(c.params, c.state, getattr(c, "T_mean", None), i_start)

    def trial(self, t: float, h: float, step: int, start: dict, i_start):
        """One attempt at the step from ``t`` to ``t + h`` from ``start``: electrical solve,
        thermal step (Picard on sigma(T) if asked), contribution update."""
        m = self.model
        m.restore(start)
        s, th, comm = m.case.solver, m.thermal, m.comm
        th.restart_step()
        sol = m.electrical_step(t + 0.5 * h, step, h, i_start)
        m.thermal_step(h, step)
        for _ in range(s.picard.max_iterations if s.coupled_iterations else 0):
            change = comm.allreduce(float(np.max(np.abs(th.T.x.array - th.T_k.x.array))), op=MPI.MAX)
            if change <= s.picard.tolerance * (1.0 + m.tmax() - m.tmax(th.T_n)):
                break
            th.accept_iterate()
            sol = m.electrical_step(t + 0.5 * h, step, h, i_start)
            m.thermal_step(h, step)
        else:
            if s.coupled_iterations:
                raise SolveError(f"Picard iteration on sigma(T) did not converge in "
                                 f"{s.picard.max_iterations} iterations at t = {t + h:.6g} s",
                                 step=step, reason="Picard not converged")
        m.check_temperature(step)
        flows = th.heat_flows()
        dT = comm.allreduce(float(np.max(np.abs(th.T.x.array - th.T_n.x.array))), op=MPI.MAX)
        m.advance_contributions(t, h, sol)
        cells = m.cells.current if m.cells is not None else None
        return TrialResult((sol, flows), dT, cells), m.conditions(t + h, sol, m.tmax())

    def accept(self, t: float, h: float, step: int, result: TrialResult, t_start: float) -> StepOutcome | None:
        """Record, accept the temperature, let the load controller and the contributions react."""
        m = self.model
        sol, flows = result.payload
        self.solution = sol
        t0 = time.perf_counter()
        rec = self.on_record(t, step, sol, flows)
        m.timings.tick("record", t0)
        m.thermal.advance()
        tmax = rec.row["T_max [K]"]
        event = self.controller.update(t - h, h, sol.voltage, sol.current, *m.cell_status(), max_temperature=tmax)
        if step % self.every == 0 or event is not None:
            self.write_fields(t)
        if event is not None:
            self.events.append(event.to_dict())
            rec.event = self.events[-1]
            if event.stop:
                return StepOutcome(StopKind.LOAD, event.reason, t, step)
        for c in m.contributions:
            for cond in c.conditions(t):
                if cond.reached:  # located by the stepper; a switch is the contribution's own business
                    self.events.append({"time": t, "kind": cond.kind.value, "key": cond.key, "reason": cond.reason,
                                        "stop": cond.stop, "source": c.name})
                    if cond.stop:
                        self.write_fields(t)
                        return StepOutcome(StopKind.CONTRIBUTION, cond.reason, t, step)
            ev = c.after_step(t, h, flows)
            if ev is not None and ev.stop:
                if ev.runaway:
                    raise Runaway(ev.reason)
                return StepOutcome(StopKind.CONTRIBUTION, ev.reason, t, step)
        limit = m.case.solver.temperature_limit
        if limit is not None and tmax > limit:
            self.write_fields(t)
            return StepOutcome(StopKind.TEMPERATURE_LIMIT, "temperature limit", t, step)
        return None

    def max_dt(self, t: float) -> float:
        """The smallest step limit of the contributions (:meth:`Contribution.max_dt`)."""
        return min((c.max_dt(t) for c in self.model.contributions), default=float("inf"))

    def step_cap(self, h: float) -> float | None:
        """Longest next step: the :func:`soc_rung` of the length that changes the SOC of the
        most loaded cell by :data:`SOC_STEP` at the present currents (None: no cells or no
        current)."""
        c = self.model.cells
        if c is None:
            return None
        i_max = float(np.max(np.abs(c.current)))
        if not i_max > 0.0:
            return None
        return soc_rung(SOC_STEP * 3600 * float(np.min(c.capacity_Ah)) / i_max)
