r"""Cell thermal runaway in the 3D run: the ``abuse:`` section as a physics contribution.

:class:`AbuseCoupling` couples the abuse kinetics of :mod:`busbarfem.cells.abuse` to the
coupled electro-thermal model through the contribution protocol
(:mod:`busbarfem.coupling.contributions`):

* **kinetics** per cell (``evaluation: cell``: the state is lumped per cell and driven by
  the 3D cell-mean temperature; the heat is spread uniformly over the cell body, DG0) or
  per mesh node of the cell bodies (``evaluation: node``: one state per P1 dof, the heat a
  P1 field restricted to the cell bodies). Splitting per step ``[t, t + dt]``: before the
  thermal solve (``prepare``) the stiff ODEs are integrated over the step from the
  accepted temperature with their own sub-steps and error control
  (:func:`busbarfem.cells.abuse.integrate`); the temperature is integrated with them under
  the non-reaction heating of the last accepted step (conduction, losses, heater), so the
  local Arrhenius feedback stays implicit inside the step; the thermal solve then gets the
  mean reaction heat ``released / dt``, so the energy released enters the heat equation
  exactly. ``max_dt`` keeps the reaction heating per step below
  ``solver.max_temperature_change`` near onset (the stepper honours it).
* **triggers**: a heater in a named cell (its power spread over the cell body, switched
  off at ``until_temperature`` of the cell mean, located by the stepper, or after
  ``duration``, landed on); an oven (ambient temperature, h and emissivity on every
  exterior facet, as a Robin term with time-profile coefficients evaluated at the step
  end); an internal short (a :class:`~busbarfem.coupling.contributions.Conductance`
  ``g = 1/(R V_cell)`` between the cell's two potentials over its body, switched on at a
  time or a cell temperature; its heat ``g (phi+ - phi-)^2`` is a heat source of the
  cell); an external short of one cell (the same element, its heat outside the model); an
  external short of the module (a ``"resistance"`` terminal target replacing the load's while
  it is on, :meth:`AbuseCoupling.terminal_target`; its heat is the terminal power).
  The ECM cells see the short through their transfer current, so the cell's state of
  charge (and its EMF) falls as the short drains it, and the parallel neighbours feed it
  through the busbars.
* **outputs**: per cell the onset time (self-heating rate above ``onset.rate``), the time
  above ``onset.temperature``, the peak temperature, the energy per reaction; the
  propagation order and speed; short current and heat; time-series columns.
* **stops**: every cell has had its onset (``stop.all_onset``), all cells quiet for
  ``stop.halt_time`` after an onset (propagation halted or everything consumed).
"""

from __future__ import annotations

import math

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from dolfinx import fem, la

from busbarfem.analysis.regions import RegionIntegrator
from busbarfem.cells.abuse import AbuseContribution, OnsetCriteria, SIGMA_SB
from busbarfem.coupling.contributions import (Conductance, Contribution, ContributionEvent, RobinTerm,
                                              register)
from busbarfem.events import Condition, EventKind


def profile_value(value, t: float) -> float:
    """A number, or a ``[[t, v], ...]`` table interpolated linearly (constant beyond its ends)."""
    if isinstance(value, (int, float)):
        return float(value)
    arr = np.asarray(value, dtype=float)
    return float(np.interp(t, arr[:, 0], arr[:, 1]))


def _json(x):
    x = float(x)
    return None if not math.isfinite(x) else x


