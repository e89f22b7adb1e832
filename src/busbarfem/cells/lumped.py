"""Lumped nSmP module circuit: the ``--lumped`` fast path and the 3D model's oracle.

Topology (AcuSolve BATTERY_MODULE's parallel connected units, PCU): the n_s series stages are split
into ``pcu`` blocks of m = n_s / pcu consecutive stages. Inside a block, the p parallel
cells of each stage belong to p strings of m series cells that are joined only at the
block ends; the blocks are in series. ``pcu = n_s`` is the ordinary fully
cross-connected module; ``pcu = 1`` is p independent strings joined at the terminals.

Per block K with strings j (EMF V_j = sum of cell EMFs, resistance R_j = sum of
R0 + interconnect resistance), for module current I (AcuSolve BATTERY_MODULE's formulas):

    V_K = (sum_j V_j/R_j - I) / (sum_j 1/R_j),     I_j = (V_j - V_K) / R_j

so the module voltage is affine in I: V = A - B I. Voltage control solves for I,
power control solves B I^2 - A I + P = 0 on the branch through I = 0.

Time stepping (operator splitting, as the 3D coupling): with the cell states at t_n,
solve the circuit for the target at t_n + dt/2, advance SOC and RC voltages exactly for
that constant current (in a held-voltage step: for the current linear in time between
the start and end of the step, with the step size controlled by the current change),
and the optional lumped thermal model ``m cp dT/dt = q - h A (T - T_amb)`` exactly for
that heat. Steps land on step ends and profile breakpoints; threshold events (voltage,
SOC, cut-off current, temperature) are located by root finding on the step to
``event_tolerance`` (:mod:`busbarfem.events`, shared with the 3D loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from busbarfem import naming
from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.cells.ecm import CellParameters, ECMState, advance, mean_current, step_source
from busbarfem.coupling.records import cell_columns
from busbarfem.coupling.stepper import StepOutcome, StepSizeController, TransientStepper, TrialResult
from busbarfem.events import VARYING_CURRENT_MODES, HoldCurrentControl, StopKind, hold_decay_time
from busbarfem.loads import Event, LoadController, Target, power_current


class PowerLimitError(ValueError):
    """The requested module power exceeds the maximum the circuit can deliver."""


@dataclass
class CircuitSolution:
    """Module and cell electrical state for one solve.

    Attributes:
        module_current: [A]; module_voltage: [V]; cell_current, cell_voltage: (n_s, n_p).
    """

    module_current: float
    module_voltage: float
    cell_current: np.ndarray
    cell_voltage: np.ndarray


class ModuleCircuit:
    """The nSmP circuit with PCU blocks (see the module docstring).

    Args:
        n_series: series stages n_s.
        n_parallel: parallel cells per stage p.
        pcu: parallel connected units (divides n_s); default n_s (fully cross-connected).
        interconnect_resistance: extra series resistance per cell [ohm] (scalar or (n_s, n_p)).
    """

    def __init__(self, n_series: int, n_parallel: int, pcu: int | None = None,
                 interconnect_resistance=0.0):
        self.n_series, self.n_parallel = int(n_series), int(n_parallel)
        self.pcu = self.n_series if pcu is None else int(pcu)
        if self.pcu < 1 or self.n_series % self.pcu:
            raise ValueError(f"parallel_connected_units must divide n_series={self.n_series}; "
                             f"valid: {[d for d in range(1, self.n_series + 1) if self.n_series % d == 0]}")
        self.stages_per_block = self.n_series // self.pcu
        self.r_int = np.broadcast_to(np.asarray(interconnect_resistance, dtype=float),
                                     (self.n_series, self.n_parallel))

    def _blocks(self, E, R0):
        m, p = self.stages_per_block, self.n_parallel
        V = E.reshape(self.pcu, m, p).sum(axis=1)  # string EMFs (K, p)
        R = (R0 + self.r_int).reshape(self.pcu, m, p).sum(axis=1)  # string resistances
        G = (1.0 / R).sum(axis=1)  # (K,)
        a = (V / R).sum(axis=1) / G
        return V, R, G, a

    def affine(self, E, R0) -> tuple[float, float]:
        """(A, B) with module voltage V = A - B I."""
        _, _, G, a = self._blocks(E, R0)
        return float(a.sum()), float((1.0 / G).sum())

    def solve(self, E, R0, target: Target) -> CircuitSolution:
        """Cell and module currents/voltages for a terminal target.

        Args:
            E: cell EMFs (n_s, n_p) [V].
            R0: cell series resistances (n_s, n_p) [ohm].
            target: current [A], voltage [V] or power [W] at module level.

        Raises:
            PowerLimitError: power above A^2 / (4 B).
        """
        E = np.asarray(E, dtype=float).reshape(self.n_series, self.n_parallel)
        R0 = np.asarray(R0, dtype=float).reshape(self.n_series, self.n_parallel)
        V, R, G, a = self._blocks(E, R0)
        A, B = float(a.sum()), float((1.0 / G).sum())
        if target.mode == "current":
            current = target.value
        elif target.mode == "voltage":
            current = (A - target.value) / B
        elif target.mode == "power":
            current = power_current(A, B, target.value)
            if current is None:
                raise PowerLimitError(f"requested power {target.value:g} W exceeds the maximum "
                                      f"deliverable {A * A / (4.0 * B):.4g} W")
        else:
            raise ValueError(f"unknown target mode {target.mode!r}")
        v_block = a - current / G  # (K,)
        i_string = (V - v_block[:, None]) / R  # (K, p)
        cell_i = np.repeat(i_string, self.stages_per_block, axis=0)  # (n_s, p)
        return CircuitSolution(module_current=float(current),
                               module_voltage=float(v_block.sum()),
                               cell_current=cell_i, cell_voltage=E - R0 * cell_i)


@dataclass
class LumpedThermal:
    """Per-cell lumped thermal model ``m cp dT/dt = q - h A (T - T_amb)``.

    Attributes:
        h: heat transfer coefficient [W/m^2/K].
        T_ambient: ambient temperature [K].
        T_initial: initial cell temperature [K] (default T_ambient).
        area: cooled area per cell [m^2] (default cell.surface_area).
        volume: cell volume [m^3] (default cell.volume); mass = rho * volume.
    """

    h: float = 10.0
    T_ambient: float = 298.15
    T_initial: float | None = None
    area: float | None = None
    volume: float | None = None


@dataclass
class LumpedResult:
    """Time series of a lumped run; cell arrays are (n_t, n_s, n_p).

    Attributes:
        time [s], module_voltage [V], module_current [A], module_power [W], step_index,
        cell_current [A], cell_voltage [V], cell_soc [-], cell_temperature [K],
        cell_heat, cell_heat_irreversible, cell_heat_reversible [W per cell],
        stop_reason, events, n_series, n_parallel, pcu.
    """

    time: np.ndarray
    module_voltage: np.ndarray
    module_current: np.ndarray
    module_power: np.ndarray
    step_index: np.ndarray
    cell_current: np.ndarray
    cell_voltage: np.ndarray
    cell_soc: np.ndarray
    cell_temperature: np.ndarray
    cell_heat: np.ndarray
    cell_heat_irreversible: np.ndarray
    cell_heat_reversible: np.ndarray
    stop_reason: str
    n_series: int
    n_parallel: int
    pcu: int
    events: list[Event] = field(default_factory=list)

    @property
    def discharged_Ah(self) -> float:
        """Net charge delivered by the module terminals [Ah]: each row holds the current of
        the step that ends there."""
        return float(np.sum(np.diff(self.time) * self.module_current[1:]) / 3600.0)

    def columns(self) -> dict[str, np.ndarray]:
        """Flat ``{"name [unit]": series}`` table in the column layout of a 3D run's
        ``timeseries.csv`` (module V/I/P, then per cell I, V, SOC, T, q_irr, q_rev)."""
        cols = {"time [s]": self.time, "voltage [V]": self.module_voltage,
                "current [A]": self.module_current, "power [W]": self.module_power}
        for s in range(self.n_series):
            for p in range(self.n_parallel):
                cols.update(cell_columns(naming.cell(s + 1, p + 1), self.cell_current[:, s, p],
                                         self.cell_voltage[:, s, p], self.cell_soc[:, s, p],
                                         self.cell_temperature[:, s, p], self.cell_heat_irreversible[:, s, p],
                                         self.cell_heat_reversible[:, s, p]))
        return cols


class LumpedSystem:
    """The lumped circuit as a :class:`~busbarfem.coupling.stepper.SteppedSystem`.

    Per step (operator splitting, as the 3D model): the circuit is solved for the target
    at mid-step with the RC pairs integrated exactly over the step, the ECM states
    advance with that current, and the lumped thermal model ``m cp dT/dt = q - h A (T - T_amb)``
    exactly for that heat. A trial does not change the system: :meth:`accept` commits it.

    Args:
        params: cell parameters; circuit: the module circuit; controller: the load controller.
        thermal: ``(T_ambient, heat capacity [J/K], h A [W/K])`` per cell, or None (isothermal).
        shape: ``(n_series, n_parallel)``.
    """

    def __init__(self, params: CellParameters, circuit: ModuleCircuit, controller: LoadController, thermal,
                 shape: tuple[int, int]):
        self.params, self.circuit, self.controller = params, circuit, controller
        self.thermal, self.shape = thermal, shape
        self.rec: dict[str, list] = {k: [] for k in ("t", "V", "I", "k", "ci", "cv", "soc", "T", "qi", "qr")}
        self.state: ECMState | None = None
        self.T: np.ndarray | None = None
        self._start = None

    def electrical(self, st: ECMState, temp: np.ndarray, target: Target, h: float = 0.0, i_start=None):
        """End-of-step circuit (RC pairs integrated exactly over ``h``, stable for any ``h``)
        and the cells' irreversible and reversible heat."""
        E, R, R_ocv = step_source(self.params, st, temp, h, i_start)
        sol = self.circuit.solve(E, R, target)
        i = sol.cell_current.ravel()
        # OCV at the end of the step
        ocv = self.params.ocv(st.soc, temp) - R_ocv * mean_current(i, i_start, h)
        q_irr = i * (ocv - sol.cell_voltage.ravel())
        q_rev = -i * temp * self.params.dUdT(st.soc)
        return sol, q_irr, q_rev

    def _record(self, t, sol, q_irr, q_rev, st, temp) -> None:
        rec, shape = self.rec, self.shape
        rec["t"].append(t)
        rec["V"].append(sol.module_voltage)
        rec["I"].append(sol.module_current)
        rec["k"].append(self.controller.step_index)
        rec["ci"].append(sol.cell_current.copy())
        rec["cv"].append(sol.cell_voltage.copy())
        rec["soc"].append(st.soc.reshape(shape).copy())
        rec["T"].append(temp.reshape(shape).copy())
        rec["qi"].append(q_irr.reshape(shape).copy())
        rec["qr"].append(q_rev.reshape(shape).copy())

    def begin(self, state: ECMState, T: np.ndarray) -> StepOutcome | None:
        """The initial state and its record (an outcome if the load cannot even start)."""
        self.state, self.T = state, T
        try:
            snap = self.electrical(state, T, self.controller.target(0.0))
        except PowerLimitError as exc:
            return StepOutcome(StopKind.POWER_LIMIT, str(exc), 0.0, 0)
        self._record(0.0, *snap, state, T)
        return None

    # ------------------------------------------------------------------ SteppedSystem
    def save(self):
        """The (immutable) state at the start of the step."""
        return self.state, self.T

    def start_conditions(self, t: float, step: int) -> list:
        """The state just after ``t`` under the active target (the current jumps when a
        step begins): the margins at the start of the step."""
        st, temp = self.state, self.T
        self._start, *self._start_heat = self.electrical(st, temp, self.controller.target(t))
        return self.controller.conditions(t, self._start.module_current, self._start.cell_voltage, st.soc,
                                          float(temp.max()))

    def hold_start_current(self, t: float, step: int, start):
        """In a held-voltage step: the start current of the linear-current update."""
        if self.controller.target(t).mode in VARYING_CURRENT_MODES:
            return self._start.cell_current.ravel()
        return None

    def hold_time_constant(self, t: float, start, i_start) -> float | None:
        """Decay time of the cell currents at the start of a hold (:func:`busbarfem.events.hold_decay_time`)."""
        st, temp = start
        return hold_decay_time(self.params, st, temp, i_start)

    def trial(self, t: float, h: float, step: int, start, i_start):
        """The step from ``start`` over ``h`` (pure: nothing is committed)."""
        st, temp = start
        temp_e = temp
        if self.thermal is not None:
            # the cells at the end-of-step temperature the start heat predicts (the end-of-step
            # voltage is read at that temperature; frozen at the start it lags one step: 300 s
            # CC steps at 0.5C put the lumped 8s6p CC->CV switch 2.9 s early, 0.9 s with it)
            temp_e = self._warm(temp, self._start_heat[0] + self._start_heat[1], h)
        snap = self.electrical(st, temp_e, self.controller.target(t + 0.5 * h), h, i_start)
        sol, q_irr, q_rev = snap
        new = advance(self.params, st, sol.cell_current.ravel(), h, temp_e, i_start)
        if self.thermal is None:
            new_T = temp
        elif i_start is None:
            new_T = self._warm(temp, q_irr + q_rev, h)
        else:
            # the held current's heat changes over the step: its trapezoid mean
            new_T = self._warm(temp, 0.5 * (q_irr + q_rev + self._start_heat[0] + self._start_heat[1]), h)
        conds = self.controller.conditions(t + h, sol.module_current, sol.cell_voltage, new.soc,
                                           float(new_T.max()))
        return TrialResult((new, new_T, snap), float(np.max(np.abs(new_T - temp))), sol.cell_current.ravel()), conds

    def _warm(self, temp, q, h: float):
        """Cell temperatures after ``h`` at the heat ``q`` [W] (exact for constant heat)."""
        T_amb, heat_capacity, hA = self.thermal
        if hA > 0.0:
            T_inf = T_amb + q / hA
            return T_inf + (temp - T_inf) * np.exp(-h * hA / heat_capacity)
        return temp + q * h / heat_capacity

    def accept(self, t: float, h: float, step: int, result: TrialResult, t_start: float) -> StepOutcome | None:
        """Commit the step, let the load controller react, record the end of the step."""
        self.state, self.T, snap = result.payload
        sol = snap[0]
        ev = self.controller.update(t_start, h, sol.module_voltage, sol.module_current, sol.cell_voltage,
                                    self.state.soc, float(self.T.max()))
        self._record(t, *snap, self.state, self.T)
        if ev is not None and ev.stop:
            return StepOutcome(StopKind.LOAD, ev.reason, t, step)
        return None

    def step_cap(self, h: float) -> float | None:
        """The lumped run steps at a fixed ``dt`` (no growth)."""
        return None


