"""Analytic checks of the conductor physics (issue 2 acceptance).

Straight bar 100 x 10 x 2 mm copper: R = L/(sigma A), P = I^2 R, steady energy balance;
1D fin with uniform Joule heating; sigma(T) raising R consistently with the mean
temperature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import EXAMPLES, solve_case

SIGMA = 5.80e7
L, W, TH = 0.1, 0.010, 0.002
CU0 = ["materials.cu0.sigma_ref=5.8e7", "materials.cu0.alpha=0", "materials.cu0.k=398",
       "materials.cu0.rho=8933", "materials.cu0.cp=385", "geometry.busbars.0.material=cu0"]


def test_straight_bar_resistance_and_joule_power():
    sim = solve_case(EXAMPLES / "busbar_straight.yaml", CU0)
    s = sim.result
    R_exact = L / (SIGMA * W * TH)
    R = s["terminal"]["resistance_ohm"]
    assert abs(R / R_exact - 1) < 0.005, (R, R_exact)
    I = s["terminal"]["current_A"]
    assert abs(I - 100.0) < 1e-9
    P = s["joule_power_W"]["total"]
    assert abs(P / (I**2 * R_exact) - 1) < 0.005
    # steady energy balance: everything generated leaves by convection
    h = s["heat"]
    assert abs(h["generated_W"] - h["convection_W"]) < 0.005 * h["generated_W"]


def test_fin_with_uniform_joule_heating():
    """A 300 mm bar, ends held at T_amb, lateral convection: the classic 1D fin with source."""
    Lf, h, Ta, I = 0.3, 25.0, 298.15, 100.0
    k = 398.0
    ov = CU0 + ["geometry.busbars.0.path=[[0,0],[0.3,0]]", f"load.current={I}",
                "thermal.boundaries=[{type: convection, regions: [exterior], h: 25.0}, "
                "{type: temperature, regions: [terminal_pos, terminal_neg], T: 298.15}]"]
    sim = solve_case(EXAMPLES / "busbar_straight.yaml", ov)
    A, P = W * TH, 2 * (W + TH)
    q = I**2 / (SIGMA * A**2)
    m = math.sqrt(h * P / (k * A))
    theta0 = -q * A / (h * P)
    T = sim.th.T
    x = T.function_space.tabulate_dof_coordinates()[:, 0]
    exact = Ta + q * A / (h * P) + theta0 * np.cosh(m * (x - Lf / 2)) / math.cosh(m * Lf / 2)
    nown = T.function_space.dofmap.index_map.size_local
    err = np.max(np.abs(T.x.array[:nown] - exact[:nown]))
    rise = q * A / (h * P) * (1 - 1 / math.cosh(m * Lf / 2))
    err = sim.comm.allreduce(err, op=__import__("mpi4py").MPI.MAX)
    assert rise > 5.0  # the test means something: a real temperature rise
    assert err < 0.01 * rise, (err, rise)


def test_sigma_of_T_raises_resistance_with_mean_temperature():
    """With alpha > 0 the bar resistance is R0 (1 + alpha (T_mean - T_ref)) (uniform J)."""
    ov = ["materials.cu.sigma_ref=5.8e7", "materials.cu.alpha=0.00393", "materials.cu.T_ref=293.15",
          "materials.cu.k=398", "materials.cu.rho=8933", "materials.cu.cp=385",
          "geometry.busbars.0.material=cu", "load.current=150", "thermal.boundaries.0.h=5"]
    sim = solve_case(EXAMPLES / "busbar_straight.yaml", ov)
    s = sim.result
    from dolfinx import fem
    import ufl

    vol = W * TH * L
    Tmean = sim.comm.allreduce(fem.assemble_scalar(fem.form(sim.th.T * ufl.dx)), op=__import__("mpi4py").MPI.SUM) / vol
    R0 = L / (SIGMA * W * TH)
    expected = R0 * (1 + 0.00393 * (Tmean - 293.15))
    assert Tmean > 330  # a real rise, so the check discriminates
    assert abs(s["terminal"]["resistance_ohm"] / expected - 1) < 0.003
    assert s["convergence"]["iterations"] > 2
