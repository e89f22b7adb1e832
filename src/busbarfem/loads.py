"""Electrical load at run time: profiles in time and the step/limit state machine.

:class:`LoadController` turns a validated :class:`~busbarfem.case.loads.Load` into what a
solver needs at each time: the terminal target (current, voltage or power at module
level), the next time a step or profile breakpoint occurs (so a stepper can land on it),
and the decision after each step (step change, CC -> CV switch, stop with a reason).
It is solver-agnostic: the lumped circuit and the 3D FEM drive it the same way::

    ctl = LoadController(load, capacity_Ah=5.0, n_series=4, n_parallel=2)
    while True:
        tgt = ctl.target(t)                       # Target(mode, value, step_index)
        ...solve with tgt, advance to t + dt...
        ev = ctl.update(t, dt, V_mod, I_mod, V_cells, soc_cells, max_temperature=T_max)
        t += dt
        if ev is not None and ev.stop:
            break

Sign convention: positive current and power = discharge. Cell arrays are in
(stage, parallel) order, any shape with n_series * n_parallel entries.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from busbarfem import naming
from busbarfem.case.loads import Load, Step
from busbarfem.events import Condition, EventKind, Landing, first_reached

_EPS_T = 1e-9
_HOLD_VOLTAGE_TOLERANCE = 0.01  # V a cell may drift above the limit during a CV hold


class Profile:
    """A function of time from a ``[[t, value]]`` table.

    ``piecewise_linear``: linear between points; ``cubic_spline``: natural cubic spline
    (zero second derivative at both ends). Constant beyond the table ends.
    """

    def __init__(self, table, interpolation: str = "piecewise_linear"):
        arr = np.asarray(table, dtype=float)
        self.t = arr[:, 0].copy()
        self.y = arr[:, 1].copy()
        self.interpolation = interpolation
        self._m = natural_spline_moments(self.t, self.y) if interpolation == "cubic_spline" else None

    def __call__(self, t):
        """Value at time(s) ``t``."""
        t = np.asarray(t, dtype=float)
        if self._m is None:
            return np.interp(t, self.t, self.y)
        tc = np.clip(t, self.t[0], self.t[-1])
        i = np.clip(np.searchsorted(self.t, tc, side="right") - 1, 0, len(self.t) - 2)
        h = self.t[i + 1] - self.t[i]
        a = (self.t[i + 1] - tc) / h
        b = (tc - self.t[i]) / h
        m0, m1 = self._m[i], self._m[i + 1]
        return (a * self.y[i] + b * self.y[i + 1]
                + ((a**3 - a) * m0 + (b**3 - b) * m1) * h * h / 6.0)

    @property
    def end(self) -> float:
        """Last time of the table [s]."""
        return float(self.t[-1])


def natural_spline_moments(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Second derivatives at the knots of the natural cubic spline through (t, y)."""
    n = len(t)
    m = np.zeros(n)
    if n < 3:
        return m
    h = np.diff(t)
    A = np.zeros((n - 2, n - 2))
    rhs = 6.0 * (np.diff(y[1:]) / h[1:] - np.diff(y[:-1]) / h[:-1])
    idx = np.arange(n - 2)
    A[idx, idx] = 2.0 * (h[:-1] + h[1:])
    A[idx[1:], idx[:-1]] = h[1:-1]
    A[idx[:-1], idx[1:]] = h[1:-1]
    m[1:-1] = np.linalg.solve(A, rhs)
    return m


def power_current(A: float, B: float, power: float) -> float | None:
    """Load current [A] that draws ``power`` [W] from a terminal with ``V = A - B I``.

    The root of ``B I^2 - A I + P = 0`` on the branch through ``I = 0`` (for a source:
    the higher voltage, lower current one), in the cancellation-free form
    ``2 P / (A + sqrt(A^2 - 4 B P))``. None when ``P`` exceeds the maximum ``A^2 / (4 B)``.
    Used by the 3D electrical problem and the lumped circuit alike.
    """
    if power == 0.0:
        return 0.0
    disc = A * A - 4.0 * B * power
    if disc < 0.0:
        return None
    return 2.0 * power / (A + math.sqrt(disc))


@dataclass(frozen=True)
class Target:
    """What the terminals must follow now.

    Attributes:
        mode: ``"current"`` [A], ``"voltage"`` [V] or ``"power"`` [W], module level.
        value: signed target (+ discharge for current and power).
        step_index: 0-based index of the active step.
    """

    mode: str
    value: float
    step_index: int