def run_lumped(cell: CellModel, load: Load, n_series: int, n_parallel: int, pcu: int | None = None,
               t_end: float = 48 * 3600.0, dt: float = 10.0, thermal: LumpedThermal | None = None,
               interconnect_resistance=0.0, capacity_factors=None, R0_factors=None,
               initial_soc=None, event_tolerance: float = 0.01) -> LumpedResult:
    """Run the lumped module model until the load stops or ``t_end``.

    Args:
        cell: cell section; load: load section.
        n_series, n_parallel: module size; pcu: parallel connected units (default n_s).
        t_end: final time [s]; dt: maximum time step [s].
        thermal: lumped thermal model (None: isothermal at cell.T_ref).
        interconnect_resistance: per-cell series resistance outside the cell [ohm].
        capacity_factors, R0_factors: per-cell factors overriding ``cell.variation``.
        initial_soc: scalar or per-cell initial SOC (default ``cell.initial_soc``).
        event_tolerance: time resolution of located threshold events [s].
    """
    n_cells = n_series * n_parallel
    params = CellParameters(cell, n_cells, capacity_factors, R0_factors)
    circuit = ModuleCircuit(n_series, n_parallel, pcu, interconnect_resistance)
    ctl = LoadController(load, cell.capacity, n_series, n_parallel)
    state = ECMState.initial(params, initial_soc)
    shape = (n_series, n_parallel)

    if thermal is not None:
        area = thermal.area or cell.surface_area
        volume = thermal.volume or cell.volume
        if area is None or volume is None:
            raise ValueError("lumped thermal model needs the cell surface_area and volume "
                             "(in the cell section or in LumpedThermal)")
        # heat capacity [J/K] and h A [W/K] per cell
        thermal_model = (thermal.T_ambient, cell.rho * volume * cell.cp, thermal.h * area)
        T = np.full(n_cells, thermal.T_initial if thermal.T_initial is not None else thermal.T_ambient)
    else:
        thermal_model = None
        T = np.full(n_cells, cell.T_ref)

    system = LumpedSystem(params, circuit, ctl, thermal_model, shape)
    hold = HoldCurrentControl(current_floor=0.01 * cell.capacity)
    steps = StepSizeController(dt, t_end, dt_min=1e-3, adaptive=False, hold=hold)
    outcome = system.begin(state, T)
    if outcome is None:
        outcome = TransientStepper(system, steps, event_tolerance, stop_errors=(PowerLimitError,)).run(
            end_reason=f"end time {t_end:g} s reached")
    stop_reason = outcome.reason
    rec = system.rec
    arr = {k: np.asarray(v) for k, v in rec.items()}
    qi, qr = arr["qi"], arr["qr"]
    return LumpedResult(
        time=arr["t"], module_voltage=arr["V"], module_current=arr["I"],
        module_power=arr["V"] * arr["I"], step_index=arr["k"], cell_current=arr["ci"],
        cell_voltage=arr["cv"], cell_soc=arr["soc"], cell_temperature=arr["T"],
        cell_heat=qi + qr, cell_heat_irreversible=qi, cell_heat_reversible=qr,
        stop_reason=stop_reason, n_series=n_series, n_parallel=n_parallel, pcu=circuit.pcu,
        events=list(ctl.events))
