"""Serial and MPI runs agree (run under ``mpirun -n 2``; also passes serially).

Each rank also solves the same case on COMM_SELF (the serial reference), so one
``mpirun -n 2 pytest tests/mpi`` compares a 2-rank solve with a 1-rank solve.
"""

from __future__ import annotations

import pytest
from helpers import EXAMPLES, solve_case
from mpi4py import MPI


def _headline(sim):
    s = sim.result
    return s["T_max"]["value"], s["terminal"]["resistance_ohm"], s["joule_power_W"]["total"]


@pytest.mark.parametrize("case", ["busbar_straight.yaml", "busbar_l_bolted.yaml"])
def test_conductor_serial_equals_parallel(case):
    ov = ["solver.electrical_solver=lu", "solver.thermal_solver=lu"]
    par = _headline(solve_case(EXAMPLES / case, ov, comm=MPI.COMM_WORLD))
    ser = _headline(solve_case(EXAMPLES / case, ov, comm=MPI.COMM_SELF))
    for a, b in zip(par, ser):
        assert abs(a - b) <= 1e-6 * abs(b), (case, par, ser)


def test_gamg_matches_lu_in_parallel():
    """The iterative preset converges to the direct solution (rtol 1e-10)."""
    lu = _headline(solve_case(EXAMPLES / "busbar_l_bolted.yaml", ["solver.electrical_solver=lu",
                                                                  "solver.thermal_solver=lu"]))
    mg = _headline(solve_case(EXAMPLES / "busbar_l_bolted.yaml", ["solver.electrical_solver=gamg",
                                                                  "solver.thermal_solver=gamg"]))
    for a, b in zip(mg, lu):
        assert abs(a - b) <= 1e-6 * abs(b)
