r"""The one transient stepper, shared by the 3D model and the lumped circuit.

:class:`TransientStepper` runs the time loop of any :class:`SteppedSystem`: the 3D coupled
model (:class:`busbarfem.coupling.transient.FEMSystem`) and the lumped nSmP circuit
(:class:`busbarfem.cells.lumped.LumpedSystem`). Per step it

1. proposes a length with the :class:`StepSizeController` (the current ``dt``, cut to
   the end time and to the next scheduled event of the load, and, in a held-voltage or
   held-power step, to what :class:`~busbarfem.events.HoldCurrentControl` suggests, and to
   the system's ``max_dt(t)`` if it has one (the physics contributions' limit, e.g. abuse
   kinetics near onset; never below ``dt_min``);
2. tries the step from its saved start (``system.trial``); a step whose temperature
   changed more than twice ``max_temperature_change`` (adaptive runs) is halved, a held
   step whose error estimate (first held step: current change) is too large is shortened
   as the hold control says; a held step after the first takes the exponential current
   shape with the decay times of the previous held step (:meth:`StepSizeController.held_shape`);
3. locates a threshold event reached inside the step (:func:`busbarfem.events.locate`,
   Illinois root finding to ``event_tolerance``, ended early when a secant puts the
   crossing just before a reached trial); a threshold already reached at the step's
   start cuts the step to ``event_tolerance/2`` before its first trial, and the first
   step of a hold is sized from the system's ``hold_time_constant`` (if it has one);
4. hands the accepted step to ``system.accept``, which records it and reports whether
   the run stops (a typed :class:`StepOutcome`);
5. lets the step-size controller choose the next ``dt``.

The systems differ only in their physics (what a trial solves) and in what they record;
the step-size rules and the event landing are this module's, so the same load ends at
the same times on both paths (tests/verification/test_shared_stepper.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from busbarfem.cells.ecm import HeldCurrent
from busbarfem.events import HoldCurrentControl, Landing, StopKind, first_reached, locate, margin_of


@dataclass
class TrialResult:
    """What a trial step produced: the system's own ``payload``, the largest temperature
    change over the step [K] (for the adaptive step size) and the cell currents at its
    end (for the hold control; None without cells)."""

    payload: Any
    dT: float = 0.0
    cell_current: Any = None


@dataclass
class StepOutcome:
    """How a run ended: the kind, the stop reason's text, the last time and step."""

    kind: StopKind
    reason: str
    t: float
    step: int


class SteppedSystem(Protocol):
    """What the stepper needs of a system (see :class:`busbarfem.coupling.transient.FEMSystem`)."""

    controller: Any  # busbarfem.loads.LoadController

    def save(self) -> Any:
        """State at the start of a step."""

    def start_conditions(self, t: float, step: int) -> list:
        """Termination conditions at the start of the step (margins for the root finder)."""

    def hold_start_current(self, t: float, step: int, start) -> Any:
        """Cell currents at the start of a held-voltage/power step (None otherwise)."""

    def trial(self, t: float, h: float, step: int, start, i_start) -> tuple[TrialResult, list]:
        """Solve the step from ``start`` over ``h``: ``(result, conditions at t + h)``."""

    def accept(self, t: float, h: float, step: int, result: TrialResult, t_start: float) -> StepOutcome | None:
        """Commit the step from ``t_start`` that ends at ``t = t_start + h``; an outcome stops the run."""

    def step_cap(self, h: float) -> float | None:
        """Longest adaptive step after an accepted step of ``h`` [s] (None: no cap)."""


