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
    """Volume [m^3] and outer area [m^2] of one cell body from its geometry section."""
    if getattr(cell_geom, "type", "cylindrical") == "cylindrical":
        r, h = cell_geom.dimensions()
        return math.pi * r * r * h, 2 * math.pi * r * h + 2 * math.pi * r * r
    dims = [getattr(cell_geom, k, None) for k in ("width", "depth", "height")]
    if None in dims:
        raise CaseError(f"--lumped cannot size a '{cell_geom.type}' cell; give cell.volume and cell.surface_area")
    a, b, c = dims
    return a * b * c, 2 * (a * b + b * c + a * c)


def run_lumped_case(case, source, outdir: Path) -> dict:
    """Run the lumped model of the case's module and write the outputs (rank 0 only)."""
    from busbarfem.cells.lumped import LumpedThermal, run_lumped

    mod = case.geometry.module
    if mod is None or case.cell is None:
        raise source.error("--lumped needs a geometry.module section and a cell section", "geometry.module")
    vol, area = cell_volume_area(mod.cell)
    # one lumped h A per cell: the first convection condition (fixed-temperature plates
    # are not represented in the lumped model)
    conv = [bc for bc in case.thermal.boundaries if bc.type == "convection"]
    thermal = None
    if conv:
        Ta = conv[0].T_amb or case.thermal.ambient_temperature
        thermal = LumpedThermal(h=conv[0].h, T_ambient=Ta, T_initial=case.thermal.initial_temperature,
                                area=case.cell.surface_area or area, volume=case.cell.volume or vol)
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
    charge = res.discharged_Ah
    summary = {"case": case.name, "model": "lumped circuit (no mesh)", "stop_reason": res.stop_reason,
               "module": {"n_series": res.n_series, "n_parallel": res.n_parallel, "pcu": res.pcu},
               "terminal": {"voltage_V": float(res.module_voltage[-1]), "current_A": float(res.module_current[-1]),
                            "power_W": float(res.module_power[-1])},
               "energy": {"charge_out_Ah": charge},
               "T_max": {"value": float(res.cell_temperature.max()), "time_s": float(
                   res.time[np.unravel_index(np.argmax(res.cell_temperature), res.cell_temperature.shape)[0]]),
                   "region": naming.cell(*[int(i) + 1 for i in np.unravel_index(
                       np.argmax(res.cell_temperature), res.cell_temperature.shape)[1:]])},
               "cells": {naming.cell(si + 1, p + 1): {"current_A": float(res.cell_current[-1, si, p]),
                                                     "voltage_V": float(res.cell_voltage[-1, si, p]),
                                                     "soc": float(res.cell_soc[-1, si, p]),
                                                     "T_mean_K": float(res.cell_temperature[-1, si, p])}
                         for si in range(res.n_series) for p in range(res.n_parallel)},
               "events": [e.to_dict() if hasattr(e, "to_dict") else e for e in getattr(res, "events", [])]}
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
