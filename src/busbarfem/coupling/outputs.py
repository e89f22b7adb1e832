"""Output writers of a 3D run, fed from step records.

* :class:`OutputFields`: the written Functions (T, phi, |J|, J, q, SOC, ...) and their
  refreshers, from the model's public fields;
* :class:`FieldOutput`: the XDMF file (:class:`busbarfem.io.fields.FieldWriter`), one write per time;
* :class:`Recorder`: turns a solved time into a :class:`~busbarfem.coupling.records.StepRecord`
  (terminal values, extrema, heat flows, heat per region and source, contribution
  columns) and keeps the run's extrema and heat per region;
* :class:`TimeSeries`: the rows and ``timeseries.csv`` (rank 0), restart-aware;
* :func:`build_summary`: the ``summary.json`` content from the last record.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl

from dolfinx import fem

from busbarfem.analysis.regions import RunExtrema, extremum
from busbarfem.coupling.model import CoupledModel, global_max, global_min
from busbarfem.coupling.records import StepRecord


class OutputFields:
    """The Functions written to ``fields.xdmf`` and the derived fields of the summary.

    XDMF stores nodal fields at the mesh's geometry degree (P1 on straight-sided
    tetrahedra, P2 on curved 10-node ones): T and phi are written at their own degree
    when it matches, else interpolated into that space.
    """

    def __init__(self, model: CoupledModel):
        from busbarfem.io.fields import interpolator

        b, el, th = model.bundle, model.electrical, model.thermal
        msh = b.mesh
        self.model = model
        Q0 = b.space("DG", 0)
        deg = msh.geometry.cmaps[0].degree
        Pg = b.space("Lagrange", deg)
        same = b.element_order == deg
        self.T = th.T if same else fem.Function(Pg, name="T")
        self.J_magnitude = fem.Function(Q0, name="J_magnitude")
        J = el.current_density()
        self.refresh_J_magnitude = interpolator(self.J_magnitude, ufl.sqrt(ufl.inner(J, J)))
        self.refresh_T = None if self.T is th.T else interpolator(self.T, th.T)
        cells = model.cells
        if cells is not None:
            self.soc = fem.Function(Q0, name="SOC")
        self._functions: dict | None = None

    @property
    def functions(self) -> dict:
        """name -> (Function, refresher or None) of every written field.

        Built on first use (by the field writer): a run without field output never
        allocates the written-only fields (J, q, region_id, ...).
        """
        if self._functions is None:
            self._functions = self._build_functions()
        return self._functions

    def _build_functions(self) -> dict:
        from busbarfem.io.fields import interpolator, region_id_function

        model = self.model
        b, el = model.bundle, model.electrical
        Q0, Q0v = b.space("DG", 0), b.space("DG", 0, (3,))
        Pg = b.space("Lagrange", b.mesh.geometry.cmaps[0].degree)
        same = self.T is model.thermal.T
        J = el.current_density()
        out_J = fem.Function(Q0v, name="J")
        out_q = fem.Function(Q0, name="q")
        fields = {"T": (self.T, self.refresh_T), "J_magnitude": (self.J_magnitude, self.refresh_J_magnitude),
                  "J": (out_J, interpolator(out_J, J)), "q": (out_q, interpolator(out_q, model.q_expr))}
        if el.nfields == 1:
            phi = el.phi if same else fem.Function(Pg, name="phi")
            fields["phi"] = (phi, None if phi is el.phi else interpolator(phi, el.phi))
        else:
            for f in range(2):
                pf = fem.Function(Pg, name=f"phi{f + 1}")
                fields[f"phi{f + 1}"] = (pf, interpolator(pf, el.phi[f]))
        if model.cells is not None:
            out_j = fem.Function(Q0, name="transfer_current")
            fields["transfer_current"] = (out_j, interpolator(out_j, el.transfer_current()))
            fields["SOC"] = (self.soc, self._refresh_soc)
        fields["region_id"] = (region_id_function(b), None)
        return fields

    def _refresh_soc(self) -> None:
        """Cell SOC as a DG0 field (-1 outside the cells)."""
        cells = self.model.cells
        self.soc.x.array[:] = -1.0
        for i, n in enumerate(cells.names):
            self.soc.x.array[self.model.bundle.cells_of(n)] = cells.soc[i]
        self.soc.x.scatter_forward()

    def refresh_for_hotspots(self) -> None:
        """Bring the nodal T and the DG0 |J| up to date (collective)."""
        self.refresh_J_magnitude()
        if self.refresh_T is not None:
            self.refresh_T()


class FieldOutput:
    """``fields.xdmf`` (a restart continues in ``fields_restart<k>.xdmf``); one write per time."""

    def __init__(self, comm, mesh, outdir: Path, fields: OutputFields, restarting: bool, timings):
        from busbarfem.io.fields import FieldWriter

        name = "fields.xdmf"
        if restarting:
            # a restart keeps the original file intact and continues in a new one
            k = 1
            while (outdir / f"fields_restart{k}.xdmf").exists():
                k += 1
            name = f"fields_restart{k}.xdmf"
        self.writer = FieldWriter(comm, mesh, outdir / name, fields.functions)
        self.timings = timings
        self._last: float | None = None

    def write(self, t: float) -> None:
        """Append every field at ``t`` (once per time)."""
        if self._last != t:
            self._last = t
            t0 = time.perf_counter()
            self.writer.write(t)
            self.timings.tick("output", t0)


class TimeSeries:
    """The recorded rows and ``timeseries.csv`` (written on rank 0, line-buffered).

    Args:
        comm: communicator.
        outdir: output folder (None: rows in memory only).
        restart_rows: on a restart, keep exactly this many rows of the existing file.
    """

    def __init__(self, comm, outdir: Path | None, restart_rows: int | None = None):
        self.comm = comm
        self.rows: list[dict] = []
        self.restarted = restart_rows is not None
        self._file = None
        if outdir is None:
            return
        path = outdir / "timeseries.csv"
        if restart_rows is not None:
            lines = comm.bcast(path.read_text().splitlines() if comm.rank == 0 else None, root=0)
            header = lines[0].split(",")
            for ln in lines[1:restart_rows + 1]:
                self.rows.append(dict(zip(header, (float(x) for x in ln.split(",")))))
            if comm.rank == 0:
                path.write_text("\n".join(lines[: restart_rows + 1]) + "\n")
                self._file = open(path, "a", buffering=1)
        elif comm.rank == 0:
            self._file = open(path, "w", buffering=1)

    def append(self, row: dict) -> None:
        """Add a row (the header goes first in a new file)."""
        self.rows.append(row)
        if self._file is not None:
            if len(self.rows) == 1 and not self.restarted:
                self._file.write(",".join(row) + "\n")
            self._file.write(",".join(f"{v:.15g}" for v in row.values()) + "\n")

    def flush(self) -> None:
        """Flush the file (before a checkpoint)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def energy_totals(self, steady: bool, region_heat_J: dict) -> dict:
        """Time-integrated energy accounting over the run [J] (steady: rates [W])."""
        rows = self.rows
        if len(rows) < 2 or steady:
            r = rows[-1]
            return {"thermal_residual_rel": abs(r["energy_residual [W]"]) / max(abs(r["heat_generated [W]"]), 1e-300)}
        t = np.array([r["time [s]"] for r in rows])
        dt = np.diff(np.concatenate([[0.0], t])) if t[0] > 0 else np.diff(t, prepend=t[0])

        def total(key):
            return float(np.sum(np.array([r[key] for r in rows]) * dt))

        gen = total("heat_generated [W]")
        out = {"heat_generated_J": gen, "heat_stored_J": total("heat_stored [W]"),
               "heat_removed_J": total("heat_convection [W]") + total("heat_radiation [W]") + total("heat_fixed_T [W]")
               + (total("heat_coolant [W]") if "heat_coolant [W]" in rows[-1] else 0.0),
               "electrical_energy_out_J": total("power [W]"),
               "charge_out_Ah": total("current [A]") / 3600.0}
        res = total("energy_residual [W]")
        out["thermal_residual_J"] = res
        out["heat_by_region_J"] = dict(region_heat_J)
        out["thermal_residual_rel"] = abs(res) / max(abs(gen), 1e-300)
        if "electrical_residual [W]" in rows[-1]:
            eres = total("electrical_residual [W]")
            out["electrochemical_energy_J"] = total("electrochemical_power [W]")
            out["electrical_residual_J"] = eres
            out["electrical_residual_rel"] = abs(eres) / max(abs(gen), 1e-300)
        return out