class StepSizeController:
    """Step-size rules of the transient: proposal, rejection, growth.

    Args:
        dt: initial (and, without ``adaptive``, fixed) step [s].
        t_end: end time [s] (inf: until the load stops).
        dt_min, dt_max: bounds of an adaptive step [s]; ``dt_min`` also bounds the
            shortening by the hold control.
        adaptive: grow/cut the step from the temperature change.
        max_temperature_change: aimed-at max temperature change per step [K].
        hold: the held-voltage current control.
    """

    def __init__(self, dt: float, t_end: float = math.inf, dt_min: float = 1e-3, dt_max: float | None = None,
                 adaptive: bool = False, max_temperature_change: float = math.inf,
                 hold: HoldCurrentControl | None = None):
        self.dt0 = float(dt)
        self.dt = float(dt)
        self.t_end = float(t_end)
        self.dt_min = float(dt_min)
        self.dt_max = float(dt_max) if dt_max else float(dt)
        self.adaptive = bool(adaptive)
        self.max_change = float(max_temperature_change)
        self.hold = hold or HoldCurrentControl()
        self.h_hold: float | None = None  # what the hold control suggests for the next held step
        self.held_prev = None  # (start currents, length) of the last accepted held step
        self._held_end = None  # its end currents (a hold goes on where they equal the next start)
        self.tau_hold: float | None = None  # the system's decay time at the start of the hold

    def at_end(self, t: float) -> bool:
        """The end time is reached (to a relative 1e-9)."""
        return t >= self.t_end - 1e-9 * max(1.0, self.t_end)

    def propose(self, t: float, next_event: float | None, held: bool, limit: float = math.inf) -> float:
        """Length of the next step from ``t``: ``dt`` cut to the end time, to the next scheduled
        event (one that is at most 1e-9 relative beyond the step is landed on too), to
        ``limit`` (the physics' longest step, not below ``dt_min``) and, in a held step, to
        the hold control's suggestion."""
        h = min(self.dt, self.t_end - t, max(limit, self.dt_min))
        if next_event is not None and next_event - t < h * (1 + 1e-9):
            h = next_event - t
        if not held:
            self.h_hold = None
            self.held_prev = self._held_end = None
        elif self.h_hold is not None:
            h = min(h, self.h_hold)
        return h

    def start_hold(self, tau: float | None) -> None:
        """First step of a held-voltage phase: sized by the hold control from the decay time
        ``tau`` [s] of the cell currents (the system's estimate; None: no estimate, the
        step starts at ``dt`` and the hold control cuts it)."""
        self.held_prev = self._held_end = None
        self.tau_hold = None
        if tau is not None and math.isfinite(tau) and tau > 0.0:
            self.h_hold = max(self.hold.first_step(tau), self.dt_min)
            self.tau_hold = float(tau)

    def held_previous(self, i_start):
        """``(I_prev, h_prev, jump)`` of the last accepted held step if this held step
        continues it (its start currents are within 1 % of that step's end currents), else None.

        A small jump between the two (the lumped circuit's start currents see the
        temperature the last step ended at: the splitting error of that step) is taken out
        of ``I_prev`` (scaled by ``I_start / I_end`` where both have one sign, else shifted
        by the jump) and returned as ``jump = I_start - I_end``."""
        import numpy as np

        if self.held_prev is None or self._held_end is None or i_start is None:
            return None
        end, start = np.asarray(self._held_end, dtype=float), np.asarray(i_start, dtype=float)
        if end.shape != start.shape:
            return None
        scale = np.maximum(np.maximum(np.abs(start), np.abs(end)), self.hold.current_floor)
        if np.any(np.abs(start - end) > 1e-2 * scale):
            return None
        prev = np.asarray(self.held_prev[0], dtype=float)
        same = start * end > 0.0
        prev = np.where(same, prev * np.where(same, start / np.where(same, end, 1.0), 1.0), prev + (start - end))
        return prev, self.held_prev[1], start - end

    def held_shape(self, i_start):
        """Decay times of the current shape of a held step (None: linear), see
        :meth:`busbarfem.events.HoldCurrentControl.shape_decay`; the first step of a hold
        takes the system's decay time at its start (:meth:`start_hold`), if it had one."""
        import numpy as np

        prev = self.held_previous(i_start)
        if prev is None and self.held_prev is None and self.tau_hold is not None and self.hold.rtol is not None:
            return np.full(np.shape(i_start), self.tau_hold)
        return self.hold.shape_decay(prev, i_start)

    def held_accepted(self, i_start, i_end, h: float) -> None:
        """Remember an accepted held step (the next one's shape and error estimate)."""
        if i_start is None or i_end is None:
            self.held_prev = self._held_end = None
        else:
            self.held_prev, self._held_end = (i_start, h), i_end

    def _at_floor(self, h: float) -> bool:
        return h <= self.dt_min * 1.0001

    def retry(self, h: float, result: TrialResult, i_start, decay=None) -> float | None:
        """The shorter length to retry a trial of ``h`` with, or None to keep it (``decay``:
        the held step's current shape, :meth:`held_shape`)."""
        if self.adaptive and result.dT > 2 * self.max_change and not self._at_floor(h):
            return max(h / 2, self.dt_min)
        if i_start is not None:
            accept, h_next = self.hold.judge(i_start, result.cell_current, h, self.held_previous(i_start), decay)
            if accept or self._at_floor(h):
                self.h_hold = h_next
                return None
            return max(h_next, self.dt_min)
        return None

    def next_dt(self, h: float, located: bool, result: TrialResult, step_cap: float | None = None) -> float:
        """``dt`` after an accepted step of ``h``.

        A step cut to a located event keeps the planned ``dt``; an adaptive step grows by
        1.5 when the temperature changed less than half the aimed-at change, to at most
        ``step_cap`` [s] (e.g. from the SOC change: the cap itself, not a product with ``h``,
        so a cap that stays the same gives the same ``dt`` to the last bit, and the thermal
        factorisation is reused); a fixed step stays ``dt``.
        """
        if located:
            self.dt = max(self.dt, self.dt_min)
        elif self.adaptive:
            h_next = h * (1.5 if result.dT < 0.5 * self.max_change else 1.0)
            if step_cap is not None:
                h_next = min(h_next, step_cap)
            self.dt = min(max(h_next, self.dt_min), self.dt_max)
        else:
            self.dt = self.dt0
        return self.dt


