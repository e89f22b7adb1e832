"""The public API on a communicator: ``busbarfem.run(case, comm=...)`` on 2 ranks equals 1 rank.

Run under ``mpirun -n 2 pytest tests/mpi`` (also passes serially, comparing 1 rank with 1 rank).
"""

from __future__ import annotations

from helpers import EXAMPLES
from mpi4py import MPI

import busbarfem


def test_api_run_serial_equals_parallel():
    ov = ["solver.electrical_solver=lu", "solver.thermal_solver=lu", "mesh.size=0.003"]
    case = busbarfem.load_case(EXAMPLES / "busbar_l_bolted.yaml", ov)
    par = busbarfem.run(case, comm=MPI.COMM_WORLD).summary
    ser = busbarfem.run(case, comm=MPI.COMM_SELF).summary
    assert par["mpi_size"] == MPI.COMM_WORLD.size and ser["mpi_size"] == 1
    for key in ("voltage_V", "power_W"):
        a, b = par["terminal"][key], ser["terminal"][key]
        assert abs(a - b) <= 1e-6 * abs(b), (key, a, b)
    assert abs(par["T_max"]["value"] - ser["T_max"]["value"]) <= 1e-6 * ser["T_max"]["value"]