class Recorder:
    """Builds the :class:`StepRecord` of a solved time and keeps the run's extrema and
    heat per region (both part of a checkpoint)."""

    def __init__(self, model: CoupledModel, fields: OutputFields):
        self.model, self.fields = model, fields
        self.extrema = RunExtrema()
        self.region_heat_J = dict.fromkeys(model.bundle.volume_names(), 0.0)
        self.last: StepRecord | None = None

    def record(self, t: float, step: int, t_prev: float | None, sol, flows) -> StepRecord:
        """The record at ``t``: heat flows of the step just taken (from ``t_prev``; None: the
        first record) and the electrical state at ``t``."""
        m = self.model
        comm, th = m.comm, m.thermal
        T = th.owned()
        tmax, tmin = global_max(comm, T), global_min(comm, T)
        self.fields.refresh_J_magnitude()
        Jm = self.fields.J_magnitude
        jmax = global_max(comm, Jm.x.array[:Jm.function_space.dofmap.index_map.size_local])
        for key, kind, value, fn in (("T_max", "max", tmax, th.T), ("T_min", "min", tmin, th.T),
                                     ("J_max", "max", jmax, Jm)):
            self.extrema.offer(key, kind, value, t, fn)
        # heat per region and source of the step just taken, and its energy over the run
        # (rectangle rule, as the run's energy totals)
        heat = m.heat_by_region.by_region()
        dt = t - t_prev if t_prev is not None else t
        for r, q in heat["total"].items():
            self.region_heat_J[r] += q * dt
        gen = flows.generated
        row = {"time [s]": t, "voltage [V]": sol.voltage, "current [A]": sol.current,
               "power [W]": sol.voltage * sol.current, "T_max [K]": tmax, "T_min [K]": tmin,
               "J_max [A/m^2]": jmax,
               "heat_generated [W]": gen, "heat_stored [W]": flows.stored,
               "heat_convection [W]": flows.convection, "heat_radiation [W]": flows.radiation,
               "heat_fixed_T [W]": flows.fixed_temperature, "heat_flux_in [W]": flows.flux_in}
        if th.has_coolant:  # heat taken up by coolant channels (cooling: section)
            row["heat_coolant [W]"] = flows.coolant
        row.update({"energy_residual [W]": flows.residual,
                    "energy_residual_rel [-]": flows.residual / max(
                        abs(gen), abs(flows.stored), abs(flows.convection) + abs(flows.fixed_temperature)
                        + abs(flows.coolant), 1e-300)})
        if "enthalpy" in m.heat_by_region.extra_totals:
            # electrochemical (enthalpy) power released = terminal power + all heat generated
            # (integrated in the region breakdown's assembly)
            enth = m.heat_by_region.extra_totals["enthalpy"]
            row["electrochemical_power [W]"] = enth
            # the heat of this step comes from the same electrical solve: gen is consistent
            # (less the contributions' heat that is not electrical, e.g. abuse reactions)
            other = sum(sum(heat[name].values()) for c in m.contributions for name in c.non_electrical_heat
                        if name in heat)
            row["electrical_residual [W]"] = enth - sol.voltage * sol.current - (gen - other)
        for c in m.contributions:
            row.update(c.columns(heat))
        self.last = StepRecord(t=t, step=step, dt=dt, solution=sol, flows=flows, heat=heat, row=row)
        return self.last

    def state_dict(self) -> dict:
        """Run extrema and heat per region for a checkpoint (collective)."""
        return {"extrema": self.extrema.state_dict(self.model.bundle), "region_heat_J": self.region_heat_J}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.extrema.load_state_dict(state.get("extrema", {}))
        self.region_heat_J.update(state.get("region_heat_J", {}))