class AbuseCoupling(Contribution):
    """The ``abuse:`` section in the 3D run (module docstring).

    Args:
        case: the validated case (``case.abuse`` and ``case.cell`` set).
        bundle: the mesh with its cell regions.
    """

    name = "abuse"
    summary_key = "abuse"
    non_electrical_heat = ("abuse", "heater")

    def __init__(self, case, bundle):
        self.case, self.bundle, self.sec = case, bundle, case.abuse
        regs = sorted((bundle.regions[n] for n in bundle.volume_names() if bundle.regions[n].kind == "cell"),
                      key=lambda r: (r.stage, r.parallel))
        self.names = [r.name for r in regs]
        self.node = self.sec.evaluation == "node"
        self.kinetics = self.sec.build_kinetics()
        self.reactions = list(self.kinetics.reactions)
        self.rho_cp = float(case.cell.rho * case.cell.cp)
        from busbarfem.case.abuse import (ExternalShortTrigger, HeaterTrigger, InternalShortTrigger,
                                          OvenTrigger)

        trig = self.sec.triggers
        self.heaters = [tr for tr in trig if isinstance(tr, HeaterTrigger)]
        self.oven = next((tr for tr in trig if isinstance(tr, OvenTrigger)), None)
        self.shorts = [tr for tr in trig if isinstance(tr, (InternalShortTrigger, ExternalShortTrigger))]
        self.t = 0.0
        self.heater_on = [True] * len(self.heaters)
        self.short_on = [False] * len(self.shorts)
        self.events: list[dict] = []
        self._pending = None
        self._quiet_since: float | None = None

    # ------------------------------------------------------------------ set-up
    def _check_names(self, model) -> None:
        for i, tr in enumerate(self.sec.triggers):
            cell = getattr(tr, "cell", None)
            if cell is not None and cell not in self.names:
                raise model.source.error(f"no cell region '{cell}' in the mesh", f"abuse.triggers.{i}.cell",
                                         choices=self.names, bad=cell)

    def electrical_elements(self, model) -> list[Conductance]:
        """The shorts: one DG0 conductance between the two potentials (zero until switched on)."""
        self._check_names(model)
        self.Q0 = fem.functionspace(self.bundle.mesh, ("DG", 0))
        self.g_short = fem.Function(self.Q0, name="g_short")
        self.g_internal = fem.Function(self.Q0, name="g_short_internal")
        return [Conductance(self.g_short)] if any(s.cell is not None for s in self.shorts) else []

    def setup(self, model) -> None:
        """Cell volumes and mean-temperature integrals, the DG0/P1 heat fields, the kinetics state."""
        b, th = self.bundle, model.thermal
        self.comm, self.thermal, self.electrical = b.mesh.comm, th, model.electrical
        one = fem.Constant(b.mesh, PETSc.ScalarType(1.0))
        vols = RegionIntegrator(b, one).by_region()
        self.volumes = np.array([vols[n] for n in self.names])
        self._cells = [b.cells_of(n) for n in self.names]
        self._Tn_int = RegionIntegrator(b, th.T_n)
        self._T_int = RegionIntegrator(b, th.T)
        self.chi = fem.Function(self.Q0, name="cell_indicator")
        for c in self._cells:
            self.chi.x.array[c] = 1.0
        self.chi.x.scatter_forward()
        self.q_heater = fem.Function(self.Q0, name="q_heater")
        if self.node:
            V = th.V
            self.q_node = fem.Function(V, name="q_abuse")
            nown = V.dofmap.index_map.size_local
            owner = np.full(nown, -1)
            for i, c in enumerate(self._cells):
                dofs = fem.locate_dofs_topological(V, b.mesh.topology.dim, c)
                owner[dofs[dofs < nown]] = i
            self.dofs = np.nonzero(owner >= 0)[0]
            self.dof_cell = owner[self.dofs]
            w = fem.assemble_vector(fem.form(self.chi * ufl.TestFunction(V) * ufl.dx(domain=b.mesh)))
            w.scatter_reverse(la.InsertMode.add)
            self.weights = w.array[self.dofs].copy()  # lumped mass of each node in the cell bodies [m^3]
            self._gidx = V.dofmap.index_map.local_to_global(self.dofs.astype(np.int32))
            n = len(self.dofs)
            self.q_abuse = self.q_node * self.chi
        else:
            self.q_cell = fem.Function(self.Q0, name="q_abuse")
            n = len(self.names)
            self.q_abuse = self.q_cell
        self.state = AbuseContribution(self.kinetics, n, self.rho_cp,
                                       onset=OnsetCriteria(self.sec.onset.rate, self.sec.onset.temperature,
                                                           self.sec.onset.basis), rtol=self.sec.rtol)
        # the self-heating rate at the start, so that the first step is limited too
        self.state._rate = self.kinetics.total_heat(self._point_T(th.T_n), self.state.y) / self.rho_cp
        self._p = np.zeros(n)            # non-reaction heating of the last step [W/m^3]
        self._q = np.zeros(n)            # reaction heat applied over the last step [W/m^3]
        self._T_start = self._point_T(th.T_n)
        nc = len(self.names)
        self.peak_T = self._cell_T(th.T_n, self._Tn_int).copy()
        self.onset_time = np.full(nc, np.nan)
        self.threshold_time = np.full(nc, np.nan)
        self.short_current = np.zeros(len(self.shorts))
        self.short_energy = np.zeros(len(self.shorts))
        self._I_short_int = None
        if any(s.cell is not None for s in self.shorts):
            dphi = self.electrical.cell_voltage_field()
            self._I_short_int = RegionIntegrator(b, self.g_short * dphi)
            self._P_short_int = RegionIntegrator(b, self.g_short * dphi * dphi)
        if self.oven is not None:
            self.oven_h = fem.Constant(b.mesh, PETSc.ScalarType(profile_value(self.oven.h, 0.0)))
            self.oven_T = fem.Constant(b.mesh, PETSc.ScalarType(profile_value(self.oven.temperature, 0.0)))
        self._write_q(np.zeros(n))
        self._write_heater()

    def heat_sources(self) -> dict:
        """``abuse`` (reaction heat), ``heater``, ``internal_short`` (g (phi+ - phi-)^2 of internal shorts)."""
        out = {"abuse": self.q_abuse}
        if self.heaters:
            out["heater"] = self.q_heater
        if any(s.type == "internal_short" for s in self.shorts):
            dphi = self.electrical.cell_voltage_field()
            out["internal_short"] = self.g_internal * dphi * dphi
        return out

    def heat_support(self) -> dict:
        """Every abuse heat source is written on the cell bodies only (chi, or the cells' DG0 values)."""
        return {k: tuple(self.names) for k in ("abuse", "heater", "internal_short")}

    def robin_terms(self) -> list[RobinTerm]:
        """The oven on every exterior facet but coolant channel walls: ``h(t) + h_rad`` towards ``T_oven(t)``."""
        if self.oven is None:
            return []
        h = self.oven_h
        if self.oven.emissivity > 0:
            Tk, Ta = self.thermal.T_k, self.oven_T
            h = h + self.oven.emissivity * SIGMA_SB * (Tk**2 + Ta**2) * (Tk + Ta)
        from busbarfem.physics.cooling import coolant_wall_facets

        facets = np.setdiff1d(self.bundle.facets_of("exterior"), coolant_wall_facets(self.case, self.bundle))
        return [RobinTerm(facets.astype(np.int32), h, self.oven_T)]

    # ------------------------------------------------------------------ point <-> mesh
    def _cell_T(self, fn, integ) -> np.ndarray:
        tot = integ.by_region()
        return np.array([tot[n] for n in self.names]) / self.volumes

    def _point_T(self, fn) -> np.ndarray:
        """Temperatures of the kinetics points: cell means, or the nodal values."""
        if self.node:
            return fn.x.array[self.dofs].copy()
        return self._cell_T(fn, self._Tn_int if fn is self.thermal.T_n else self._T_int)

    def _write_q(self, q: np.ndarray) -> None:
        if self.node:
            self.q_node.x.array[:] = 0.0
            self.q_node.x.array[self.dofs] = q
            self.q_node.x.scatter_forward()
        else:
            for i, c in enumerate(self._cells):
                self.q_cell.x.array[c] = q[i]
            self.q_cell.x.scatter_forward()

    def _write_heater(self) -> None:
        self.q_heater.x.array[:] = 0.0
        for k, hr in enumerate(self.heaters):
            if self.heater_on[k] and self.t >= hr.start - 1e-9 * max(1.0, hr.start):
                i = self.names.index(hr.cell)
                self.q_heater.x.array[self._cells[i]] += hr.power / self.volumes[i]
        self.q_heater.x.scatter_forward()

    def _write_shorts(self) -> None:
        self.g_short.x.array[:] = 0.0
        self.g_internal.x.array[:] = 0.0
        for k, s in enumerate(self.shorts):
            if self.short_on[k] and s.cell is not None:
                i = self.names.index(s.cell)
                g = 1.0 / (s.resistance * self.volumes[i])
                self.g_short.x.array[self._cells[i]] += g
                if s.type == "internal_short":
                    self.g_internal.x.array[self._cells[i]] += g
        self.g_short.x.scatter_forward()
        self.g_internal.x.scatter_forward()

    def _by_cell(self, values: np.ndarray, reduce=MPI.SUM) -> np.ndarray:
        """Per-cell sums (or min/max) of per-point values (node mode: over the ranks)."""
        nc = len(self.names)
        if not self.node:
            return np.asarray(values, dtype=float)
        if reduce is MPI.SUM:
            out = np.zeros((nc,) + values.shape[1:])
            np.add.at(out, self.dof_cell, values)
        elif reduce is MPI.MIN:
            out = np.full(nc, np.inf)
            np.minimum.at(out, self.dof_cell, np.where(np.isnan(values), np.inf, values))
        else:
            out = np.full(nc, -np.inf)
            np.maximum.at(out, self.dof_cell, values)
        return self.comm.allreduce(out, op=reduce)

    # ------------------------------------------------------------------ switches
    def _switch_times(self) -> list[float]:
        out = [hr.start for hr in self.heaters]
        out += [hr.start + hr.duration for k, hr in enumerate(self.heaters) if hr.duration and self.heater_on[k]]
        out += [s.at_time for s in self.shorts if s.at_time is not None]
        return out

    def _apply_scheduled(self) -> None:
        """Switch what is due at ``self.t`` (heater durations, short times)."""
        eps = 1e-9 * max(1.0, self.t)
        for k, hr in enumerate(self.heaters):
            if self.heater_on[k] and hr.duration and self.t >= hr.start + hr.duration - eps:
                self.heater_on[k] = False
                self.events.append({"time": self.t, "kind": "heater_off", "cell": hr.cell})
        for k, s in enumerate(self.shorts):
            if not self.short_on[k] and s.at_time is not None and self.t >= s.at_time - eps:
                self.short_on[k] = True
                self.events.append({"time": self.t, "kind": f"{s.type}_on", "cell": s.cell or "module"})

    # ------------------------------------------------------------------ protocol
    def max_dt(self, t: float) -> float:
        """Reaction heating per step below ``solver.max_temperature_change``; land on switch times."""
        lim = self.state.suggested_dt(self.case.solver.max_temperature_change)
        if self.node:
            lim = self.comm.allreduce(lim, op=MPI.MIN)
        for ts in self._switch_times():
            if ts > t + 1e-9 * max(1.0, t):
                lim = min(lim, ts - t)
        return lim

    def prepare(self, dt: float, current_start=None) -> None:
        """Switches due, heater/short/oven coefficients, and the kinetics over the step (tentative)."""
        self._apply_scheduled()
        self._write_heater()
        self._write_shorts()
        if self.oven is not None:
            self.oven_h.value = profile_value(self.oven.h, self.t + dt)
            self.oven_T.value = profile_value(self.oven.temperature, self.t + dt)
            # the oven's h (a time profile, and the radiation linearised about the iterate
            # T_k) changes between solves: the thermal operator must be re-assembled, or its
            # matrix keeps the first h while the right-hand side h T_oven moves (the heat
            # applied then is not h (T_oven - T) and the energy book does not close)
            self.thermal.robin_version += 1
        T0 = self._point_T(self.thermal.T_n)
        self._T_start = T0
        st = self.state
        if dt <= 0:
            self._pending = None
            q = self.kinetics.total_heat(T0, st.y)
        else:
            keep = self._save_state()
            p = self._p

            def source(ts, TT, idx, p=p):
                return p[idx]

            q, res, events = st.advance(dt, T0, source=source, frozen=False)
            self._pending = (self._save_state(), events, res)
            self._load_state(keep)
        self._q = q
        self._write_q(q)

    def terminal_target(self, t: float, target):
        """While a module external short is on: a ``"resistance"`` target (the resistors of
        every module short on, in parallel) instead of the load's."""
        on = [s.resistance for k, s in enumerate(self.shorts) if s.cell is None and self.short_on[k]]
        if not on:
            return target
        from busbarfem.loads import Target

        return Target("resistance", 1.0 / sum(1.0 / r for r in on), target.step_index)

    def measure(self) -> None:
        """Short currents [A] and powers [W] after the electrical solve: ``integral of g
        (phi+ - phi-)`` of a cell short; ``V / R`` of a module short (V the terminal voltage)."""
        if not self.shorts:
            return
        tot = self._I_short_int.by_region() if self._I_short_int is not None else {}
        ptot = self._P_short_int.by_region() if self._I_short_int is not None else {}
        V = float(self.electrical.V_term.value)
        cur, pw = [], []
        for k, s in enumerate(self.shorts):
            if not self.short_on[k]:
                cur.append(0.0)
                pw.append(0.0)
            elif s.cell is None:
                cur.append(V / s.resistance)
                pw.append(V * V / s.resistance)
            else:
                cur.append(tot[s.cell])
                pw.append(ptot[s.cell])
        self.short_current, self.short_power = np.array(cur), np.array(pw)

    def advance(self, t: float, dt: float, T=None, solution=None) -> None:
        """Commit the step's kinetics (integrated in :meth:`prepare`)."""
        if self._pending is not None:
            self._load_state(self._pending[0])
        self.t = t + dt
        if self.shorts:
            self.short_energy = self.short_energy + dt * getattr(self, "short_power", np.zeros(len(self.shorts)))

    def _save_state(self) -> dict:
        s = self.state
        return {"y": s.y.copy(), "t": s.t, "released_total": s.released_total.copy(),
                "onset_time": s.onset_time.copy(), "threshold_time": s.threshold_time.copy(),
                "rate": s._rate.copy(), "h": None if s._h is None else s._h.copy()}

    def _load_state(self, d: dict) -> None:
        s = self.state
        s.y, s.t, s.released_total = d["y"].copy(), d["t"], d["released_total"].copy()
        s.onset_time, s.threshold_time = d["onset_time"].copy(), d["threshold_time"].copy()
        s._rate, s._h = d["rate"].copy(), None if d["h"] is None else d["h"].copy()

    def snapshot(self):
        """Kinetics, switches, time and the last step's heating at the start of a step."""
        return {"state": self._save_state(), "t": self.t, "heater_on": list(self.heater_on),
                "short_on": list(self.short_on), "p": self._p.copy(), "n_events": len(self.events),
                "short_energy": self.short_energy.copy()}

    def restore(self, snap) -> None:
        """Back to a :meth:`snapshot`."""
        self._load_state(snap["state"])
        self.t, self.heater_on, self.short_on = snap["t"], list(snap["heater_on"]), list(snap["short_on"])
        self._p, self.short_energy = snap["p"].copy(), snap["short_energy"].copy()
        del self.events[snap["n_events"]:]
        self._pending = None

    def conditions(self, t: float) -> list:
        """Heater ``until_temperature`` and short ``at_temperature`` switches (cell-mean T), located."""
        conds = []
        need = [hr for k, hr in enumerate(self.heaters) if self.heater_on[k] and hr.until_temperature]
        need_s = [s for k, s in enumerate(self.shorts) if not self.short_on[k] and getattr(s, "at_temperature", None)]
        if not need and not need_s:
            return conds
        Tm = self._cell_T(self.thermal.T, self._T_int)
        for k, hr in enumerate(self.heaters):
            if self.heater_on[k] and hr.until_temperature:
                m = Tm[self.names.index(hr.cell)] - hr.until_temperature
                conds.append(Condition(EventKind.TEMPERATURE, f"abuse.heater.{k}", m, m >= 0,
                                       f"heater on {hr.cell} off at {hr.until_temperature:g} K", cell=hr.cell))
        for k, s in enumerate(self.shorts):
            if not self.short_on[k] and getattr(s, "at_temperature", None):
                m = self._short_T(s, Tm) - s.at_temperature
                conds.append(Condition(EventKind.TEMPERATURE, f"abuse.short.{k}", m, m >= 0,
                                       f"{s.type} of {s.cell or 'the module'} on at {s.at_temperature:g} K",
                                       cell=s.cell))
        return conds

    def _short_T(self, s, Tm: np.ndarray) -> float:
        """The temperature that switches a short: its cell's mean, or the hottest cell's (module)."""
        return float(Tm[self.names.index(s.cell)] if s.cell is not None else np.max(Tm))

    def after_step(self, t: float, dt: float, flows) -> ContributionEvent | None:
        """Switches reached, the last step's non-reaction heating, onsets, peaks, stop conditions."""
        th = self.thermal
        Tm = self._cell_T(th.T_n, self._Tn_int)  # the accepted temperature (T_n = T now)
        for k, hr in enumerate(self.heaters):
            if self.heater_on[k] and hr.until_temperature and Tm[self.names.index(hr.cell)] >= hr.until_temperature:
                self.heater_on[k] = False
                self.events.append({"time": t, "kind": "heater_off", "cell": hr.cell})
        for k, s in enumerate(self.shorts):
            at_T = getattr(s, "at_temperature", None)
            if not self.short_on[k] and at_T and self._short_T(s, Tm) >= at_T:
                self.short_on[k] = True
                self.events.append({"time": t, "kind": f"{s.type}_on", "cell": s.cell or "module"})
        T1 = self._point_T(th.T_n)
        if dt > 0:
            self._p = self.rho_cp * (T1 - self._T_start) / dt - self._q
        self.peak_T = np.maximum(self.peak_T, self._by_cell(T1, MPI.MAX) if self.node else Tm)
        st = self.state
        self._pending = None
        onset = self._by_cell(st.onset_time, MPI.MIN)
        onset = np.where(np.isfinite(onset), onset, np.nan)
        for i in np.nonzero(np.isnan(self.onset_time) & ~np.isnan(onset))[0]:
            self.onset_time[i] = onset[i]
            self.events.append({"time": float(onset[i]), "kind": "onset", "cell": self.names[i]})
        thr = self._by_cell(st.threshold_time, MPI.MIN)
        thr = np.where(np.isfinite(thr), thr, np.nan)
        for i in np.nonzero(np.isnan(self.threshold_time) & ~np.isnan(thr))[0]:
            self.threshold_time[i] = thr[i]
            self.events.append({"time": float(thr[i]), "kind": "threshold", "cell": self.names[i]})
        stop = self.sec.stop
        if stop.all_onset and np.all(~np.isnan(self.onset_time)):
            return ContributionEvent(f"every cell has had its onset (t = {t:.6g} s)", stop=True)
        rate = self.comm.allreduce(float(np.max(st._rate, initial=0.0)), op=MPI.MAX) if self.node \
            else float(np.max(st._rate, initial=0.0))
        heating = any(self.heater_on[k] and t >= hr.start for k, hr in enumerate(self.heaters))
        if np.any(~np.isnan(self.onset_time)) and rate < stop.halt_rate and not heating:
            if self._quiet_since is None:
                self._quiet_since = t
            elif t - self._quiet_since >= stop.halt_time:
                n = int(np.sum(~np.isnan(self.onset_time)))
                what = "all cells consumed" if n == len(self.names) else f"propagation halted after {n} of {len(self.names)} cells"
                return ContributionEvent(f"{what} (no reaction above {stop.halt_rate:g} K/s for "
                                         f"{stop.halt_time:g} s, t = {t:.6g} s)", stop=True)
        else:
            self._quiet_since = None
        return None

    # ------------------------------------------------------------------ outputs
    def cell_energy(self) -> np.ndarray:
        """Heat released so far per cell and reaction [J], (cells, reactions)."""
        rel = self.state.released_total
        if self.node:
            return self._by_cell(rel * self.weights[:, None])
        return rel * self.volumes[:, None]

    def cell_rate(self) -> np.ndarray:
        """Self-heating rate per cell [K/s] (node mode: the cell's largest)."""
        r = self.state._rate
        return self._by_cell(r, MPI.MAX) if self.node else r

    def columns(self, heat: dict) -> dict:
        """Per cell: mean T [K], reaction heat [W], self-heating rate [K/s], heater [W]; short currents."""
        out = {}
        rate = self.cell_rate()
        Tm = self._cell_T(self.thermal.T, self._T_int)  # recorded before T_n <- T: the step's end
        for i, n in enumerate(self.names):
            out[f"abuse_T_{n} [K]"] = float(Tm[i])
            out[f"abuse_heat_{n} [W]"] = heat["abuse"][n]
            out[f"abuse_rate_{n} [K/s]"] = float(rate[i])
            if self.heaters:
                out[f"heater_{n} [W]"] = heat["heater"][n]
        for k, s in enumerate(self.shorts):
            out[f"short_{k + 1}_{s.cell or 'module'}_current [A]"] = float(self.short_current[k])
        if self.shorts:
            bb = sum(v for r, v in heat["joule"].items() if self.bundle.regions[r].kind != "cell")
            out["joule_conductors [W]"] = float(bb)
        return out

    def summary(self, heat: dict) -> dict:
        """Per-cell onset/threshold/peak/energy, propagation order and speed, shorts, events."""
        E = self.cell_energy()
        cells = {}
        for i, n in enumerate(self.names):
            cells[n] = {"onset_time_s": _json(self.onset_time[i]), "threshold_time_s": _json(self.threshold_time[i]),
                        "peak_temperature_K": _json(self.peak_T[i]),
                        "energy_J": {r: float(E[i, j]) for j, r in enumerate(self.reactions)},
                        "energy_total_J": float(E[i].sum())}
        done = [(self.onset_time[i], n) for i, n in enumerate(self.names) if not np.isnan(self.onset_time[i])]
        done.sort()
        speed = None
        if len(done) >= 2 and done[-1][0] > done[0][0]:
            speed = 60.0 * (len(done) - 1) / (done[-1][0] - done[0][0])
        out = {"kinetics": self.kinetics.name, "evaluation": self.sec.evaluation, "reactions": self.reactions,
               "cells": cells, "propagation": {"order": [n for _, n in done], "onset_times_s": [float(x) for x, _ in done],
                                               "speed_cells_per_min": speed},
               "events": list(self.events)}
        if self.shorts:
            out["shorts"] = [{"type": s.type, "cell": s.cell or "module", "resistance_ohm": s.resistance,
                              "on": bool(self.short_on[k]), "current_A": float(self.short_current[k]),
                              "energy_J": float(self.short_energy[k])} for k, s in enumerate(self.shorts)]
            out["joule_conductors_W"] = float(sum(v for r, v in heat["joule"].items()
                                                   if self.bundle.regions[r].kind != "cell"))
        return out

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        """Kinetics (node mode: keyed by global dof, gathered), switches, onsets, peaks."""
        st = self._save_state()
        kin = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
        if self.node:
            parts = self.comm.allgather((self._gidx.tolist(), kin, self._p.tolist()))
            kin = {"parts": parts}
        else:
            kin["p"] = self._p.tolist()
        return {"kinetics": kin, "t": self.t, "heater_on": self.heater_on, "short_on": self.short_on,
                "onset_time": [_json(x) for x in self.onset_time],
                "threshold_time": [_json(x) for x in self.threshold_time],
                "peak_T": self.peak_T.tolist(), "events": self.events, "quiet_since": self._quiet_since,
                "short_energy": self.short_energy.tolist()}

    def load_state_dict(self, state) -> None:
        """Restore :meth:`state_dict`'s state (node mode: any partition of the same mesh)."""
        if not state:
            return
        kin = state["kinetics"]
        if self.node:
            pos = {int(g): i for i, g in enumerate(self._gidx)}
            d = self._save_state()
            p = self._p.copy()
            for gidx, part, pp in kin["parts"]:
                for j, g in enumerate(gidx):
                    i = pos.get(int(g))
                    if i is None:
                        continue
                    for key in ("y", "released_total"):
                        d[key][i] = part[key][j]
                    for key in ("onset_time", "threshold_time", "rate"):
                        d[key][i] = np.nan if part[key][j] is None else part[key][j]
                    p[i] = pp[j]
                d["t"] = part["t"]
            d["h"] = None
            self._load_state(d)
            self._p = p
        else:
            self._load_state({k: (np.asarray(v, dtype=float) if isinstance(v, list) else v)
                              for k, v in kin.items() if k != "p"})
            self._p = np.asarray(kin["p"], dtype=float)
        self.t = float(state["t"])
        self.heater_on, self.short_on = list(state["heater_on"]), list(state["short_on"])
        self.onset_time = np.array([np.nan if x is None else x for x in state["onset_time"]], dtype=float)
        self.threshold_time = np.array([np.nan if x is None else x for x in state["threshold_time"]], dtype=float)
        self.peak_T = np.asarray(state["peak_T"], dtype=float)
        self.events = list(state["events"])
        self._quiet_since = state["quiet_since"]
        self.short_energy = np.asarray(state["short_energy"], dtype=float)


@register("abuse")
def _abuse(case, bundle):
    """Applies to a case with an ``abuse:`` section and cell bodies in the mesh."""
    if getattr(case, "abuse", None) is None or case.cell is None:
        return None
    if not any(bundle.regions[n].kind == "cell" for n in bundle.volume_names()):
        return None
    return AbuseCoupling(case, bundle)