@dataclass(frozen=True)
class Event:
    """A step end, mode switch or stop.

    Attributes:
        time: when it happened [s].
        reason: human-readable ("minimum cell voltage 3.0 V reached by cell_3_1").
        stop: True if the run must end.
        step_index: the step that ended (0-based).
        next_step_index: the step that starts (None when stopping).
        cell: name of the cell that triggered it, if any.
        kind: the :class:`~busbarfem.events.EventKind` value (``"voltage"``, ``"soc"``,
            ``"duration"``, ...).
        key: which condition (``"step.until_voltage"``, ``"load.minimum_cell_voltage"``...).
    """

    time: float
    reason: str
    stop: bool
    step_index: int
    next_step_index: int | None = None
    cell: str | None = None
    kind: str | None = None
    key: str | None = None

    @property
    def landing(self) -> Landing | None:
        """Scheduled or threshold (None for events restored from old checkpoints)."""
        return EventKind(self.kind).landing if self.kind is not None else None

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)


class LoadController:
    """Step sequence, limits and CC-CV/CP-CV switching for one module.

    Args:
        load: the validated load section.
        capacity_Ah: nominal cell capacity [Ah] (1C module current = capacity * n_parallel).
        n_series: series stages.
        n_parallel: cells in parallel per stage.
    """

    def __init__(self, load: Load, capacity_Ah: float, n_series: int, n_parallel: int):
        self.load = load
        self.steps: list[Step] = load.compiled_steps()
        self.n_series = int(n_series)
        self.n_parallel = int(n_parallel)
        self.one_c = float(capacity_Ah) * self.n_parallel
        self._profiles = [Profile(s.profile, s.profile_interpolation) if s.kind == "profile" else None
                          for s in self.steps]
        self.step_index = 0
        self.step_start = 0.0
        self.finished = False
        self.hold_target: float | None = None
        self.events: list[Event] = []
        self._begin(0, 0.0, module_voltage=None, from_voltage_limit=None)

    # ------------------------------------------------------------------ queries
    @property
    def step(self) -> Step:
        """The active step."""
        return self.steps[self.step_index]

    @property
    def cut_off_current(self) -> float:
        """CV termination current [A] = cut_off_current_percent x 1C (module)."""
        return self.load.cut_off_current_percent * self.one_c

    def target(self, t: float) -> Target:
        """Terminal target at time ``t`` [s] for the active step."""
        s, i = self.step, self.step_index
        if s.kind == "rest":
            return Target("current", 0.0, i)
        if s.kind == "hold":
            return Target("voltage", float(self.hold_target), i)
        if s.kind == "profile":
            value = float(self._profiles[i](t - self.step_start))
            if s.profile_quantity == "c_rate":
                return Target("current", value * self.one_c, i)
            return Target(s.profile_quantity, value, i)
        sign = 1.0 if s.kind == "discharge" else -1.0
        if s.current is not None:
            return Target("current", sign * s.current, i)
        if s.c_rate is not None:
            return Target("current", sign * s.c_rate * self.one_c, i)
        return Target("power", sign * s.power, i)

    def next_event_time(self, t: float) -> float | None:
        """Next time after ``t`` at which the step ends or the profile has a breakpoint."""
        if self.finished:
            return None
        s, times = self.step, []
        if s.duration is not None:
            times.append(self.step_start + s.duration)
        prof = self._profiles[self.step_index]
        if prof is not None:
            times.extend(self.step_start + prof.t)
        later = [x for x in times if x > t + _EPS_T * max(1.0, abs(t))]
        return min(later) if later else None

    # ------------------------------------------------------------------ decisions
    def check(self, t: float, module_voltage: float, module_current: float, cell_voltages,
              cell_socs, max_temperature: float | None = None) -> Event | None:
        """The event the values at time ``t`` would trigger, without changing state."""
        if self.finished:
            return None
        found = first_reached(self.conditions(t, module_current, cell_voltages, cell_socs,
                                              max_temperature))
        return None if found is None else self._event(t, found)

    def conditions(self, t: float, module_current: float, cell_voltages, cell_socs,
                   max_temperature: float | None = None) -> list[Condition]:
        """Every termination condition of the active step and the load limits at time
        ``t``, in priority order, each with its signed margin (see :mod:`busbarfem.events`).
        Empty once the load has finished."""
        if self.finished:
            return []
        return self._conditions(t, module_current, cell_voltages, cell_socs, max_temperature)

    def update(self, t: float, dt: float, module_voltage: float, module_current: float,
               cell_voltages, cell_socs, max_temperature: float | None = None) -> Event | None:
        """Apply stop conditions and switches after a step from ``t`` to ``t + dt``.

        The values are those at ``t + dt``. Returns the event (also kept in ``events``),
        or None if the active step continues.
        """
        t_new = t + dt
        if self.finished:
            return None
        found = first_reached(self.conditions(t_new, module_current, cell_voltages, cell_socs,
                                              max_temperature))
        if found is None:
            return None
        event = self._event(t_new, found)
        self.events.append(event)
        if event.stop:
            self.finished = True
        else:
            self._begin(self.step_index + 1, t_new, module_voltage, found.voltage_value)
        return event

    def _event(self, t: float, found: Condition) -> Event:
        i = self.step_index
        last = i + 1 >= len(self.steps)
        stop = found.stop or last
        reason = found.reason
        if stop and not found.stop:
            reason += "; end of load sequence"
        return Event(time=t, reason=reason, stop=stop, step_index=i,
                     next_step_index=None if stop else i + 1, cell=found.cell,
                     kind=found.kind.value, key=found.key)

    def state_dict(self) -> dict:
        """Restart state (JSON-friendly)."""
        return {"step_index": self.step_index, "step_start": self.step_start,
                "finished": self.finished, "hold_target": self.hold_target,
                "events": [e.to_dict() for e in self.events]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output."""
        self.step_index = int(state["step_index"])
        self.step_start = float(state["step_start"])
        self.finished = bool(state["finished"])
        self.hold_target = state["hold_target"]
        self.events = [Event(**e) for e in state.get("events", [])]

    # ------------------------------------------------------------------ internals
    def _begin(self, index: int, t: float, module_voltage: float | None,
               from_voltage_limit: float | None) -> None:
        self.step_index = index
        self.step_start = t
        s = self.steps[index]
        self.hold_target = None
        if s.kind == "hold":
            if s.voltage_basis == "module":
                self.hold_target = s.voltage
            elif (module_voltage is not None and from_voltage_limit is not None
                  and abs(from_voltage_limit - s.voltage) < 1e-6):
                # Seed's CC -> CV: hold the module at the voltage it had when the limiting
                # cell reached the limit, so no cell is pushed past it.
                self.hold_target = float(module_voltage)
            else:
                self.hold_target = s.voltage * self.n_series

    def _cell_name(self, flat_index: int) -> str:
        s, p = divmod(int(flat_index), self.n_parallel)
        return naming.cell(s + 1, p + 1)

    def _limit_note(self, field: str) -> str:
        """Why a load limit applied when the case did not set it."""
        if field in self.load.model_fields_set:
            return ""
        return (f": the default {field} limit (AcuSolve BATTERY_MODULE's default); "
                f"set load.{field} to change it")

    def _conditions(self, t, module_current, cell_voltages, cell_socs, max_temperature):
        """All active conditions in priority order (step conditions first, so a step's own
        "until" wins over a load limit reached in the same step)."""
        s = self.step
        v = np.asarray(cell_voltages, dtype=float).ravel()
        soc = np.asarray(cell_socs, dtype=float).ravel()
        i_mod = float(module_current)
        elapsed = t - self.step_start
        n = self.step_index + 1
        label = f"step {n} ({s.description or s.to_string()})"
        small = 1e-9 * max(1.0, self.one_c)
        discharging = s.kind == "discharge" or (s.kind not in ("charge",) and i_mod > small)
        charging = s.kind == "charge" or (s.kind not in ("discharge",) and i_mod < -small)
        i_lo, i_hi = int(np.argmin(v)), int(np.argmax(v))
        s_lo, s_hi = int(np.argmin(soc)), int(np.argmax(soc))
        out: list[Condition] = []

        def add(kind, key, margin, reason, stop=False, cell=None, voltage_value=None, reached=None,
                decay_limit=None):
            out.append(Condition(kind=kind, key=key, margin=float(margin),
                                 reached=bool(margin >= 0.0 if reached is None else reached),
                                 reason=reason, stop=stop, cell=cell, voltage_value=voltage_value,
                                 decay_limit=decay_limit))

        V, C, SOC, TEMP = EventKind.VOLTAGE, EventKind.CURRENT, EventKind.SOC, EventKind.TEMPERATURE
        if s.until_voltage is not None:
            if discharging:
                c = self._cell_name(i_lo)
                add(V, "step.until_voltage", s.until_voltage - v[i_lo],
                    f"{label}: cell voltage {s.until_voltage:g} V reached by {c}", cell=c,
                    voltage_value=s.until_voltage)
            elif charging:
                c = self._cell_name(i_hi)
                add(V, "step.until_voltage", v[i_hi] - s.until_voltage,
                    f"{label}: cell voltage {s.until_voltage:g} V reached by {c}", cell=c,
                    voltage_value=s.until_voltage)
        cut = None
        if s.until_current is not None:
            cut = s.until_current
        if s.until_c_rate is not None:
            cut = max(cut or 0.0, s.until_c_rate * self.one_c)
        if cut is not None:
            what = "cut-off current reached" if s.kind == "hold" else "current limit reached"
            margin = cut - abs(i_mod)
            add(C, "step.until_current", margin,
                f"{label}: {what} (|I| = {abs(i_mod):.4g} A <= {cut:.4g} A)",
                reached=elapsed > 0 and margin >= 0.0, decay_limit=cut if s.kind == "hold" else None)
        if s.until_soc is not None:
            if discharging:
                c = self._cell_name(s_lo)
                add(SOC, "step.until_soc", s.until_soc - soc[s_lo],
                    f"{label}: SOC {s.until_soc:g} reached by {c}", cell=c)
            elif charging:
                c = self._cell_name(s_hi)
                add(SOC, "step.until_soc", soc[s_hi] - s.until_soc,
                    f"{label}: SOC {s.until_soc:g} reached by {c}", cell=c)
        if s.until_temperature is not None and max_temperature is not None:
            add(TEMP, "step.until_temperature", max_temperature - s.until_temperature,
                f"{label}: temperature {s.until_temperature:g} K reached")
        if s.duration is not None:
            add(EventKind.DURATION, "step.duration",
                elapsed - s.duration + _EPS_T * max(1.0, s.duration),
                f"{label}: duration {s.duration:g} s elapsed")
        prof = self._profiles[self.step_index]
        if prof is not None:
            add(EventKind.PROFILE_END, "step.profile_end",
                elapsed - prof.end + _EPS_T * max(1.0, prof.end),
                f"{label}: end of profile at {prof.end:g} s")

        # Module limits stop the run.
        L = self.load
        if i_mod > small:
            c = self._cell_name(i_lo)
            add(V, "load.minimum_cell_voltage", L.minimum_cell_voltage - v[i_lo],
                f"minimum cell voltage {L.minimum_cell_voltage:g} V reached by {c}"
                + self._limit_note("minimum_cell_voltage"), stop=True, cell=c)
            c = self._cell_name(s_lo)
            add(SOC, "load.minimum_cell_state_of_charge",
                L.minimum_cell_state_of_charge - soc[s_lo],
                f"minimum cell state of charge {L.minimum_cell_state_of_charge:g} reached by {c}"
                + self._limit_note("minimum_cell_state_of_charge"), stop=True, cell=c)
        if i_mod < -small:
            tol = _HOLD_VOLTAGE_TOLERANCE if s.kind == "hold" else 0.0
            c = self._cell_name(i_hi)
            add(V, "load.maximum_cell_voltage", v[i_hi] - L.maximum_cell_voltage - tol,
                f"maximum cell voltage {L.maximum_cell_voltage:g} V reached by {c}"
                + self._limit_note("maximum_cell_voltage"), stop=True, cell=c)
            c = self._cell_name(s_hi)
            add(SOC, "load.maximum_cell_state_of_charge",
                soc[s_hi] - L.maximum_cell_state_of_charge,
                f"maximum cell state of charge {L.maximum_cell_state_of_charge:g} reached by {c}"
                + self._limit_note("maximum_cell_state_of_charge"), stop=True, cell=c)
        if L.maximum_cell_temperature is not None and max_temperature is not None:
            add(TEMP, "load.maximum_cell_temperature", max_temperature - L.maximum_cell_temperature,
                f"maximum temperature {L.maximum_cell_temperature:g} K reached", stop=True)
        return out
