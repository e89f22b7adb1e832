r"""Lumped thermal-abuse drivers: single cells, N-cell thermal networks, short circuits.

Each cell c is one lumped body (volume V_c, mass m_c, cp_c, area A_c) carrying the abuse
kinetics of :mod:`busbarfem.cells.abuse` per unit volume::

    m_c cp_c dT_c/dt = V_c q_c(T_c, y_c) + P_heater,c(t) + P_short,c(t)
                       + h(t) A_c (T_amb(t) - T_c) + eps sigma A_c (T_amb(t)^4 - T_c^4)
                       + sum_j G_cj (T_j - T_c)

The reactions, the cell's own losses and its heater/short heat are integrated together by the
stiff integrator inside each outer step; the conduction to the other cells is evaluated with all
temperatures at the step start (explicit, so the exchanged heat cancels exactly between cells),
and the outer step is limited to half the conduction time constant ``m cp / sum_j G``.

Outputs per cell: onset time (heating rate above ``OnsetCriteria.rate``, default 1 K/s), the
time above a temperature threshold, peak temperature, heat released by each reaction [J];
for a row, the propagation order and speed (cells per minute).

Shorts (:func:`run_short`): an external resistance across the cell terminals or an internal
short resistance between the cell's two potentials, switched on at a time or at a
separator-failure temperature; the current follows the lumped ECM of
:mod:`busbarfem.cells.ecm` (``I = E_eff / (R_eff + R_short)`` per step), its Joule heat (and
for an internal short the short's heat) heats the cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from busbarfem.cells import ecm
from busbarfem.cells.abuse import SIGMA_SB, AbuseContribution, Kinetics, OneEquation, OnsetCriteria

Profile = Callable[[np.ndarray], np.ndarray]


def profile(value) -> Profile:
    """A time profile from a number (constant) or a table ``[[t, value], ...]`` (linear)."""
    if callable(value):
        return value
    if isinstance(value, (int, float)):
        v = float(value)
        return lambda t: np.full(np.shape(t), v)
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or np.any(np.diff(arr[:, 0]) <= 0):
        raise ValueError("a profile table must be rows [time, value] with increasing time")
    return lambda t: np.interp(t, arr[:, 0], arr[:, 1])


@dataclass
class LumpedCells:
    """Thermal data of N lumped cells (arrays of length N, or scalars for all).

    Attributes:
        volume: [m^3]; mass [kg]; cp [J/kg/K]; area: cooled surface [m^2].
        h: heat transfer coefficient [W/m^2/K]: number, table [[t, h], ...] or callable.
        T_amb: ambient temperature [K]: number, table or callable (an oven profile).
        emissivity: grey-body emissivity of the surface (0: no radiation).
        conductance: (N, N) symmetric cell-to-cell conductances [W/K] (None: isolated).
    """

    volume: np.ndarray
    mass: np.ndarray
    cp: np.ndarray
    area: np.ndarray
    h: object = 0.0
    T_amb: object = 298.15
    emissivity: object = 0.0
    conductance: np.ndarray | None = None
    n: int = field(init=False)

    def __post_init__(self):
        n = max(np.size(self.volume), np.size(self.mass), np.size(self.area), np.size(self.cp),
                0 if self.conductance is None else np.shape(self.conductance)[0])
        self.n = int(n)
        for name in ("volume", "mass", "cp", "area", "emissivity"):
            arr = np.broadcast_to(np.asarray(getattr(self, name), dtype=float), (self.n,)).copy()
            if name != "emissivity" and np.any(arr <= 0):
                raise ValueError(f"lumped cells: {name} must be > 0")
            setattr(self, name, arr)
        if self.conductance is None:
            self.conductance = np.zeros((self.n, self.n))
        G = np.asarray(self.conductance, dtype=float)
        if G.shape != (self.n, self.n) or not np.allclose(G, G.T) or np.any(G < 0):
            raise ValueError("lumped cells: conductance must be a symmetric (N, N) matrix of values >= 0")
        self.conductance = G - np.diag(np.diag(G))
        self._h = profile(self.h)
        self._T_amb = profile(self.T_amb)

    @classmethod
    def cylinders(cls, n: int, diameter: float, height: float, rho: float, cp: float, **kwargs) -> LumpedCells:
        """N equal cylindrical cells (surface: mantle + both ends)."""
        V = np.pi * diameter**2 / 4 * height
        A = np.pi * diameter * height + 2 * np.pi * diameter**2 / 4
        return cls(volume=np.full(n, V), mass=np.full(n, rho * V), cp=np.full(n, cp), area=np.full(n, A), **kwargs)

    @property
    def rho_cp(self) -> np.ndarray:
        """Volumetric heat capacity ``m cp / V`` [J/m^3/K]."""
        return self.mass * self.cp / self.volume

    def ambient_loss(self, t, T, idx) -> np.ndarray:
        """Heat from the ambient into the cells ``idx`` [W] (negative when cooling)."""
        t = np.asarray(t, dtype=float)
        Ta = self._T_amb(t)
        return (self._h(t) * self.area[idx] * (Ta - T)
                + self.emissivity[idx] * SIGMA_SB * self.area[idx] * (Ta**4 - T**4))

    def ambient_temperature(self, t: float) -> float:
        """T_amb(t) [K]."""
        return float(self._T_amb(np.asarray(t, dtype=float)))


@dataclass
class Heater:
    """A heater on one cell: ``power`` [W] from ``start`` until the cell reaches
    ``until_temperature`` [K] or for ``duration`` [s] (the first that ends it)."""

    cell: int
    power: float
    start: float = 0.0
    until_temperature: float | None = None
    duration: float | None = None

    def __post_init__(self):
        if self.until_temperature is None and self.duration is None:
            raise ValueError("heater: give until_temperature or duration")


@dataclass
class StopConditions:
    """When :func:`run_lumped` ends (besides ``t_end``).

    Attributes:
        halt_rate: reaction heating rate [K/s] below which a cell counts as quiet.
        halt_time: stop when every cell has been quiet this long after the last onset
            ("propagation halted"), or all cells had their onset and are quiet ("all consumed").
        all_onset: also stop right after every cell has had its onset.
    """

    halt_rate: float = 0.01
    halt_time: float = 600.0
    all_onset: bool = False


@dataclass
class LumpedResult:
    """History and per-cell results of :func:`run_lumped`.

    Attributes:
        times (nt,), T (nt, N) [K]: the history at the accepted outer steps.
        onset_time, threshold_time, peak_temperature (N,).
        released (N, n_reactions) [J]; reactions: their names.
        heater_energy, ambient_energy (N,) [J] (ambient: heat from the ambient, negative = lost).
        conduction_energy (N,) [J] into each cell from the others.
        stop_reason: "time", "halted", "all consumed" or "all onset".
    """

    times: np.ndarray
    T: np.ndarray
    onset_time: np.ndarray
    threshold_time: np.ndarray
    peak_temperature: np.ndarray
    released: np.ndarray
    reactions: tuple[str, ...]
    heater_energy: np.ndarray
    ambient_energy: np.ndarray
    conduction_energy: np.ndarray
    stop_reason: str

    @property
    def propagation_order(self) -> list[int]:
        """Cells with an onset, in onset order."""
        ok = np.nonzero(np.isfinite(self.onset_time))[0]
        return [int(i) for i in ok[np.argsort(self.onset_time[ok])]]

    @property
    def propagation_speed(self) -> float:
        """Cells per minute between the first and the last onset (NaN with < 2 onsets)."""
        order = self.propagation_order
        if len(order) < 2:
            return float("nan")
        span = self.onset_time[order[-1]] - self.onset_time[order[0]]
        return (len(order) - 1) / (span / 60.0)


def run_lumped(kinetics: Kinetics, cells: LumpedCells, t_end: float, T0=None, heaters=(),
               onset: OnsetCriteria | None = None, stop: StopConditions | None = None,
               dt_max: float = 5.0, dt_min: float = 1e-3, max_temperature_change: float = 1.0,
               rtol: float = 1e-5) -> LumpedResult:
    """Run the lumped abuse model of N cells from 0 to ``t_end`` (or a stop condition).

    Args:
        kinetics: abuse kinetics (per unit cell volume).
        cells: thermal data.
        t_end: end time [s].
        T0: initial temperatures [K] (default: the ambient at t = 0).
        heaters: :class:`Heater` triggers.
        onset: onset criteria (default dT/dt > 1 K/s).
        stop: stop conditions.
        dt_max, dt_min: outer step bounds [s]; max_temperature_change: outer step target [K].
        rtol: tolerance of the stiff integrator inside each step.
    """
    onset = onset or OnsetCriteria()
    stop = stop or StopConditions()
    n = cells.n
    T = np.broadcast_to(np.asarray(cells.ambient_temperature(0.0) if T0 is None else T0, dtype=float),
                        (n,)).copy()
    contrib = AbuseContribution(kinetics, n, cells.rho_cp, onset=onset, rtol=rtol)
    G = cells.conductance
    g_sum = G.sum(axis=1)
    dt_cond = 0.5 * np.min(np.where(g_sum > 0, cells.mass * cells.cp / np.where(g_sum > 0, g_sum, 1.0), np.inf))
    heaters = list(heaters)
    heater_done = [False] * len(heaters)
    heater_energy = np.zeros(n)
    ambient_energy = np.zeros(n)
    conduction_energy = np.zeros(n)
    times, hist = [0.0], [T.copy()]
    peak = T.copy()
    t = 0.0
    dt = min(dt_max, 1.0)
    quiet_since = None
    reason = "time"
    last_rate = np.zeros(n)
    while t < t_end - 1e-9:
        dt = float(min(dt, dt_max, dt_cond, t_end - t))
        # heater power held over the step; a duration end is landed on exactly
        P = np.zeros(n)
        for k, hs in enumerate(heaters):
            if heater_done[k] or t < hs.start - 1e-12:
                if not heater_done[k] and hs.start > t:
                    dt = min(dt, hs.start - t)
                continue
            if hs.duration is not None:
                left = hs.start + hs.duration - t
                if left <= 1e-12:
                    heater_done[k] = True
                    continue
                dt = min(dt, left)
            if hs.until_temperature is not None and last_rate[hs.cell] > 0:
                # land near the switch-off temperature instead of overshooting by a step
                to_go = (hs.until_temperature - T[hs.cell]) / last_rate[hs.cell]
                dt = min(dt, max(to_go, dt_min)) if to_go > 0 else dt
            P[hs.cell] += hs.power
        q_cond = G @ T - g_sum * T  # [W] into each cell, temperatures at the step start
        V = cells.volume
        fixed = (P + q_cond) / V

        def source(ts, TT, idx, fixed=fixed):
            return fixed[idx] + cells.ambient_loss(ts, TT, idx) / V[idx]

        _, res, _ = contrib.advance(dt, T, source=source, frozen=False)
        T_new = res.T
        ext = res.external * V  # heater + conduction + ambient [J]
        heater_energy += P * dt
        conduction_energy += q_cond * dt
        ambient_energy += ext - P * dt - q_cond * dt
        t += dt
        T = T_new
        peak = np.maximum(peak, T)
        times.append(t)
        hist.append(T.copy())
        for k, hs in enumerate(heaters):
            if not heater_done[k] and hs.until_temperature is not None and T[hs.cell] >= hs.until_temperature:
                heater_done[k] = True
        # next outer step from the fastest temperature change (incl. heaters and losses)
        last_rate = res.heating_rate
        rate = float(np.max(np.abs(res.heating_rate)))
        dt = dt_max if rate <= 0 else float(np.clip(max_temperature_change / rate, dt_min, dt_max))
        dt = min(dt, max(2.0 * (times[-1] - times[-2]), dt_min))  # grow at most 2x per step
        # stop conditions
        quiet = bool(np.all(res.reaction_heating_rate < stop.halt_rate))
        onsets = np.isfinite(contrib.onset_time)
        if stop.all_onset and np.all(onsets):
            reason = "all onset"
            break
        if np.any(onsets) and quiet:
            quiet_since = t if quiet_since is None else quiet_since
            if t - quiet_since >= stop.halt_time:
                reason = "all consumed" if np.all(onsets) else "halted"
                break
        else:
            quiet_since = None
    return LumpedResult(times=np.asarray(times), T=np.asarray(hist), onset_time=contrib.onset_time.copy(),
                        threshold_time=contrib.threshold_time.copy(), peak_temperature=peak,
                        released=contrib.released_total * cells.volume[:, None], reactions=kinetics.reactions,
                        heater_energy=heater_energy, ambient_energy=ambient_energy,
                        conduction_energy=conduction_energy, stop_reason=reason)


def row_conductance(n: int, gap_conductance: float) -> np.ndarray:
    """(N, N) conductances of a row of N cells, ``gap_conductance`` [W/K] between neighbours."""
    G = np.zeros((n, n))
    i = np.arange(n - 1)
    G[i, i + 1] = G[i + 1, i] = float(gap_conductance)
    return G


# ====================================================================== short circuits

@dataclass
class ShortCircuit:
    """A short on one lumped cell.

    Attributes:
        kind: ``"external"`` (a resistance across the terminals; its heat leaves the cell) or
            ``"internal"`` (a resistance between the cell's two potentials inside the cell;
            all heat stays in the cell).
        resistance: [ohm].
        at_time: switched on at this time [s] (None: not by time).
        at_temperature: switched on when the cell reaches this temperature [K] (separator
            failure); None: not by temperature. With neither, on from t = 0.
    """

    kind: str
    resistance: float
    at_time: float | None = None
    at_temperature: float | None = None

    def __post_init__(self):
        if self.kind not in ("external", "internal"):
            raise ValueError(f"short kind must be 'external' or 'internal', got {self.kind!r}")
        if not self.resistance > 0:
            raise ValueError("short resistance must be > 0 [ohm]")

    def active(self, t: float, T: float) -> bool:
        """Is the short closed at time ``t`` and cell temperature ``T``?"""
        if self.at_time is None and self.at_temperature is None:
            return True
        return bool((self.at_time is not None and t >= self.at_time - 1e-12)
                    or (self.at_temperature is not None and T >= self.at_temperature))


@dataclass
class ShortResult:
    """History and energy books of :func:`run_short` (one cell).

    Attributes:
        times, current [A], voltage (terminal) [V], T [K], soc: histories (the current and
            voltage of step k are those over ``[times[k-1], times[k]]``, stored at index k).
        short_energy: heat in the short resistor [J]; joule_energy: the cell's own
            irreversible heat ``I (OCV_end - V)`` [J]; reaction_energy [J]; ambient_energy:
            heat from the ambient [J] (negative = removed); stored_energy: ``m cp (T - T0)`` [J];
            drawn_energy: ``sum I OCV_end dt`` [J].
        onset_time: abuse onset [s] (NaN if none or no kinetics).
    """

    times: np.ndarray
    current: np.ndarray
    voltage: np.ndarray
    T: np.ndarray
    soc: np.ndarray
    short_energy: float
    joule_energy: float
    reaction_energy: float
    ambient_energy: float
    stored_energy: float
    drawn_energy: float
    onset_time: float


def run_short(params: ecm.CellParameters, cells: LumpedCells, short: ShortCircuit, t_end: float, dt: float,
              kinetics: Kinetics | None = None, state: ecm.ECMState | None = None, T0: float | None = None,
              onset: OnsetCriteria | None = None, rtol: float = 1e-6) -> ShortResult:
    """A short on a single lumped cell, with the ECM, its heat and (optionally) abuse kinetics.

    Each step of ``dt`` solves the ECM circuit ``I = E_eff / (R_eff + R_short)``
    (:func:`busbarfem.cells.ecm.step_source`, the RC pairs integrated exactly over the step),
    advances the ECM, then integrates the cell temperature with the kinetics under the step's
    mean Joule heat and the ambient losses. SOC is clipped at 0 (the cell is then empty).

    Args:
        params: ECM parameters of one cell (``n_cells = 1``).
        cells: thermal data of that one cell.
        short: the short.
        t_end, dt: end time and step [s].
        kinetics: abuse kinetics, or None for a short without reactions.
        state: initial ECM state (default: fresh at ``cell.initial_soc``).
        T0: initial temperature [K] (default: the ambient at t = 0).
    """
    if params.n_cells != 1 or cells.n != 1:
        raise ValueError("run_short is for one cell (params.n_cells == cells.n == 1)")
    st = state.copy() if state is not None else ecm.ECMState.initial(params)
    T = np.array([cells.ambient_temperature(0.0) if T0 is None else float(T0)])
    T_start = float(T[0])
    # without kinetics an inert model carries the heat balance through the same integrator
    kin = kinetics or OneEquation(name="inert", A=0.0, Ea=0.0, H=0.0, W=0.0, m=0.0, n=0.0)
    contrib = AbuseContribution(kin, 1, cells.rho_cp, onset=onset or OnsetCriteria(), rtol=rtol)
    times, cur, volt, temps, socs = [0.0], [0.0], [float(ecm.emf(params, st, T)[0])], [T_start], [float(st.soc[0])]
    e_short = e_joule = e_react = e_amb = e_drawn = 0.0
    t = 0.0
    V = cells.volume
    mcp = float(cells.mass[0] * cells.cp[0])
    while t < t_end - 1e-12:
        h = min(dt, t_end - t)
        on = short.active(t, float(T[0])) and st.soc[0] > 0.0
        if on:
            E, R, R_ocv = ecm.step_source(params, st, T, h)
            I = E / (R + short.resistance)
            ocv_end = params.ocv(st.soc, T) - R_ocv * I
            v_term = E - R * I
            joule = float(I[0] * (ocv_end[0] - v_term[0]) * h)
            r_short = float(I[0] ** 2 * short.resistance * h)
            st = ecm.advance(params, st, I, h, T=T)
            st.soc = np.maximum(st.soc, 0.0)
            e_drawn += float(I[0] * ocv_end[0] * h)
        else:
            I = np.zeros(1)
            v_term = ecm.emf(params, st, T)
            joule = r_short = 0.0
            st = ecm.advance(params, st, I, h, T=T)
        cell_heat = joule + (r_short if short.kind == "internal" else 0.0)
        fixed = cell_heat / h / V

        def source(ts, TT, idx, fixed=fixed):
            return fixed[idx] + cells.ambient_loss(ts, TT, idx) / V[idx]

        _, res, _ = contrib.advance(h, T, source=source, frozen=False)
        T_new, ext, rel = res.T, float(res.external[0] * V[0]), float(res.released.sum() * V[0])
        e_short += r_short
        e_joule += joule
        e_react += rel
        e_amb += ext - cell_heat
        T = T_new
        t += h
        times.append(t)
        cur.append(float(I[0]))
        volt.append(float(v_term[0]))
        temps.append(float(T[0]))
        socs.append(float(st.soc[0]))
    return ShortResult(times=np.asarray(times), current=np.asarray(cur), voltage=np.asarray(volt),
                       T=np.asarray(temps), soc=np.asarray(socs), short_energy=e_short, joule_energy=e_joule,
                       reaction_energy=e_react, ambient_energy=e_amb, stored_energy=mcp * (temps[-1] - T_start),
                       drawn_energy=e_drawn,
                       onset_time=float(contrib.onset_time[0]) if kinetics is not None else float("nan"))


# ====================================================================== from a case file

def cell_index(name: str, n_parallel: int) -> int:
    """Index of region ``cell_<s>_<p>`` in (stage, parallel) order: ``(s - 1) n_p + (p - 1)``."""
    _, s, p = name.split("_")
    return (int(s) - 1) * int(n_parallel) + (int(p) - 1)


def grid_conductance(n_series: int, n_parallel: int, gap_conductance: float) -> np.ndarray:
    """(N, N) conductances between grid neighbours of an nSmP cylindrical module (stage
    neighbours along x, parallel neighbours along y), ``gap_conductance`` [W/K] each."""
    n = n_series * n_parallel
    G = np.zeros((n, n))
    for s in range(n_series):
        for p in range(n_parallel):
            i = s * n_parallel + p
            if s + 1 < n_series:
                G[i, i + n_parallel] = G[i + n_parallel, i] = gap_conductance
            if p + 1 < n_parallel:
                G[i, i + 1] = G[i + 1, i] = gap_conductance
    return G


def run_case_lumped(case, t_end: float | None = None, gap_conductance: float = 0.0, **kwargs) -> LumpedResult:
    """Run the lumped abuse model of a case's cylindrical module (no FEM).

    Cells: the module's cell format (radius, height) with the ``cell:`` section's rho and cp;
    cooling: the oven trigger if there is one (T_amb(t), h(t), emissivity), else the first
    convection boundary's h at ``thermal.ambient_temperature``; cell-to-cell conduction:
    ``gap_conductance`` [W/K] between grid neighbours (the 3D model will supply these);
    heaters from the triggers. Shorts need the circuit and are run by :func:`run_short` for
    a single cell; here they are rejected.

    Args:
        case: a validated :class:`busbarfem.case.model.Case` with ``abuse``, ``cell`` and a
            cylindrical ``geometry.module``.
        t_end: end time [s] (default ``solver.t_end``).
        gap_conductance: conductance between neighbouring cells [W/K].
        **kwargs: passed to :func:`run_lumped` (dt_max, max_temperature_change, ...).

    Raises:
        ValueError: the case lacks what the lumped model needs (the message says what).
    """
    from busbarfem.case.abuse import ExternalShortTrigger, HeaterTrigger, InternalShortTrigger, OvenTrigger

    ab = case.abuse
    mod = case.geometry.module
    if ab is None or case.cell is None or mod is None or mod.cell.type != "cylindrical":
        raise ValueError("the lumped abuse runner needs 'abuse:', 'cell:' and a cylindrical geometry.module")
    if any(isinstance(t, (InternalShortTrigger, ExternalShortTrigger)) for t in ab.triggers):
        raise ValueError("shorts in a module need the circuit of the 3D model; for one cell use "
                         "busbarfem.cells.abuse_lumped.run_short")
    t_end = t_end if t_end is not None else case.solver.t_end
    if t_end is None:
        raise ValueError("give t_end (or solver.t_end)")
    r, height = mod.cell.dimensions()
    n = mod.series * mod.parallel
    oven = next((t for t in ab.triggers if isinstance(t, OvenTrigger)), None)
    if oven is not None:
        h, T_amb, eps = oven.h, oven.temperature, oven.emissivity
    else:
        conv = next((b for b in case.thermal.boundaries if b.type == "convection"), None)
        h = conv.h if conv is not None else 0.0
        T_amb = conv.T_amb if conv is not None and conv.T_amb is not None else case.thermal.ambient_temperature
        eps = 0.0
    cells = LumpedCells.cylinders(n, 2 * r, height, case.cell.rho, case.cell.cp, h=h, T_amb=T_amb,
                                  emissivity=eps, conductance=grid_conductance(mod.series, mod.parallel,
                                                                               gap_conductance))
    heaters = []
    for t in ab.triggers:
        if isinstance(t, HeaterTrigger):
            i = cell_index(t.cell, mod.parallel)
            if i >= n:
                raise ValueError(f"abuse trigger cell {t.cell} is not in the {mod.series}s{mod.parallel}p module")
            heaters.append(Heater(cell=i, power=t.power, start=t.start, until_temperature=t.until_temperature,
                                  duration=t.duration))
    onset = OnsetCriteria(rate=ab.onset.rate, temperature=ab.onset.temperature, basis=ab.onset.basis)
    stop = StopConditions(halt_rate=ab.stop.halt_rate, halt_time=ab.stop.halt_time, all_onset=ab.stop.all_onset)
    return run_lumped(ab.build_kinetics(), cells, t_end, T0=case.thermal.initial_temperature, heaters=heaters,
                      onset=onset, stop=stop, rtol=ab.rtol, **kwargs)


# ====================================================================== outputs

def summary(result: LumpedResult, cell_names: list[str] | None = None) -> dict:
    """JSON-friendly per-cell results and the propagation of a :func:`run_lumped` result."""
    n = result.T.shape[1]
    names = cell_names or [f"cell {i + 1}" for i in range(n)]

    def num(x):
        return None if not np.isfinite(x) else float(x)

    cells = [{"cell": names[i], "onset_time_s": num(result.onset_time[i]),
              "threshold_time_s": num(result.threshold_time[i]),
              "peak_temperature_K": float(result.peak_temperature[i]),
              "released_J": {r: float(result.released[i, j]) for j, r in enumerate(result.reactions)},
              "heater_energy_J": float(result.heater_energy[i]),
              "ambient_energy_J": float(result.ambient_energy[i])} for i in range(n)]
    return {"stop_reason": result.stop_reason, "t_end_s": float(result.times[-1]),
            "propagation_order": [names[i] for i in result.propagation_order],
            "propagation_speed_cells_per_min": num(result.propagation_speed), "cells": cells}


def write_outputs(result: LumpedResult, folder, cell_names: list[str] | None = None, plots: bool = True) -> list:
    """Write ``abuse_summary.json``, ``abuse_temperatures.csv`` and (with ``plots``) the
    cell temperatures over time and the onset map as PNG into ``folder``; returns the paths."""
    import json
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = result.T.shape[1]
    names = cell_names or [f"cell {i + 1}" for i in range(n)]
    info = summary(result, names)
    paths = [folder / "abuse_summary.json", folder / "abuse_temperatures.csv"]
    paths[0].write_text(json.dumps(info, indent=2), encoding="utf-8")
    header = "time [s]," + ",".join(f"T {nm} [K]" for nm in names)
    np.savetxt(paths[1], np.column_stack([result.times, result.T]), delimiter=",", header=header, comments="")
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 3.8))
        for i in range(n):
            line, = ax.plot(result.times / 60, result.T[:, i] - 273.15, lw=1.2, label=names[i])
            if np.isfinite(result.onset_time[i]):
                T_on = np.interp(result.onset_time[i], result.times, result.T[:, i]) - 273.15
                ax.plot(result.onset_time[i] / 60, T_on, "o", color=line.get_color(), ms=4)
        ax.set_xlabel("time [min]")
        ax.set_ylabel("cell temperature [C]")
        ax.set_title("Cell temperatures (dots: onset)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=max(1, n // 8))
        paths.append(folder / "abuse_temperatures.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(7.5, 0.32 * n + 1.2))
        onset = np.where(np.isfinite(result.onset_time), result.onset_time / 60, 0.0)
        ax.barh(names[::-1], onset[::-1], color=["#c0504d" if np.isfinite(x) else "#bbbbbb"
                                                 for x in result.onset_time[::-1]])
        ax.set_xlabel("onset time [min] (grey: no onset)")
        ax.set_title("Onset map / propagation order: " + " > ".join(info["propagation_order"]))
        paths.append(folder / "abuse_onset.png")
        fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths
