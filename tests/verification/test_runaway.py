"""Thermal runaway and transients against lumped analytic results (issue 5 acceptance)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import EXAMPLES, solve_case
from mpi4py import MPI

from busbarfem.analysis.runaway import critical_current, lumped_critical_current, lumped_steady_rise
from busbarfem.case.loader import load_case
from busbarfem.coupling import Simulation

L, W, TH, H, SIGMA, ALPHA = 0.1, 0.010, 0.002, 10.0, 5.8e7, 0.00393
AREA = 2 * (L * W + L * TH + W * TH)  # every face convects
R0 = L / (SIGMA * W * TH)
CASE = EXAMPLES / "busbar_runaway.yaml"


def steady_sim(extra=()):
    case, src = load_case(CASE, ["solver.analysis=steady", "solver.runaway_temperature=1e12", *extra])
    sim = Simulation(case, src, MPI.COMM_WORLD)
    sim.setup()
    return sim


def test_critical_current_matches_lumped_formula():
    sim = steady_sim()
    res = critical_current(sim.steady_tmax_at, 300.0, rtol=0.005)
    exact = lumped_critical_current(H, AREA, R0, ALPHA)
    assert abs(res.current / exact - 1) < 0.03, (res.current, exact)
    assert res.bracket[0] < res.bracket[1]


@pytest.mark.parametrize("fraction", [0.4, 0.7])
def test_steady_temperature_below_critical_matches_lumped(fraction):
    sim = steady_sim()
    I = fraction * lumped_critical_current(H, AREA, R0, ALPHA)
    tmax = sim.steady_tmax_at(I)
    rise = lumped_steady_rise(I, H, AREA, R0, ALPHA)
    # Biot number h t / k ~ 5e-5: the bar is isothermal, T_max ~ the lumped temperature
    assert abs((tmax - 298.15) / rise - 1) < 0.02, (tmax - 298.15, rise)


def test_transient_time_constant_at_constant_power():
    """alpha = 0: constant Joule power; T rises as dT_ss (1 - exp(-t/tau)), tau = rho cp V/(h A_s).

    On a coarse mesh (one element through the 2 mm bar, flatter tets: 758 P2 dofs instead of
    7856): the bar is isothermal and its volume and surface are exact on any mesh, so the fit
    is the same, tau_fit / tau - 1 = 2.08507e-3 on both meshes (the 200 time steps' error)."""
    tau = 8933.0 * 385.0 * (L * W * TH) / (H * AREA)
    sim = solve_case(CASE, ["materials.copper_amb.alpha=0", "load.current=100", "solver.adaptive=false",
                            f"solver.dt={tau / 200}", f"solver.t_end={tau}", "mesh.size=0.005",
                            "mesh.elements_through_thickness=1", "mesh.thin_aspect=4"])
    rows = sim.rows
    t = np.array([r["time [s]"] for r in rows])
    T = np.array([r["T_max [K]"] for r in rows]) - 298.15
    dT_ss = 100.0**2 * R0 / (H * AREA)
    tau_fit = -t[-1] / math.log(1 - T[-1] / dT_ss)
    assert abs(t[-1] - tau) < 1e-9 * tau
    assert abs(tau_fit / tau - 1) < 0.02, (tau_fit, tau)


def test_constant_current_above_critical_runs_away():
    sim = solve_case(CASE, ["load.current=320"])
    s = sim.result
    assert s["stop_reason"] == "thermal runaway"
    assert s["runaway"]["region"] == "busbar_1"
    assert "heat generation grows faster" in s["runaway"]["message"]


def test_constant_current_below_critical_settles():
    sim = solve_case(CASE, ["load.current=200", "solver.t_end=6000"])
    s = sim.result
    assert s["stop_reason"] == "end time reached"
    rise = lumped_steady_rise(200.0, H, AREA, R0, ALPHA)
    # after many time constants the bar sits close to its steady temperature
    assert abs((s["T_max_final"]["value"] - 298.15) / rise - 1) < 0.05
