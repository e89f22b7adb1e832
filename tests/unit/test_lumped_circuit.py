"""Lumped nSmP circuit: the seed's V_K / I_j formulas with PCU blocks, hand-checked."""

import numpy as np
import pytest

from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.cells.lumped import LumpedThermal, ModuleCircuit, PowerLimitError, run_lumped
from busbarfem.loads import Target


def test_1s2p_unequal_resistance_split():
    c = ModuleCircuit(1, 2)
    sol = c.solve(np.array([[3.7, 3.7]]), np.array([[0.01, 0.03]]), Target("current", 8.0, 0))
    # equal EMF: I_1 = I R_2/(R_1+R_2) = 8 * 0.03/0.04 = 6 A, I_2 = 2 A; V = 3.7 - 8/(100+33.3)
    np.testing.assert_allclose(sol.cell_current, [[6.0, 2.0]])
    assert sol.module_voltage == pytest.approx(3.7 - 0.06)


def test_1s2p_unequal_emf_circulating_current():
    c = ModuleCircuit(1, 2)
    sol = c.solve(np.array([[3.7, 3.6]]), np.array([[0.01, 0.02]]), Target("current", 3.0, 0))
    # V_K = (3.7/0.01 + 3.6/0.02 - 3)/(100 + 50) = 547/150; I_1 = 5.3333, I_2 = -2.3333
    assert sol.module_voltage == pytest.approx(547.0 / 150.0)
    np.testing.assert_allclose(sol.cell_current, [[16.0 / 3.0, -7.0 / 3.0]])


@pytest.mark.parametrize("pcu, currents, drop", [
    # R0 = 10 mOhm, cell_4_2 at 20 mOhm, I = 10 A, equal EMF E.
    # PCU 4 (cross-connected): stages 1-3 split 5/5, stage 4 splits 1/R: 6.667/3.333;
    #   drop = 3 x 10/200 + 10/150 = 0.21667 V.
    (4, [[5, 5], [5, 5], [5, 5], [20 / 3, 10 / 3]], 0.15 + 1 / 15),
    # PCU 2: block (1,2) strings 20/20 mOhm -> 5/5; block (3,4) strings 20/30 mOhm -> 6/4;
    #   drop = 10/100 + 10/83.33 = 0.22 V.
    (2, [[5, 5], [5, 5], [6, 4], [6, 4]], 0.22),
    # PCU 1: two strings 40/50 mOhm -> 5.556/4.444 in every stage; drop = 10/45 = 0.2222 V.
    (1, [[50 / 9, 40 / 9]] * 4, 10 / 45),
])
def test_4s2p_pcu_current_sharing(pcu, currents, drop):
    E = np.full((4, 2), 3.7)
    R0 = np.full((4, 2), 0.01)
    R0[3, 1] = 0.02
    sol = ModuleCircuit(4, 2, pcu).solve(E, R0, Target("current", 10.0, 0))
    np.testing.assert_allclose(sol.cell_current, currents, rtol=1e-12)
    assert sol.module_voltage == pytest.approx(4 * 3.7 - drop, rel=1e-12)
    np.testing.assert_allclose(sol.cell_current.sum(axis=1), 10.0)


def test_pcu_must_divide_n_series():
    with pytest.raises(ValueError, match=r"valid: \[1, 2, 4\]"):
        ModuleCircuit(4, 2, 3)


def test_voltage_and_power_control():
    c = ModuleCircuit(2, 2)
    E, R0 = np.full((2, 2), 3.6), np.full((2, 2), 0.02)
    # A = 7.2 V, B = 2 x 0.01 = 0.02 ohm
    assert c.affine(E, R0) == pytest.approx((7.2, 0.02))
    sol = c.solve(E, R0, Target("voltage", 7.0, 0))
    assert sol.module_current == pytest.approx(10.0)
    sol = c.solve(E, R0, Target("power", 50.0, 0))
    # 0.02 I^2 - 7.2 I + 50 = 0 -> I = (7.2 - sqrt(51.84 - 4))/0.04 = 7.0838 A
    assert sol.module_current == pytest.approx(7.08384, rel=1e-5)
    assert sol.module_voltage * sol.module_current == pytest.approx(50.0, rel=1e-12)
    sol = c.solve(E, R0, Target("power", -50.0, 0))
    assert sol.module_current < 0 and sol.module_voltage * sol.module_current == pytest.approx(-50.0)
    with pytest.raises(PowerLimitError, match="maximum deliverable 648 W"):
        c.solve(E, R0, Target("power", 700.0, 0))


def _linear_cell(**kw):
    data = dict(capacity=2.0, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=0.01,
                rc_pairs=[{"R": 0.004, "tau": 30.0}], initial_soc=0.9)
    data.update(kw)
    return CellModel(**data)


def test_single_cell_constant_current_matches_analytic():
    cell = _linear_cell()
    res = run_lumped(cell, Load(current=2.0, minimum_cell_state_of_charge=0.0), 1, 1,
                     t_end=600.0, dt=7.0)
    t = res.time
    soc = 0.9 - 2.0 * t / 7200.0
    v = 3.0 + 1.2 * soc - 0.01 * 2.0 - 0.004 * 2.0 * (1.0 - np.exp(-t / 30.0))
    np.testing.assert_allclose(res.cell_soc[:, 0, 0], soc, rtol=1e-12)
    np.testing.assert_allclose(res.module_voltage, v, rtol=1e-12)
    assert res.stop_reason == "end time 600 s reached" and t[-1] == pytest.approx(600.0)


def test_lumped_thermal_matches_exponential():
    # OCV - V = R0 I exactly (no RC), dU/dT = 0: q = I^2 R0 = 0.04 W constant.
    cell = _linear_cell(rc_pairs=[], rho=2000.0, cp=1000.0, volume=1e-5, surface_area=4e-3)
    th = LumpedThermal(h=5.0, T_ambient=300.0)
    res = run_lumped(cell, Load(current=2.0, minimum_cell_state_of_charge=0.0), 1, 1,
                     t_end=1800.0, dt=30.0, thermal=th)
    tau = 2000.0 * 1e-5 * 1000.0 / (5.0 * 4e-3)  # m cp / (h A) = 1000 s
    expected = 300.0 + 0.04 / 0.02 * (1.0 - np.exp(-res.time / tau))  # +2 K asymptote
    np.testing.assert_allclose(res.cell_temperature[:, 0, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(res.cell_heat[:, 0, 0], 0.04, rtol=1e-12)
