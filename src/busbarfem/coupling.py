r"""The coupled electro-thermal solver: steady Picard or a transient operator splitting.

Electrical transients (micro- to milliseconds) are far faster than thermal ones (seconds
to hours), so inside each thermal step the potential problem is solved quasi-statically:

1. electrical solve with sigma(T^n) and the cell states at t_n (the load controller gives
   the terminal target: current, voltage or power);
2. heat sources q (Joule + Bernardi);
3. backward-Euler thermal step to T^{n+1};
4. optionally Picard-iterate 1-3 on sigma(T) to a tolerance;
5. cell states (SOC, RC voltages) advance with the cell currents.

The steady mode iterates 1-3 (Anderson-accelerated Picard) to a fixed point. A fixed point
that is not physical (temperature below every boundary temperature, or a negative
conductivity) or a temperature past ``runaway_temperature`` means no steady state exists:
thermal runaway, reported as a result with its place and region.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem

from busbarfem import naming
from busbarfem.analysis.regions import RegionBreakdown, RunExtrema, extremum
from busbarfem.errors import CaseError, SolveError
from busbarfem.events import VARYING_CURRENT_MODES, HoldCurrentControl, margin_of
from busbarfem.events import locate as locate_event
from busbarfem.materials import resolve_materials
from busbarfem.mesh import MeshBundle, build_mesh
from busbarfem.physics.electrical import ElectricalProblem
from busbarfem.physics.thermal import ThermalProblem


def locate(exc: CaseError, source) -> CaseError:
    """Give a CaseError raised below the loader (it knows the key only) its file and line."""
    if exc.file is None and exc.key and source is not None:
        return source.error(exc.message, exc.key, choices=exc.choices, bad=exc.bad)
    return exc


class Runaway(Exception):
    """No steady state / unbounded temperature growth (a result, not a crash)."""

    def __init__(self, message: str, where: dict | None = None):
        super().__init__(message)
        self.where = where or {}


@dataclass
class StepRecord:
    """One row of ``timeseries.csv``."""

    values: dict = field(default_factory=dict)


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


class Simulation:
    """A case, set up on a communicator: mesh, physics, coupling and output.

    Args:
        case: validated Case.
        source: its CaseSource (for located errors).
        comm: MPI communicator.
        outdir: output folder (None: write nothing).
        progress: optional callable(dict) called after each step on rank 0.
        cache_dir: mesh cache folder (None: always mesh).
        restarting: the run continues from a checkpoint in ``outdir``, verified and loaded by
            :meth:`setup` (fields go to a new file).
    """

    def __init__(self, case, source, comm: MPI.Comm, outdir: Path | None = None, progress=None,
                 cache_dir=None, restarting: bool = False):
        self.case, self.source, self.comm = case, source, comm
        self.restarting = restarting
        self.outdir = Path(outdir) if outdir is not None else None
        self.progress = progress
        self.cache_dir = cache_dir
        self.timings: dict[str, float] = {}
        self.rows: list[dict] = []
        self.stop_reason = "not run"
        self.runaway: dict | None = None
        self.events: list[dict] = []
        self.checkpoint_every = 0
        self.restart_state: dict | None = None

    # ------------------------------------------------------------------ set-up
    def _tick(self, phase: str, t0: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    def setup(self, bundle: MeshBundle | None = None) -> None:
        """Mesh (unless given), resolve regions, build the physics and the writers."""
        case = self.case
        t0 = time.perf_counter()
        try:
            self.bundle = bundle or build_mesh(case, self.comm, cache_dir=self.cache_dir, source=self.source)
        except CaseError as exc:
            raise locate(exc, self.source) from None
        self._tick("mesh", t0)
        self.materials = resolve_materials(case.materials)
        self._apply_conductivity_factors()
        b = self.bundle
        for term, side in ((naming.TERMINAL_POS, "positive"), (naming.TERMINAL_NEG, "negative")):
            if term not in b.tags:
                raise self.source.error(f"the geometry has no '{term}' surface; define geometry.terminals.{side}",
                                        "geometry.terminals")
        t0 = time.perf_counter()
        order = b.element_order  # mesh.order (1, 2 or auto) was resolved when meshing
        # temperature: the thermal problem owns T; the electrical problem reads the iterate T_k
        props = {}
        for name in b.volume_names():
            reg = b.regions[name]
            if reg.kind == "cell":
                c = case.cell
                props[name] = (c.k if isinstance(c.k, (tuple, list)) else (c.k,) * 3, c.rho, c.cp)
            else:
                m = self.materials[reg.material]
                props[name] = (m.k if isinstance(m.k, tuple) else (m.k,) * 3, m.rho, m.cp)
        bcs = self._thermal_bcs()
        self.cells = None
        self._build_cells()
        T0 = case.thermal.initial_temperature
        # the thermal form needs the heat source expression, which needs the electrical
        # problem, which needs T_k: create T_k first through a provisional space.
        Vt = fem.functionspace(b.mesh, ("Lagrange", order))
        T_k = fem.Function(Vt, name="T_k")
        T_k.x.array[:] = T0
        s = case.solver
        self.el = ElectricalProblem(b, self.materials, T_k, self.cell_params, order=order,
                                    solver=s.electrical_solver, rtol=s.rtol)
        if self.cell_params:
            from busbarfem.physics.cells import CellCoupling

            self.cells = CellCoupling(b, case.cell, self.el, T_k)
        # every volume heat source by name; q is their sum, so the per-region breakdown
        # (summary.json heat.by_region) always covers every source the thermal problem sees
        self.heat_sources = self._heat_sources()
        q = sum(self.heat_sources.values())
        self.th = ThermalProblem(b, props, bcs, q, T0, order=order, solver=s.thermal_solver, rtol=s.rtol,
                                 T_k=T_k)
        self.T_k = T_k
        self.q_expr = q
        if self.cells is not None:
            j = self.el.transfer_current()
            self._enthalpy_form = fem.form(j * (self.el.ocv - T_k * self.el.dudt) * ufl.dx(domain=b.mesh))
        self.heat_by_region = RegionBreakdown(b, {**self.heat_sources, "total": q})
        self.extrema = RunExtrema()
        self.region_heat_J = dict.fromkeys(b.volume_names(), 0.0)
        self.last_region_heat: dict | None = None
        if self.restarting and self.outdir is not None:
            self.restore(self.outdir)  # verify (refuse) before any output file is opened
        self._setup_output()
        self._tick("setup", t0)

    def _apply_conductivity_factors(self) -> None:
        """``conductivity_factors``: give each named conductor region a scaled copy of its material."""
        b = self.bundle
        factors = self.case.conductivity_factors
        if not factors:
            return
        b.regions = dict(b.regions)
        for name, f in factors.items():
            reg = b.regions.get(name)
            if reg is None or reg.dim != 3 or reg.kind != "conductor" or name not in b.tags:
                choices = sorted(n for n in b.volume_names() if b.regions[n].kind == "conductor")
                raise self.source.error(f"no conductor region '{name}' in the mesh",
                                        f"conductivity_factors.{name}", choices=choices, bad=name)
            mat = self.materials[reg.material]
            derived = f"{reg.material}*{f:g}"
            self.materials[derived] = mat.model_copy(update={"sigma_ref": mat.sigma_ref * f})
            b.regions[name] = dataclasses.replace(reg, material=derived)

    def _build_cells(self) -> None:
        """Cell collector conductivities per cell region (MSMD); none for conductor-only cases."""
        b = self.bundle
        cell_regions = [n for n in b.volume_names() if b.regions[n].kind == "cell"]
        self.cell_params = {}
        if not cell_regions:
            return
        if self.case.cell is None:
            raise self.source.error(f"the geometry has {len(cell_regions)} cell bodies but the case has no "
                                    "'cell:' section (e.g. cell: {preset: LG_M50})", "cell")
        c = self.case.cell
        for n in cell_regions:
            self.cell_params[n] = {"sigma_pos": c.sigma_pos, "sigma_neg": c.sigma_neg, "alpha_pos": c.alpha_pos,
                                   "alpha_neg": c.alpha_neg, "T_ref": c.T_ref}

    def _heat_sources(self) -> dict:
        """The volume heat sources [W/m^3] by name: Joule (conductors and cell collectors)
        and, with cells, the Bernardi irreversible and reversible terms."""
        sources = {"joule": self.el.joule_density()}
        if self.cells is not None:
            sources["irreversible"] = self.cells.irreversible_heat()
            sources["reversible"] = self.cells.reversible_heat()
        return sources

    def _thermal_bcs(self) -> list:
        case, b = self.case, self.bundle
        out = []
        valid = b.bc_region_names()
        for i, bc in enumerate(case.thermal.boundaries):
            facets = []
            for j, name in enumerate(bc.regions):
                try:
                    facets.append(b.facets_of(name))
                except KeyError:
                    raise self.source.error(f"unknown region '{name}'", f"thermal.boundaries.{i}.regions.{j}",
                                            choices=valid, bad=name) from None
            fac = np.unique(np.concatenate(facets)) if facets else np.zeros(0, np.int32)
            prm = bc.model_dump()
            if "T_amb" in prm and prm["T_amb"] is None:
                prm["T_amb"] = case.thermal.ambient_temperature
            out.append((bc.type, fac.astype(np.int32), prm))
        return out

    def _setup_output(self) -> None:
        from busbarfem.io.fields import FieldWriter, interpolator, region_id_function

        b = self.bundle
        msh = b.mesh
        Q0 = fem.functionspace(msh, ("DG", 0))
        Q0v = fem.functionspace(msh, ("DG", 0, (3,)))
        # XDMF stores nodal fields at the mesh's geometry degree (P1 on straight-sided
        # tetrahedra, P2 on curved 10-node ones): T and phi are written at their own
        # degree when it matches, else interpolated into that space
        deg = msh.geometry.cmaps[0].degree
        Pg = fem.functionspace(msh, ("Lagrange", deg))
        same = self.bundle.element_order == deg
        self.out_T = self.th.T if same else fem.Function(Pg, name="T")
        self.out_Jmag = fem.Function(Q0, name="J_magnitude")
        self.out_J = fem.Function(Q0v, name="J")
        self.out_q = fem.Function(Q0, name="q")
        J = self.el.current_density()
        self._refresh_Jmag = interpolator(self.out_Jmag, ufl.sqrt(ufl.inner(J, J)))
        fields = {
            "T": (self.out_T, None if self.out_T is self.th.T else interpolator(self.out_T, self.th.T)),
            "J_magnitude": (self.out_Jmag, self._refresh_Jmag),
            "J": (self.out_J, interpolator(self.out_J, J)),
            "q": (self.out_q, interpolator(self.out_q, self.q_expr)),
        }
        if self.el.nfields == 1:
            phi = self.el.phi if same else fem.Function(Pg, name="phi")
            fields["phi"] = (phi, None if phi is self.el.phi else interpolator(phi, self.el.phi))
        else:
            for f in range(2):
                pf = fem.Function(Pg, name=f"phi{f + 1}")
                fields[f"phi{f + 1}"] = (pf, interpolator(pf, self.el.phi[f]))
        if self.cells is not None:
            self.out_j = fem.Function(Q0, name="transfer_current")
            fields["transfer_current"] = (self.out_j, interpolator(self.out_j, self.el.transfer_current()))
            self.out_soc = fem.Function(Q0, name="SOC")
            fields["SOC"] = (self.out_soc, self._refresh_soc)
        fields["region_id"] = (region_id_function(b), None)
        self.field_functions = fields
        self.writer = None
        if self.outdir is not None:
            name = "fields.xdmf"
            if self.restarting:
                # a restart keeps the original file intact and continues in a new one
                k = 1
                while (self.outdir / f"fields_restart{k}.xdmf").exists():
                    k += 1
                name = f"fields_restart{k}.xdmf"
            self.writer = FieldWriter(self.comm, msh, self.outdir / name, fields)

    def _refresh_soc(self) -> None:
        """Cell SOC as a DG0 field (-1 outside the cells)."""
        self.out_soc.x.array[:] = -1.0
        for i, cells in enumerate(self.cells._cells):
            self.out_soc.x.array[cells] = self.cells.state.soc[i]
        self.out_soc.x.scatter_forward()

    # ------------------------------------------------------------------ solving
    def _target(self, t: float):
        return self.controller.target(t)

    def _check_temperature(self, T: np.ndarray, step) -> None:
        """Raise Runaway on NaN, a negative conductivity, or a temperature past the limit."""
        comm = self.comm
        bad = not np.all(np.isfinite(T))
        if comm.allreduce(bad, op=MPI.LOR):
            raise SolveError("temperature field contains NaN/inf", step=step, reason="NaN in temperature")
        tmax = comm.allreduce(float(T.max()) if len(T) else -np.inf, op=MPI.MAX)
        if tmax > self.case.solver.runaway_temperature:
            raise Runaway(f"maximum temperature {tmax:.1f} K exceeds the runaway threshold "
                          f"{self.case.solver.runaway_temperature:.1f} K")

    def steady_tmax_at(self, current: float) -> float | None:
        """Steady T_max [K] at a fixed load current, or None if no steady state exists.

        Restarts from the initial temperature; used by the critical-current search.
        """
        from busbarfem.loads import Target

        T0 = self.case.thermal.initial_temperature
        for f in (self.T_k, self.th.T, self.th.T_n):
            f.x.array[:] = T0
        try:
            self.solve_steady(Target("current", float(current), 0))
        except Runaway:
            return None
        return self._tmax(self.th.T.x.array)

    def _steady_electrical(self, target, it: int):
        """One steady electrical solve; cells (if any) at their mean temperature, instantaneous
        response (no RC relaxation), and their currents measured for the summary."""
        if self.cells is not None:
            self.cells.update_temperature()
            self.cells.refresh(0.0)
        sol = self.el.solve(target.mode, target.value, step=it)
        if self.cells is not None:
            self.cells.measure_currents()
        return sol

    def solve_steady(self, target=None) -> dict:
        """Anderson-accelerated Picard on the steady coupled problem.

        Returns:
            A convergence report (iterations, last change, terminal solution).

        Raises:
            Runaway: no physical steady state exists.
            SolveError: the iteration did not converge (and did not run away).
        """
        s = self.case.solver
        th, el = self.th, self.el
        nown = th.V.dofmap.index_map.size_local
        acc = Anderson(self.comm, s.picard.anderson_depth)
        T_floor = self._min_boundary_temperature()
        history = []
        target = target if target is not None else self._target(0.0)
        for it in range(1, s.picard.max_iterations + 1):
            t0 = time.perf_counter()
            sol = self._steady_electrical(target, it)
            self._tick("solve_electrical", t0)
            t0 = time.perf_counter()
            th.solve(None, step=it)
            self._tick("solve_thermal", t0)
            Tnew = th.T.x.array[:nown]
            self._check_temperature(Tnew, it)
            Told = self.T_k.x.array[:nown]
            change = self.comm.allreduce(float(np.max(np.abs(Tnew - Told))) if nown else 0.0, op=MPI.MAX)
            rise = self.comm.allreduce(float(np.max(Tnew) - T_floor) if nown else 0.0, op=MPI.MAX)
            history.append(change)
            if change <= s.picard.tolerance * (1.0 + abs(rise)):
                self.T_k.x.array[:] = th.T.x.array
                sol = self._steady_electrical(target, it)
                th.solve(None, step=it)
                self._assert_physical(T_floor)
                return {"iterations": it, "last_change_K": change, "history_K": history, "terminal": sol}
            mixed = acc.mix(Told.copy(), Tnew.copy())
            self.T_k.x.array[:nown] = mixed
            self.T_k.x.scatter_forward()
            if not self.el.conductivity_positive():
                raise Runaway("the temperature iterate makes the conductivity negative: no steady state "
                              "(thermal runaway)")
        raise SolveError(f"steady Picard iteration did not converge in {s.picard.max_iterations} iterations "
                         f"(last change {history[-1]:.3g} K)", step=s.picard.max_iterations,
                         reason="Picard not converged")

    def _min_boundary_temperature(self) -> float:
        temps = [self.case.thermal.initial_temperature] if not self.case.thermal.boundaries else []
        for bc in self.case.thermal.boundaries:
            if bc.type == "temperature":
                temps.append(bc.T)
            elif bc.type in ("convection", "radiation"):
                temps.append(bc.T_amb if bc.T_amb is not None else self.case.thermal.ambient_temperature)
        return min(temps) if temps else self.case.thermal.initial_temperature

    def _assert_physical(self, T_floor: float) -> None:
        """A steady state with heat sources >= 0 cannot dip below the coldest boundary."""
        nown = self.th.V.dofmap.index_map.size_local
        tmin = self.comm.allreduce(float(self.th.T.x.array[:nown].min()) if nown else np.inf, op=MPI.MIN)
        if self.el.nfields == 1 and tmin < T_floor - 1e-6 * max(1.0, T_floor):
            raise Runaway(f"the only fixed point has T_min = {tmin:.2f} K below the coldest boundary "
                          f"{T_floor:.2f} K: no physical steady state (thermal runaway)")
        if not self.el.conductivity_positive():
            raise Runaway("steady state needs a negative conductivity: thermal runaway")

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        """Solve the case and write the outputs; returns the summary dict."""
        from busbarfem.loads import LoadController

        case = self.case
        cap = case.cell.capacity if case.cell is not None else 1.0
        ns, npar = (self.cells.n_series, self.cells.n_parallel) if self.cells is not None else (1, 1)
        self.controller = LoadController(case.load, capacity_Ah=cap, n_series=ns, n_parallel=npar)
        if self.restart_state is not None:
            self.controller.load_state_dict(self.restart_state["controller"])
        self._open_timeseries()
        t_start = time.perf_counter()
        try:
            if case.solver.analysis == "steady":
                rep = self.solve_steady()
                self.convergence = {k: v for k, v in rep.items() if k != "terminal"}
                self.stop_reason = "steady state reached"
                self._record(0.0, rep["terminal"], flows=self.th.heat_flows())
                self._write_fields(0.0)
            else:
                self.run_transient()
        except Runaway as exc:
            self.stop_reason = "thermal runaway"
            self.runaway = {"message": str(exc), **self._hot_location()}
            self._write_fields(self.rows[-1]["time [s]"] if self.rows else 0.0)
        except SolveError as exc:
            # keep what was computed: the summary says why and where it stopped
            self.stop_reason = f"{exc.reason}: {exc}"
            self._write_summary()
            raise
        if self.rows and self.outdir is not None:
            from busbarfem.io.hotspots import hotspots_for_simulation

            self.hotspots = hotspots_for_simulation(self)  # collective; rank 0 writes hotspots.json
        self.timings["total"] = time.perf_counter() - t_start
        return self._write_summary()

    def _write_summary(self) -> dict:
        summary = self.summary()
        if self.outdir is not None and self.comm.rank == 0:
            (self.outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary

    def _electrical_step(self, t_eval: float, step: int, dt: float = 0.0, current_start=None):
        """Quasi-static electrical solve for the target at ``t_eval`` with the cell states
        integrated over a step of ``dt`` (0: instantaneous; ``current_start``: the cell
        currents at the step start of a held-voltage step, see ``CellCoupling.refresh``)."""
        target = self._target(t_eval)
        if self.cells is not None:
            t0 = time.perf_counter()
            self.cells.update_temperature()
            self.cells.refresh(dt, current_start)
            self._tick("cell_update", t0)
        t0 = time.perf_counter()
        sol = self.el.solve(target.mode, target.value, step=step)
        self._tick("solve_electrical", t0)
        if self.cells is not None:
            t0 = time.perf_counter()
            self.cells.measure_currents()
            self._tick("cell_update", t0)
        return sol

    def _thermal_step(self, dt: float, step: int) -> None:
        t0 = time.perf_counter()
        self.th.solve(dt, step=step)
        self._tick("solve_thermal", t0)

    def _tmax(self, arr: np.ndarray) -> float:
        nown = self.th.V.dofmap.index_map.size_local
        return self.comm.allreduce(float(arr[:nown].max()) if nown else -np.inf, op=MPI.MAX)

    def run_transient(self) -> None:
        """Operator-split time loop with adaptive steps and event landing.

        Each step: the electrical problem is solved with sigma(T^n) and the cell states at
        t_n integrated over the step (RC pairs exactly at constant current, so the solve
        gives the end-of-step currents and voltages and stays stable for dt >> tau_RC);
        its heat drives the thermal step to T^{n+1} (optionally Picard-iterated on
        sigma(T)); then the cell states advance with those currents. A step whose temperature
        change exceeds twice ``max_temperature_change`` is rejected and retried with half the
        step. Terminations go through :mod:`busbarfem.events`, as in the lumped model: step
        ends and profile breakpoints are landed on by cutting the step; a threshold (cell
        voltage, SOC, cut-off current, temperature) reached inside a step is located by
        re-solving the step shorter (Illinois root finding) to ``event_tolerance``. In a
        held-voltage step the cell current is linear in time over the step and the step
        length follows the current change (:class:`~busbarfem.events.HoldCurrentControl`).
        """
        s = self.case.solver
        th = self.th
        t, step = 0.0, 0
        dt = s.dt
        dt_max = s.dt_max or s.dt
        t_end = s.t_end if s.t_end is not None else math.inf
        from busbarfem.analysis.runaway import RunawayMonitor

        self._monitor = RunawayMonitor() if self.cells is None else None
        dx = ufl.dx(domain=self.bundle.mesh)
        self._T_mean_form = fem.form(th.T * dx)
        self._volume = self.comm.allreduce(fem.assemble_scalar(fem.form(fem.Constant(self.bundle.mesh, 1.0) * dx)),
                                           op=MPI.SUM)
        if self.restart_state is not None:
            rs = self.restart_state
            t, step, dt = rs["t"], rs["step"], rs["dt"]
            if rs.get("monitor") and self._monitor is not None:
                self._monitor._last = tuple(rs["monitor"]["last"]) if rs["monitor"]["last"] else None
                self._monitor._count = rs["monitor"]["count"]
        self.T_k.x.array[:] = th.T_n.x.array
        sol = self._electrical_step(t, step)
        if self.restart_state is None:
            f0 = th.heat_flows()
            # at t = 0 all net heat goes into storage: the instantaneous balance is exact
            f0.stored = f0.generated + f0.flux_in - f0.convection - f0.radiation - f0.fixed_temperature
            self._record(t, sol, flows=f0)
        self._write_fields(t)
        self.stop_reason = "end time reached"
        cap = self.case.cell.capacity if self.cells is not None else 1.0
        self._hold_control = HoldCurrentControl(current_floor=0.01 * cap)
        self._hold_step = None
        h_hold = None  # step length the hold control suggests for the next held-voltage step
        while t < t_end * (1 - 1e-12):
            step += 1
            dt_step = min(dt, t_end - t)
            nxt = self.controller.next_event_time(t)
            if nxt is not None and nxt - t < dt_step * (1 + 1e-9):
                dt_step = nxt - t
            start = self._save_electrical()
            start_conds = self._conditions(t, sol, self._tmax(th.T_n.x.array))
            i_start = self._hold_start_current(t, step, start)
            if i_start is None:
                h_hold = None
            elif h_hold is not None:
                dt_step = min(dt_step, h_hold)

            def trial(h, t=t, step=step, start=start, i_start=i_start):
                self._restore_electrical(start)
                return self._trial_step(t, h, step, i_start)

            first = trial(dt_step)
            while True:
                dT = first[0][2]
                if s.adaptive and dT > 2 * s.max_temperature_change and dt_step > s.dt_min * 1.0001:
                    dt_step = max(dt_step / 2, s.dt_min)
                elif i_start is not None:
                    accept, h_next = self._hold_control.judge(i_start, self.cells.current, dt_step)
                    if accept or dt_step <= s.dt_min * 1.0001:
                        h_hold = h_next
                        break
                    dt_step = max(h_next, s.dt_min)
                else:
                    break
                first = trial(dt_step)
            planned = dt_step
            # a threshold inside the step: re-solve it shorter so that it ends at the crossing
            dt_step, (new_sol, flows, dT), _ = locate_event(
                trial, dt_step, s.event_tolerance, first=first,
                margin_at_start=lambda key: margin_of(start_conds, key))
            located = dt_step < planned
            sol = new_sol
            t += dt_step
            t0 = time.perf_counter()
            self._record(t, sol, flows=flows)
            self._tick("record", t0)
            th.advance()
            event = self.controller.update(t - dt_step, dt_step, sol.voltage, sol.current, *self._cell_status(),
                                           max_temperature=self.rows[-1]["T_max [K]"])
            if step % self.case.output.every == 0 or event is not None:
                self._write_fields(t)
            if event is not None:
                self.events.append(event.to_dict())
                if event.stop:
                    self.stop_reason = event.reason
                    return
            if self._monitor is not None:
                Tmean = self.comm.allreduce(fem.assemble_scalar(self._T_mean_form), op=MPI.SUM) / self._volume
                if self._monitor.update(Tmean, flows.generated, flows.convection + flows.radiation
                                        + flows.fixed_temperature):
                    raise Runaway(f"heat generation grows faster with temperature than heat removal "
                                  f"(sustained over {self._monitor.persistence} steps at t = {t:.6g} s): "
                                  "no steady state can be reached")
            tmax = self.rows[-1]["T_max [K]"]
            if s.temperature_limit is not None and tmax > s.temperature_limit:
                self.stop_reason = "temperature limit"
                self._write_fields(t)
                return
            if located:
                dt = max(dt, s.dt_min)  # the step was cut to an event: carry on at the planned dt
            elif s.adaptive:
                # grow when the temperature (and SOC) changed little over the step
                growth = 1.5 if dT < 0.5 * s.max_temperature_change else 1.0
                if self.cells is not None:
                    dsoc = float(np.max(np.abs(self.cells.current))) * dt_step / (3600 * float(np.min(self.cells.state.capacity_Ah)))
                    if dsoc > 0.02:
                        growth = min(growth, 0.5 * (1 + 0.02 / dsoc))
                dt = min(max(dt_step * growth, s.dt_min), dt_max)
            else:
                dt = s.dt
            self._next_dt = dt
            if self.checkpoint_every and step % self.checkpoint_every == 0:
                self._checkpoint(t, step, dt)
        if self.rows and (step % self.case.output.every != 0):
            self._write_fields(t)

    def _trial_step(self, t: float, h: float, step: int, i_start):
        """One attempt at the step from ``t`` to ``t + h`` (the caller restored the start):
        electrical solve, thermal step (Picard on sigma(T) if asked), cell update.

        Returns:
            ``((solution, heat flows, max |dT|), conditions at t + h)``.
        """
        s, th = self.case.solver, self.th
        self.T_k.x.array[:] = th.T_n.x.array
        new_sol = self._electrical_step(t + 0.5 * h, step, h, i_start)
        self._thermal_step(h, step)
        for _ in range(s.picard.max_iterations if s.coupled_iterations else 0):
            change = self.comm.allreduce(float(np.max(np.abs(th.T.x.array - self.T_k.x.array))),
                                         op=MPI.MAX)
            if change <= s.picard.tolerance * (1.0 + self._tmax(th.T.x.array) - self._tmax(th.T_n.x.array)):
                break
            self.T_k.x.array[:] = th.T.x.array
            new_sol = self._electrical_step(t + 0.5 * h, step, h, i_start)
            self._thermal_step(h, step)
        else:
            if s.coupled_iterations:
                raise SolveError(f"Picard iteration on sigma(T) did not converge in "
                                 f"{s.picard.max_iterations} iterations at t = {t + h:.6g} s",
                                 step=step, reason="Picard not converged")
        self._check_temperature(th.T.x.array, step)
        flows = th.heat_flows()
        dT = self.comm.allreduce(float(np.max(np.abs(th.T.x.array - th.T_n.x.array))), op=MPI.MAX)
        if self.cells is not None:
            t0 = time.perf_counter()
            self.cells.advance(h)
            self._tick("cell_update", t0)
        return (new_sol, flows, dT), self._conditions(t + h, new_sol, self._tmax(th.T.x.array))

    def _conditions(self, t: float, sol, tmax: float) -> list:
        """The load's termination conditions at ``t`` plus ``solver.temperature_limit``."""
        from busbarfem.events import Condition, EventKind

        conds = self.controller.conditions(t, sol.current, *self._cell_status(), max_temperature=tmax)
        limit = self.case.solver.temperature_limit
        if limit is not None:
            conds.append(Condition(kind=EventKind.TEMPERATURE, key="solver.temperature_limit",
                                   margin=tmax - limit, reached=tmax > limit,
                                   reason="temperature limit", stop=True))
        return conds

    def _hold_start_current(self, t: float, step: int, start: dict):
        """Cell currents at the start of a held-voltage step (None for other targets).

        Within one hold step the end currents of the previous step are the start currents;
        when the step has just begun (the current jumps) an instantaneous solve gives them.
        """
        if self.cells is None or self._target(t).mode not in VARYING_CURRENT_MODES:
            self._hold_step = None
            return None
        key = (self.controller.step_index, len(self.controller.events))
        if self._hold_step != key:
            self._restore_electrical(start)
            self._electrical_step(t, step, 0.0)
            self._hold_step = key
        return self.cells.current.copy()

    def _save_electrical(self) -> dict:
        """Cell states at the start of a step (for step rejection; the potential is re-solved)."""
        if self.cells is None:
            return {}
        c = self.cells
        return {"state": c.state.copy(), "current": c.current.copy(), "T_mean": c.T_mean.copy()}

    def _restore_electrical(self, snap: dict) -> None:
        """Undo a rejected step: temperature iterate and cell states."""
        self.T_k.x.array[:] = self.th.T_n.x.array
        self.th.T.x.array[:] = self.th.T_n.x.array
        if self.cells is not None:
            c = self.cells
            c.state, c.current, c.T_mean = snap["state"].copy(), snap["current"].copy(), snap["T_mean"].copy()
            c.refresh()

    def _checkpoint(self, t: float, step: int, dt: float) -> None:
        """Write the restart state after ``step`` (collective)."""
        from busbarfem.io import checkpoint

        if self.outdir is None:
            return
        t0 = time.perf_counter()
        if self._ts is not None:
            self._ts.flush()
        mon = None
        if self._monitor is not None:
            mon = {"last": list(self._monitor._last) if self._monitor._last else None, "count": self._monitor._count}
        state = {"t": t, "step": step, "dt": self._next_dt, "rows": len(self.rows),
                 "cells": self.cells.state.to_dict() if self.cells is not None else None,
                 "controller": self.controller.state_dict(), "events": self.events, "monitor": mon,
                 "timings": self.timings, "fingerprint": self._fingerprint(),
                 "extrema": self.extrema.state_dict(self.bundle), "region_heat_J": self.region_heat_J}
        checkpoint.save(self.outdir, self.comm, self.th.T_n, state)
        self._tick("checkpoint", t0)

    def _fingerprint(self) -> dict:
        """What a checkpoint belongs to: case values and mesh (collective, computed once)."""
        from busbarfem.io import checkpoint

        if getattr(self, "_fp", None) is None:
            case_dir = self.source.directory if self.source is not None else None
            self._fp = {"case": checkpoint.case_fingerprint(self.case, case_dir),
                        "mesh": checkpoint.mesh_fingerprint(self.bundle, self.th.V)}
        return self._fp

    def restore(self, outdir: Path) -> None:
        """Verify and load a checkpoint from ``outdir`` (:meth:`setup` calls it when restarting).

        Raises:
            CaseError: the checkpoint is unreadable or belongs to another case or mesh.
        """
        from busbarfem.io import checkpoint

        fp = self._fingerprint()
        if self.comm.rank == 0:
            err = None
            try:
                checkpoint.verify_case(checkpoint.read_state(outdir), self.case,
                                       self.source.directory if self.source is not None else None, str(outdir))
            except CaseError as exc:
                err = exc.message
        else:
            err = None
        err = self.comm.bcast(err, root=0)
        if err:
            raise CaseError(err)
        state = checkpoint.load(outdir, self.comm, self.th.T_n, mesh_fp=fp["mesh"])
        lines = None
        if self.comm.rank == 0:
            ts = Path(outdir) / "timeseries.csv"
            lines = len(ts.read_text().splitlines()) if ts.is_file() else 0
        lines = self.comm.bcast(lines, root=0)
        if lines < int(state["rows"]) + 1:
            raise CaseError(f"{Path(outdir) / 'timeseries.csv'} has {max(lines - 1, 0)} rows but the checkpoint "
                            f"needs {int(state['rows'])}: the output folder was changed after the checkpoint; "
                            "run again without --restart")
        self.th.T.x.array[:] = self.th.T_n.x.array
        self.T_k.x.array[:] = self.th.T_n.x.array
        if self.cells is not None and state["cells"] is not None:
            from busbarfem.cells.ecm import ECMState

            self.cells.state = ECMState.from_dict(state["cells"])
        self.restart_state = state
        self.events = list(state.get("events", []))
        self.extrema.load_state_dict(state.get("extrema", {}))
        self.region_heat_J.update(state.get("region_heat_J", {}))

    def _cell_status(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell voltages and SOCs for the load controller (one pseudo-cell without cells)."""
        if self.cells is None:
            return np.array([np.nan]), np.array([0.5])
        return self.cells.cell_voltages(), self.cells.state.soc

    # ------------------------------------------------------------------ output
    def _write_fields(self, t: float) -> None:
        if self.writer is not None and getattr(self, "_last_written", None) != t:
            self._last_written = t
            t0 = time.perf_counter()
            self.writer.write(t)
            self._tick("output", t0)

    def _open_timeseries(self) -> None:
        """Open timeseries.csv; on restart keep exactly the rows up to the checkpoint."""
        self._ts = None
        if self.outdir is None:
            return
        path = self.outdir / "timeseries.csv"
        if self.restart_state is not None:
            n = int(self.restart_state["rows"])
            lines = self.comm.bcast(path.read_text().splitlines() if self.comm.rank == 0 else None, root=0)
            header = lines[0].split(",")
            for ln in lines[1:n + 1]:
                self.rows.append(dict(zip(header, (float(x) for x in ln.split(",")))))
            if self.comm.rank == 0:
                path.write_text("\n".join(lines[: n + 1]) + "\n")
                self._ts = open(path, "a", buffering=1)
        elif self.comm.rank == 0:
            self._ts = open(path, "w", buffering=1)

    def _record(self, t: float, sol, flows) -> None:
        """Append a time-series row: heat flows of the step just taken and the electrical
        state (terminal, cells) at time ``t``."""
        nown = self.th.V.dofmap.index_map.size_local
        T = self.th.T.x.array[:nown]
        tmax = self.comm.allreduce(float(T.max()) if nown else -np.inf, op=MPI.MAX)
        tmin = self.comm.allreduce(float(T.min()) if nown else np.inf, op=MPI.MIN)
        self._refresh_Jmag()
        nq = self.out_Jmag.function_space.dofmap.index_map.size_local
        jmax = self.comm.allreduce(float(self.out_Jmag.x.array[:nq].max()) if nq else -np.inf, op=MPI.MAX)
        for key, kind, value, fn in (("T_max", "max", tmax, self.th.T), ("T_min", "min", tmin, self.th.T),
                                     ("J_max", "max", jmax, self.out_Jmag)):
            self.extrema.offer(key, kind, value, t, fn)
        # heat per region and source of the step just taken, and its energy over the run
        # (rectangle rule, as the run's energy totals)
        heat = self.heat_by_region.by_region()
        dt = t - self.rows[-1]["time [s]"] if self.rows else t
        for r, q in heat["total"].items():
            self.region_heat_J[r] += q * dt
        self.last_region_heat = heat
        gen = flows.generated
        row = {"time [s]": t, "voltage [V]": sol.voltage, "current [A]": sol.current,
               "power [W]": sol.voltage * sol.current, "T_max [K]": tmax, "T_min [K]": tmin,
               "J_max [A/m^2]": jmax,
               "heat_generated [W]": gen, "heat_stored [W]": flows.stored,
               "heat_convection [W]": flows.convection, "heat_radiation [W]": flows.radiation,
               "heat_fixed_T [W]": flows.fixed_temperature, "heat_flux_in [W]": flows.flux_in,
               "energy_residual [W]": flows.residual,
               "energy_residual_rel [-]": flows.residual / max(abs(gen), abs(flows.stored),
                                                               abs(flows.convection) + abs(flows.fixed_temperature), 1e-300)}
        if self.cells is not None:
            c = self.cells
            V = c.cell_voltages()
            # electrochemical (enthalpy) power released = terminal power + all heat generated
            enth = self.comm.allreduce(fem.assemble_scalar(self._enthalpy_form), op=MPI.SUM)
            row["electrochemical_power [W]"] = enth
            # the heat of this step comes from the same electrical solve: gen is consistent
            row["electrical_residual [W]"] = enth - sol.voltage * sol.current - gen
            for i, n in enumerate(c.names):
                row[f"I_{n} [A]"] = c.current[i]
                row[f"V_{n} [V]"] = V[i]
                row[f"SOC_{n} [-]"] = c.state.soc[i]
                row[f"T_mean_{n} [K]"] = c.T_mean[i]
                row[f"q_irr_{n} [W]"] = heat["irreversible"][n]
                row[f"q_rev_{n} [W]"] = heat["reversible"][n]
        self.last_flows = flows
        self.last_solution = sol
        self.rows.append(row)
        if self._ts is not None:
            if len(self.rows) == 1 and self.restart_state is None:
                self._ts.write(",".join(row) + "\n")
            self._ts.write(",".join(f"{v:.15g}" for v in row.values()) + "\n")
        if self.progress is not None and self.comm.rank == 0:
            self.progress(row)

    def _hot_location(self) -> dict:
        ext = extremum(self.bundle, self.th.T, "max")
        return {"T_max_K": ext["value"], "x": ext["x"], "region": ext["region"]}

    def summary(self) -> dict:
        """The summary.json content (identical on every rank).

        ``T_max``, ``T_min``, ``J_max``: extrema over the whole run (every recorded time),
        with place, region and ``time_s``; ``*_final``: the same at the last time. Heat,
        terminal and resistance values are those of the last recorded time.
        """
        b = self.bundle
        out: dict = {"case": self.case.name, "stop_reason": self.stop_reason, "mpi_size": self.comm.size,
                     "dofs": {"electrical": self.el.ndofs, "thermal": self.th.ndofs},
                     "mesh_cells": b.mesh.topology.index_map(3).size_global,
                     "element_order": b.element_order}
        if self.runaway is not None:
            out["runaway"] = self.runaway
        if not self.rows:
            return out
        sol = self.last_solution
        self._refresh_Jmag()
        t_last = self.rows[-1]["time [s]"]
        extrema = {}
        for key, kind, fn in (("T_max", "max", self.th.T), ("T_min", "min", self.th.T),
                              ("J_max", "max", self.out_Jmag)):
            final = {**extremum(b, fn, kind), "time_s": t_last}
            # the field at the end (after a runaway: the rejected step) counts for the run too
            self.extrema.offer(key, kind, final["value"], t_last, fn)
            extrema[key] = self.extrema.result(b, key)
            extrema[f"{key}_final"] = final
        heat = self.last_region_heat
        joule = heat["joule"]
        flows = self.last_flows
        sources = [k for k in heat if k != "total"]
        by_region = {r: {**{f"{k}_W": heat[k][r] for k in sources}, "total_W": heat["total"][r]}
                     for r in heat["total"]}
        module = self.cells is not None
        out.update({
            "terminal": {"voltage_V": sol.voltage, "current_A": sol.current,
                         # V/I is a resistance only without cells (their EMF drives the current)
                         "resistance_ohm": sol.voltage / sol.current if sol.current and not module else None,
                         "power_W": sol.voltage * sol.current},
            "resistance": self._resistances(sol.current, heat),
            "joule_power_W": {"total": sum(joule.values()), "by_region": joule},
            "heat": {"generated_W": flows.generated, "stored_W": flows.stored,
                     "convection_W": flows.convection, "radiation_W": flows.radiation,
                     "fixed_temperature_W": flows.fixed_temperature, "flux_in_W": flows.flux_in,
                     "energy_balance_residual_W": flows.residual,
                     "energy_balance_residual_rel": flows.residual / flows.generated if flows.generated else 0.0,
                     "by_source_W": {k: sum(heat[k].values()) for k in sources},
                     "by_region": by_region},
            **extrema,
            "timings_s": self.timings,
            # this process's linear solves (a restarted run counts from the restart)
            "linear_solvers": {"electrical": self.el.stats.to_dict(), "thermal": self.th.stats.to_dict()},
        })
        if hasattr(self, "convergence"):
            out["convergence"] = self.convergence
        out["energy"] = self._energy_totals()
        if self.events:
            out["events"] = self.events
        if self.cells is not None:
            c = self.cells
            V = c.cell_voltages()
            R0 = c.R0()
            out["cells"] = {n: {"current_A": float(c.current[i]), "voltage_V": float(V[i]),
                                "soc": float(c.state.soc[i]), "T_mean_K": float(c.T_mean[i]),
                                "heat_irreversible_W": heat["irreversible"][n],
                                "heat_reversible_W": heat["reversible"][n],
                                "heat_joule_W": joule[n], "heat_W": heat["total"][n],
                                "R0_ohm": float(R0[i])}
                            for i, n in enumerate(c.names)}
            out["module"] = {"n_series": c.n_series, "n_parallel": c.n_parallel}
        return out

    def _resistances(self, current: float, heat: dict) -> dict:
        """Loss-equivalent resistances at the last time [ohm] (None at zero current).

        ``interconnect_ohm``: Joule power of the passive conductors (busbars, tabs, welds,
        bolts: every region that is not a cell) / I^2. With cells also ``cells_ohm`` (their
        irreversible heat plus collector Joule heat / I^2, the cells' DC loss resistance
        including polarisation), ``cells_R0_ohm`` (the series-parallel combination of the
        cells' ECM ohmic resistances R0 at their SOC and temperature) and ``total_loss_ohm``.
        """
        b = self.bundle
        I2 = current * current
        joule = heat["joule"]
        passive = sum(v for r, v in joule.items() if b.regions[r].kind != "cell")
        out = {"interconnect_ohm": passive / I2 if I2 else None}
        if self.cells is not None:
            c = self.cells
            cells = sum(heat["irreversible"][n] + joule[n] for n in c.names)
            R0 = c.R0()
            out["cells_ohm"] = cells / I2 if I2 else None
            out["cells_R0_ohm"] = float(sum(1.0 / np.sum(1.0 / R0[c.stages == s])
                                            for s in range(1, c.n_series + 1)))
            out["total_loss_ohm"] = (passive + cells) / I2 if I2 else None
        return out

    def _energy_totals(self) -> dict:
        """Time-integrated energy accounting over the run [J] (steady: rates [W])."""
        rows = self.rows
        if len(rows) < 2 or self.case.solver.analysis == "steady":
            r = rows[-1]
            return {"thermal_residual_rel": abs(r["energy_residual [W]"]) / max(abs(r["heat_generated [W]"]), 1e-300)}
        t = np.array([r["time [s]"] for r in rows])
        dt = np.diff(np.concatenate([[0.0], t])) if t[0] > 0 else np.diff(t, prepend=t[0])

        def total(key):
            return float(np.sum(np.array([r[key] for r in rows]) * dt))

        gen = total("heat_generated [W]")
        out = {"heat_generated_J": gen, "heat_stored_J": total("heat_stored [W]"),
               "heat_removed_J": total("heat_convection [W]") + total("heat_radiation [W]") + total("heat_fixed_T [W]"),
               "electrical_energy_out_J": total("power [W]"),
               "charge_out_Ah": total("current [A]") / 3600.0}
        res = total("energy_residual [W]")
        out["thermal_residual_J"] = res
        out["heat_by_region_J"] = dict(self.region_heat_J)
        out["thermal_residual_rel"] = abs(res) / max(abs(gen), 1e-300)
        if "electrical_residual [W]" in rows[-1]:
            eres = total("electrical_residual [W]")
            out["electrochemical_energy_J"] = total("electrochemical_power [W]")
            out["electrical_residual_J"] = eres
            out["electrical_residual_rel"] = abs(eres) / max(abs(gen), 1e-300)
        return out

    def close(self) -> None:
        """Close open files."""
        if getattr(self, "_ts", None) is not None:
            self._ts.close()
            self._ts = None