def _reached_at_start(conditions) -> bool:
    """A threshold condition already holds at the start of the step."""
    c = first_reached(conditions)
    return c is not None and c.kind.landing is Landing.THRESHOLD


class TransientStepper:
    """The time loop (see the module docstring).

    Args:
        system: the physics being stepped.
        steps: the step-size controller.
        event_tolerance: time resolution of located threshold events [s].
        checkpoint: optional ``callable(t, step, dt_next)`` after every accepted step.
        stop_errors: exceptions a trial may raise that end the run normally (the lumped
            circuit's "power not deliverable"); the reason reads ``"<message> at t = ... s"``.
    """

    def __init__(self, system: SteppedSystem, steps: StepSizeController, event_tolerance: float,
                 checkpoint=None, stop_errors: tuple = ()):
        self.system, self.steps, self.tolerance = system, steps, float(event_tolerance)
        self.checkpoint = checkpoint
        self.stop_errors = stop_errors

    def run(self, t: float = 0.0, step: int = 0, end_reason: str = "end time reached") -> StepOutcome:
        """Step from ``(t, step)`` until the system stops or the end time; the outcome."""
        system, steps = self.system, self.steps
        while not steps.at_end(t):
            step += 1
            try:
                start = system.save()
                start_conds = system.start_conditions(t, step)
                i_start = system.hold_start_current(t, step, start)
                limit = system.max_dt(t) if hasattr(system, "max_dt") else math.inf
                if i_start is not None and steps.h_hold is None and hasattr(system, "hold_time_constant"):
                    steps.start_hold(system.hold_time_constant(t, start, i_start))
                h = steps.propose(t, system.controller.next_event_time(t), i_start is not None, limit)
                planned = h
                if _reached_at_start(start_conds):
                    # the last step ended just short of a threshold that its start state has
                    # reached: the crossing is at t, take the shortest located step at once
                    h = min(h, 0.5 * self.tolerance)

                decay = steps.held_shape(i_start) if i_start is not None else None
                held = i_start if decay is None else HeldCurrent(i_start, decay)

                def trial(h_try, t=t, step=step, start=start, held=held):
                    return system.trial(t, h_try, step, start, held)

                first = trial(h)
                while (h_retry := steps.retry(h, first[0], i_start, decay)) is not None:
                    h = planned = h_retry
                    first = trial(h)
                # a threshold inside the step: re-solve it shorter so that it ends at the crossing
                h, result, _ = locate(trial, h, self.tolerance, first=first,
                                      margin_at_start=lambda key: margin_of(start_conds, key, True))
            except self.stop_errors as exc:
                return StepOutcome(StopKind.POWER_LIMIT, f"{exc} at t = {t:g} s", t, step)
            t_start = t
            t += h
            outcome = system.accept(t, h, step, result, t_start)
            if outcome is not None:
                return outcome
            steps.held_accepted(i_start, result.cell_current if i_start is not None else None, h)
            dt = steps.next_dt(h, h < planned, result, system.step_cap(h))
            if self.checkpoint is not None:
                self.checkpoint(t, step, dt)
        return StepOutcome(StopKind.END_TIME, end_reason, t, step)