def hot_location(model: CoupledModel) -> dict:
    """Place and region of the temperature maximum (collective)."""
    ext = extremum(model.bundle, model.thermal.T, "max")
    return {"T_max_K": ext["value"], "x": ext["x"], "region": ext["region"]}


def resistances(model: CoupledModel, current: float, heat: dict) -> dict:
    """Loss-equivalent resistances at the last time [ohm] (None at zero current).

    ``interconnect_ohm``: Joule power of the passive conductors (busbars, tabs, welds,
    bolts: every region that is not a cell) / I^2. With cells also ``cells_ohm`` (their
    irreversible heat plus collector Joule heat / I^2, the cells' DC loss resistance
    including polarisation), ``cells_R0_ohm`` (the series-parallel combination of the
    cells' ECM ohmic resistances R0 at their SOC and temperature) and ``total_loss_ohm``.
    """
    b = model.bundle
    I2 = current * current
    joule = heat["joule"]
    passive = sum(v for r, v in joule.items() if b.regions[r].kind != "cell")
    out = {"interconnect_ohm": passive / I2 if I2 else None}
    c = model.cells
    if c is not None:
        cells = sum(heat["irreversible"][n] + joule[n] for n in c.names)
        R0 = c.R0()
        out["cells_ohm"] = cells / I2 if I2 else None
        out["cells_R0_ohm"] = float(sum(1.0 / np.sum(1.0 / R0[c.stages == s]) for s in range(1, c.n_series + 1)))
        out["total_loss_ohm"] = (passive + cells) / I2 if I2 else None
    return out


