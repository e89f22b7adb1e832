"""``busbarfem run --lumped``: the module as a lumped circuit (no mesh, seconds to run).

Uses the case's ``geometry.module`` (n_s, m_p, PCU, cell format), ``cell`` and ``load``
sections with :func:`busbarfem.cells.lumped.run_lumped` (the V_K / I_j formulas of AcuSolve's
BATTERY_MODULE
with the same ECM and load controller as the 3D solver) and a lumped thermal model per
cell from the first convection boundary condition. Writes ``timeseries.csv`` (the same
column names as a 3D run) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from busbarfem import naming
from busbarfem.errors import CaseError


def cell_volume_area(cell_geom) -> tuple[float, float]:
    """Volume [m^3] and outer area [m^2] of one cell body (the 3D model's ``cell_<s>_<p>``
    region) from its geometry section: a cylinder (radius, height), a prismatic box
    (width, depth, height) or a pouch box (width, height, thickness)."""
    if cell_geom.type == "cylindrical":
        r, h = cell_geom.dimensions()
        return math.pi * r * r * h, 2 * math.pi * r * h + 2 * math.pi * r * r
    if cell_geom.type == "prismatic":
        a, b, c = cell_geom.width, cell_geom.depth, cell_geom.height
    elif cell_geom.type == "pouch":
        a, b, c = cell_geom.width, cell_geom.height, cell_geom.thickness
    else:
        raise CaseError(f"--lumped cannot size a '{cell_geom.type}' cell (cylindrical, prismatic and pouch only)")
    return a * b * c, 2 * (a * b + b * c + a * c)


def run_lumped_case(case, source, outdir: Path) -> dict:
    """Run the lumped model of the case's module and write the outputs (rank 0 only)."""
    from busbarfem.cells.lumped import LumpedThermal, run_lumped

    mod = case.geometry.module
    if mod is None or case.cell is None:
        raise source.error("--lumped needs a geometry.module section and a cell section", "geometry.module")
    if getattr(case, "cooling", None) is not None:
        raise source.error("--lumped has no cold plates or coolant channels; run the 3D model "
                           "(without --lumped) or remove the cooling: section", "cooling")
    if case.cell.model == "pybamm":
        raise source.error("--lumped uses the ECM; cell.model: pybamm runs in 3D only (busbarfem run "
                           "without --lumped)", "cell.model")
    # the cell body of the module geometry, as the 3D model meshes it: its volume (heat
    # capacity rho cp V) and outer area, not the preset's cell.volume / cell.surface_area
    # (an LG_M50 preset on a 100 x 120 x 8 mm pouch would give a 4x smaller heat capacity)
    vol, area = cell_volume_area(mod.cell)
    # one lumped h A per cell: the first convection condition (fixed-temperature plates
    # are not represented in the lumped model)
    conv = [bc for bc in case.thermal.boundaries if bc.type == "convection"]
    thermal = None
    if conv:
        thermal = LumpedThermal(h=conv[0].h, T_ambient=case.thermal.ambient_of(conv[0]), T_initial=case.thermal.initial_temperature,
                                area=area, volume=vol)
    s = case.solver
    res = run_lumped(case.cell, case.load, mod.series, mod.parallel, pcu=mod.parallel_connected_units,
                     t_end=s.t_end or 48 * 3600.0, dt=s.dt_max or s.dt, thermal=thermal,
                     event_tolerance=s.event_tolerance)
    cols = res.columns()
    keys = list(cols)
    table = np.column_stack([np.asarray(cols[k], dtype=float) for k in keys])
    with open(outdir / "timeseries.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for row in table:
            f.write(",".join(f"{v:.15g}" for v in row) + "\n")
    summary = lumped_summary(case, res)
    summary["lumped_thermal"] = None if thermal is None else {
        "cell_volume_m3": vol, "cell_area_m2": area, "h_W_m2K": thermal.h,
        "heat_capacity_J_K": case.cell.rho * case.cell.cp * vol}
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _extreme(res, values: np.ndarray, kind: str, final: bool = False) -> dict:
    """``{value, time_s, region}`` of the max/min of a (n_t, n_s, n_p) series over the run
    (ties keep the earliest time), or at the last time with ``final``."""
    k0 = len(values) - 1 if final else 0
    sub = values[k0:]
    k, si, p = np.unravel_index(int(np.argmax(sub) if kind == "max" else np.argmin(sub)), sub.shape)
    return {"value": float(sub[k, si, p]), "time_s": float(res.time[k0 + k]),
            "region": naming.cell(int(si) + 1, int(p) + 1)}


def lumped_summary(case, res) -> dict:
    """The summary.json content of a lumped run (keys as in a 3D run where they apply).

    ``T_max``/``T_min``/``cell_current_max`` are extrema over the run (cell temperature,
    cell |current|) with time and cell; ``T_max_final``/``T_min_final`` at the last time.
    Terminal, heat and resistance values are those of the last time. There is no place
    (``x``) in a lumped model: the region is the cell.
    """
    from busbarfem.cells.ecm import CellParameters
    from busbarfem.coupling.records import cell_summary

    ns, npar = res.n_series, res.n_parallel
    names = [naming.cell(si + 1, p + 1) for si in range(ns) for p in range(npar)]
    qi, qr = res.cell_heat_irreversible[-1].ravel(), res.cell_heat_reversible[-1].ravel()
    R0 = CellParameters(case.cell, ns * npar).R0(res.cell_soc[-1].ravel(), res.cell_temperature[-1].ravel())
    I = float(res.module_current[-1])
    I2 = I * I
    # heat energy per cell over the run: each row holds the heat of the step ending there
    dt = np.diff(res.time, prepend=res.time[0])
    heat_J = (res.cell_heat * dt[:, None, None]).sum(axis=0).ravel()
    stage_R0 = R0.reshape(ns, npar)
    return {
        "case": case.name, "model": "lumped circuit (no mesh)", "stop_reason": res.stop_reason,
        "module": {"n_series": ns, "n_parallel": npar, "pcu": res.pcu},
        "terminal": {"voltage_V": float(res.module_voltage[-1]), "current_A": I,
                     "power_W": float(res.module_power[-1])},
        # the lumped circuit has ideal (zero-resistance) interconnects
        "resistance": {"interconnect_ohm": 0.0, "cells_ohm": float(qi.sum()) / I2 if I2 else None,
                       "cells_R0_ohm": float(np.sum(1.0 / np.sum(1.0 / stage_R0, axis=1))),
                       "total_loss_ohm": float(qi.sum()) / I2 if I2 else None},
        "heat": {"generated_W": float(qi.sum() + qr.sum()),
                 "by_source_W": {"irreversible": float(qi.sum()), "reversible": float(qr.sum())},
                 "by_region": {n: {"irreversible_W": float(qi[i]), "reversible_W": float(qr[i]),
                                   "total_W": float(qi[i] + qr[i])} for i, n in enumerate(names)}},
        "energy": {"charge_out_Ah": res.discharged_Ah, "heat_generated_J": float(heat_J.sum()),
                   "heat_by_region_J": {n: float(heat_J[i]) for i, n in enumerate(names)}},
        "T_max": _extreme(res, res.cell_temperature, "max"),
        "T_max_final": _extreme(res, res.cell_temperature, "max", final=True),
        "T_min": _extreme(res, res.cell_temperature, "min"),
        "T_min_final": _extreme(res, res.cell_temperature, "min", final=True),
        "cell_current_max": _extreme(res, np.abs(res.cell_current), "max"),
        "cells": {n: cell_summary(res.cell_current[-1].ravel()[i], res.cell_voltage[-1].ravel()[i],
                                  res.cell_soc[-1].ravel()[i], res.cell_temperature[-1].ravel()[i],
                                  qi[i], qr[i], R0[i], qi[i] + qr[i]) for i, n in enumerate(names)},
        "events": [e.to_dict() for e in res.events]}
