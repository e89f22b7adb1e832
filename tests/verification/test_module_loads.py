"""Load control on a 3D module: CC-CV and CP-CV charge, a constant-power step, and the
temperature-limit stop (issues 4 and 5 acceptance). A coarse 2s1p 21700 module."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import solve_case
from mpi4py import MPI

CASE = """
name: module_loads
geometry:
  module:
    series: 2
    parallel: 1
    cell: {{preset: "21700"}}
mesh: {{size: 0.012}}
cell:
  preset: LG_M50
  initial_soc: {soc}
load: {load}
thermal:
  boundaries: [{{type: convection, regions: [exterior], h: 10.0}}]
solver:
  analysis: transient
  t_end: {t_end}
  dt: {dt}
  dt_max: 300.0
  adaptive: true
  event_tolerance: 1.0
  {extra}
"""


def run(tmp_path, load, soc=0.5, t_end=20000.0, dt=30.0, extra=""):
    path = tmp_path / "module.yaml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(CASE.format(load=load, soc=soc, t_end=t_end, dt=dt, extra=extra))
    MPI.COMM_WORLD.barrier()
    return solve_case(path)


def series(sim, key):
    return np.array([r[key] for r in sim.rows])


def cv_checks(sim, n_cells_max_voltage=4.2):
    assert len(sim.events) == 2, sim.events
    switch = sim.events[0]
    assert "4.2 V reached" in switch["reason"]
    t = series(sim, "time [s]")
    k = int(np.argmin(np.abs(t - switch["time"])))
    V = series(sim, "voltage [V]")
    I = series(sim, "current [A]")
    cells = sim.cells.names
    vmax_at_switch = max(sim.rows[k][f"V_{n} [V]"] for n in cells)
    assert 4.19 < vmax_at_switch <= 4.2 + 0.01
    cv = slice(k + 1, None)
    # CV: the module voltage is held, the charging current decays monotonically
    assert np.ptp(V[cv]) < 1e-9 * V[k]
    assert np.all(I[cv] < 0) and np.all(np.diff(np.abs(I[cv])) < 1e-9)
    assert "cut-off current" in sim.stop_reason
    cut = 0.01 * 5.14355  # cut_off_current_percent x 1C (LG_M50's fitted 5.14355 Ah, 1p)
    assert abs(I[-1]) <= cut * 1.0001 and abs(I[-2]) > cut
    return k


@pytest.mark.xfail(strict=True, reason="refitted LG_M50 (issue 17): the 3D CV current rises by up "
                   "to 22 % over one adaptive step near SOC 0.9-1; cause not yet found, see docs/cells.md")
@pytest.mark.slow
def test_cccv_charge_switches_at_4v2_and_stops_at_cutoff(tmp_path):
    sim = run(tmp_path, "{electrical_input_type: standard_charge_profile, charging_profile_type: cccv, c_rate: 1.0, maximum_cell_state_of_charge: 1.0}",
              soc=0.7)
    k = cv_checks(sim)
    I = series(sim, "current [A]")
    assert np.allclose(I[1:k], -5.14355, rtol=1e-9)  # CC phase at 1C (5.14355 Ah)


@pytest.mark.xfail(strict=True, reason="refitted LG_M50 (issue 17): the 3D CV current rises by up "
                   "to 22 % over one adaptive step near SOC 0.9-1; cause not yet found, see docs/cells.md")
@pytest.mark.slow
def test_cpcv_charge(tmp_path):
    sim = run(tmp_path, "{electrical_input_type: standard_charge_profile, charging_profile_type: cpcv, power: 30.0, maximum_cell_state_of_charge: 1.0}",
              soc=0.7)
    k = cv_checks(sim)
    P = series(sim, "power [W]")
    assert np.allclose(P[1:k], -30.0, rtol=1e-3)  # CP phase holds the power within 0.1 %


def test_power_step_holds_power(tmp_path):
    sim = run(tmp_path, "{steps: ['Discharge at 20 W for 10 minutes']}", soc=0.8, dt=60.0)
    P = series(sim, "power [W]")
    t = series(sim, "time [s]")
    assert np.allclose(P, 20.0, rtol=1e-3)
    assert abs(t[-1] - 600.0) < 1e-6 and "duration" in sim.stop_reason


def test_temperature_limit_stops_at_the_right_step(tmp_path):
    limit = 300.0
    sim = run(tmp_path, "{electrical_input_type: c_rate, c_rate: 3.0}", soc=0.9, dt=20.0,
              extra=f"temperature_limit: {limit}")
    Tm = series(sim, "T_max [K]")
    assert sim.stop_reason == "temperature limit"
    assert Tm[-1] > limit and np.all(Tm[:-1] <= limit)
