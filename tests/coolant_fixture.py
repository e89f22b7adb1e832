"""A small cold plate heated on top with one straight water channel, solved steady.

Shared by the coupling verification (serial) and its ``mpirun -n 2`` twin; run as a script it
prints the result as JSON (rank 0).
"""

from __future__ import annotations

import json
import sys

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI

from busbarfem.case.cooling import Cooling
from busbarfem.geometry.coldplate import mesh_cold_plate, plates_from_case
from busbarfem.physics.cooling import CoolantContribution, circuits_from_case, solve_coupled
from busbarfem.physics.thermal import ThermalProblem

LX, LY, TH, D = 0.06, 0.02, 0.006, 0.003
FLUX = 2.0e4  # W/m^2 on the top face
M_DOT, T_IN = 2.0e-3, 293.15


def build(comm=MPI.COMM_WORLD, k_plate: float = 1.0e4, n_segments: int = 6, size: float = 0.003,
          wall_size: float = 0.0008, inlet: dict | None = None):
    """Mesh the plate and set up the coupled problem: (thermal problem, coolant contribution)."""
    # built from the case-file models, so the converters are exercised too
    cooling = Cooling.model_validate({
        "plates": [{"name": "plate", "material": "aluminium", "origin": [0.0, 0.0, 0.0], "size": [LX, LY],
                    "thickness": TH, "channels": [{"name": "c1", "diameter": D, "segments_per_run": n_segments,
                                                   "path": [[0.0, LY / 2, TH / 2], [LX, LY / 2, TH / 2]]}]}],
        "circuits": [{"name": "loop1", "coolant": "water", "plate": "plate", "channels": ["c1"],
                      "inlet": inlet or {"temperature": T_IN, "mass_flow": M_DOT}}]})
    (spec,) = plates_from_case(cooling)
    bundle = mesh_cold_plate(spec, comm, size, wall_size)
    cool = CoolantContribution(circuits_from_case(cooling))
    robin = cool.build(bundle)
    top = bundle.facets_of("plate_top")
    thermal = ThermalProblem(bundle, {"plate": ((k_plate,) * 3, 2700.0, 900.0)},
                             [("heat_flux", top, {"flux": FLUX})], source=0.0, T0=T_IN, order=1,
                             solver="lu", prefix="cool_fixture_", robin_terms=robin)
    cool.attach(thermal)
    return thermal, cool


def run(comm=MPI.COMM_WORLD, k_plate: float = 1.0e4, n_segments: int = 6, size: float = 0.003,
        wall_size: float = 0.0008) -> dict:
    """Mesh, couple and solve steady; returns the numbers the tests compare."""
    thermal, cool = build(comm, k_plate, n_segments, size, wall_size)
    step = solve_coupled(thermal, cool, None, tol=1e-11)
    flows = thermal.heat_flows()
    out = cool.outputs()["loop1"]
    sol = cool.solutions[0].channels[0]
    return {"iterations": step.iterations, "flux_in": flows.flux_in, "robin_3d": flows.coolant,
            "wall_heat": float(np.sum(cool.wall_heat())), "heat_removed": out["heat_removed"],
            "enthalpy_rise": float(sum(M_DOT * cp * (b - a) for cp, a, b in zip(sol.cp, sol.T_in, sol.T_out))),
            "outlet": out["outlet_temperature"], "pressure_drop": out["pressure_drop"],
            "pumping_power": out["pumping_power"], "T_wall": cool.T_wall.tolist(), "area": cool.area.tolist(),
            "h": cool.h_seg.tolist(), "T_f": cool.T_f_seg.tolist(), "cp": sol.cp.tolist(),
            "T_max": comm.allreduce(float(np.max(thermal.T.x.array)), op=MPI.MAX),
            "residual": flows.residual}


if __name__ == "__main__":
    res = run(MPI.COMM_WORLD, n_segments=int(sys.argv[1]) if len(sys.argv) > 1 else 6)
    if MPI.COMM_WORLD.rank == 0:
        print(json.dumps(res))