def build_summary(model: CoupledModel, recorder: Recorder, series: TimeSeries, *, stop_reason: str,
                  runaway: dict | None, events: list, timings: dict, convergence: dict | None) -> dict:
    """The summary.json content (identical on every rank; collective).

    ``T_max``, ``T_min``, ``J_max``: extrema over the whole run (every recorded time),
    with place, region and ``time_s``; ``*_final``: the same at the last time. Heat,
    terminal and resistance values are those of the last recorded time.
    """
    b, comm = model.bundle, model.comm
    out: dict = {"case": model.case.name, "stop_reason": stop_reason, "mpi_size": comm.size,
                 "dofs": {"electrical": model.electrical.ndofs, "thermal": model.thermal.ndofs},
                 "mesh_cells": b.mesh.topology.index_map(3).size_global,
                 "element_order": b.element_order}
    if runaway is not None:
        out["runaway"] = runaway
    rec = recorder.last
    if not series.rows or rec is None:
        return out
    sol = rec.solution
    fields = recorder.fields
    fields.refresh_J_magnitude()
    t_last = series.rows[-1]["time [s]"]
    extrema = {}
    for key, kind, fn in (("T_max", "max", model.thermal.T), ("T_min", "min", model.thermal.T),
                          ("J_max", "max", fields.J_magnitude)):
        final = {**extremum(b, fn, kind), "time_s": t_last}
        # the field at the end (after a runaway: the rejected step) counts for the run too
        recorder.extrema.offer(key, kind, final["value"], t_last, fn)
        extrema[key] = recorder.extrema.result(b, key)
        extrema[f"{key}_final"] = final
    heat = rec.heat
    joule = heat["joule"]
    flows = rec.flows
    sources = [k for k in heat if k != "total"]
    by_region = {r: {**{f"{k}_W": heat[k][r] for k in sources}, "total_W": heat["total"][r]}
                 for r in heat["total"]}
    module = model.cells is not None
    out.update({
        "terminal": {"voltage_V": sol.voltage, "current_A": sol.current,
                     # V/I is a resistance only without cells (their EMF drives the current)
                     "resistance_ohm": sol.voltage / sol.current if sol.current and not module else None,
                     "power_W": sol.voltage * sol.current},
        "resistance": resistances(model, sol.current, heat),
        "joule_power_W": {"total": sum(joule.values()), "by_region": joule},
        "heat": {"generated_W": flows.generated, "stored_W": flows.stored,
                 "convection_W": flows.convection, "radiation_W": flows.radiation,
                 "fixed_temperature_W": flows.fixed_temperature, "flux_in_W": flows.flux_in,
                 **({"coolant_W": flows.coolant} if model.thermal.has_coolant else {}),
                 "energy_balance_residual_W": flows.residual,
                 "energy_balance_residual_rel": flows.residual / flows.generated if flows.generated else 0.0,
                 "by_source_W": {k: sum(heat[k].values()) for k in sources},
                 "by_region": by_region},
        **extrema,
        "timings_s": timings,
        # this process's linear solves (a restarted run counts from the restart)
        "linear_solvers": {"electrical": model.electrical.stats.to_dict(), "thermal": model.thermal.stats.to_dict()},
    })
    if model.electrical.reduced is not None:
        out["linear_solvers"]["electrical_reduced"] = model.electrical.reduced.to_dict()
    if convergence is not None:
        out["convergence"] = convergence
    out["energy"] = series.energy_totals(model.case.solver.analysis == "steady", recorder.region_heat_J)
    if events:
        out["events"] = events
    for c in model.contributions:
        if c.summary_key is not None:
            out[c.summary_key] = c.summary(heat)
    if module:
        out["module"] = {"n_series": model.cells.n_series, "n_parallel": model.cells.n_parallel}
    return out


def write_summary(comm, outdir: Path | None, summary: dict) -> dict:
    """Write ``summary.json`` on rank 0 (when there is an output folder); returns ``summary``."""
    if outdir is not None and comm.rank == 0:
        (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
