"""Terminations land at the right time whatever the step size, lumped and 3D (issue 12).

The cell is a Thevenin ECM (5 Ah, R0 = 20 mOhm, one RC pair 15 mOhm / 30 s,
OCV = 3.0 + 1.2 SOC). The references are integrated here, independently of busbarfem,
with scipy's solve_ivp and its event location (rtol 1e-12): the CC phase until the cell
reaches 4.2 V, then the CV phase whose current follows from OCV(SOC) - V_RC - I R0 = 4.2
exactly, until |I| = C/50. That gives 3366.88 s, the number PyBaMM's Thevenin model gives
for the same experiment (also checked here when PyBaMM is installed).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from mpi4py import MPI
from msmd_fixture import box_bundle
from scipy.integrate import solve_ivp

from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.case.loader import load_case
from busbarfem.cells.lumped import run_lumped
from busbarfem.coupling import Simulation

Q, R0, R1, TAU = 5.0, 0.020, 0.015, 30.0
PYBAMM_END = 3366.8  # s, PyBaMM Thevenin, from the issue report
TOL = 0.01  # event tolerance [s] used in these runs
CELL = dict(capacity=Q, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=R0, rc_pairs=[{"R": R1, "tau": TAU}],
            initial_soc=0.5)
CCCV = ["Charge at 1C until 4.2 V", "Hold at 4.2 V until C/50"]


def ocv(soc):
    return 3.0 + 1.2 * soc


def _ivp(rhs, y0, t0, event):
    event.terminal = True
    sol = solve_ivp(rhs, [t0, t0 + 1e5], y0, events=event, rtol=1e-12, atol=1e-14, method="LSODA")
    return sol.t_events[0][0], sol.y_events[0][0]


def cc_reference(current, y0=(0.5, 0.0), t0=0.0, until=None):
    """Constant current (+ discharge) from state (SOC, V_RC) until ``until(t, V, soc) = 0``."""
    def rhs(t, y):
        return [-current / (3600 * Q), (R1 * current - y[1]) / TAU]

    return _ivp(rhs, list(y0), t0, lambda t, y: until(t, ocv(y[0]) - y[1] - R0 * current, y[0]))


def cv_reference(voltage, y0, t0, cut):
    """Held cell voltage: I = (OCV - V_RC - V) / R0 exactly, until |I| = cut."""
    def current(y):
        return (ocv(y[0]) - y[1] - voltage) / R0

    def rhs(t, y):
        i = current(y)
        return [-i / (3600 * Q), (R1 * i - y[1]) / TAU]

    return _ivp(rhs, list(y0), t0, lambda t, y: abs(current(y)) - cut)


@pytest.fixture(scope="module")
def cccv_reference():
    t_switch, y = cc_reference(-Q, until=lambda t, v, s: v - 4.2)
    t_end, _ = cv_reference(4.2, y, t_switch, Q / 50)
    return t_switch, t_end


def test_reference_reproduces_the_pybamm_end_time(cccv_reference):
    t_switch, t_end = cccv_reference
    # CC phase in closed form: 3.0 + 1.2 (0.5 + t/3600) + 5 R0 + 5 R1 (1 - e^(-t/tau)) = 4.2
    assert t_switch == pytest.approx(1275.0, abs=1e-3)
    assert t_end == pytest.approx(PYBAMM_END, abs=0.1)


def test_pybamm_thevenin_agrees_with_the_reference(cccv_reference):
    pybamm = pytest.importorskip("pybamm")
    model = pybamm.equivalent_circuit.Thevenin()
    pv = model.default_parameter_values
    pv.update({"Open-circuit voltage [V]": lambda soc: 3.0 + 1.2 * soc, "R0 [Ohm]": R0,
               "R1 [Ohm]": R1, "C1 [F]": TAU / R1, "Cell capacity [A.h]": Q,
               "Nominal cell capacity [A.h]": Q, "Initial SoC": 0.5, "Entropic change [V/K]": 0.0,
               "Upper voltage cut-off [V]": 4.3, "Lower voltage cut-off [V]": 2.5})
    sim = pybamm.Simulation(model, parameter_values=pv, experiment=pybamm.Experiment(CCCV),
                            solver=pybamm.IDAKLUSolver(rtol=1e-8, atol=1e-10))
    end = float(sim.solve()["Time [s]"].entries[-1])
    assert end == pytest.approx(cccv_reference[1], abs=0.05)


def lumped(steps, dt, **limits):
    load = Load(steps=steps, **limits)
    return run_lumped(CellModel(**CELL), load, 1, 1, dt=dt, event_tolerance=TOL)


@pytest.mark.parametrize("dt", [10.0, 60.0, 300.0])
def test_lumped_cccv_ends_within_2s_of_the_reference_for_any_dt(cccv_reference, dt):
    t_switch, t_end = cccv_reference
    res = lumped(CCCV, dt, maximum_cell_state_of_charge=1.0)
    assert "cut-off current reached" in res.stop_reason
    assert res.events[0].kind == "voltage" and res.events[1].kind == "current"
    assert t_switch - 1e-6 <= res.events[0].time <= t_switch + TOL + 1e-6
    assert abs(res.time[-1] - t_end) < 2.0
    assert abs(res.module_current[-1]) == pytest.approx(Q / 50, rel=1e-3)


def test_lumped_terminations_land_within_tolerance_independent_of_dt():
    # voltage cut-off in CC discharge (a step condition): closed form up to a root
    t_v, _ = cc_reference(Q, until=lambda t, v, s: v - 3.2)
    # the default SOC limit at 1C: SOC 0.5 -> 0.05 takes 0.45 h
    t_soc = 0.45 * 3600.0
    # cut-off current of a held (discharging) voltage from rest
    t_cut, _ = cv_reference(3.5, (0.5, 0.0), 0.0, 0.5)
    # (steps, limits, reference end, how far before it / after it the run may end [s]):
    # with a constant current the update is exact, so the run ends no earlier than the
    # crossing and at most TOL after it; a held voltage adds the error of integrating its
    # decaying current (second order, ~0.1 s here)
    cases = [
        (["Discharge at 1C until 3.2 V"], {}, t_v, (1e-6, TOL)),
        (["Discharge at 1C"], {"minimum_cell_voltage": 2.0}, t_soc, (1e-6, TOL)),
        (["Hold at 3.5 V until 0.5 A"], {}, t_cut, (0.25, 0.25)),
        (["Discharge at 1C for 1000 seconds"], {}, 1000.0, (1e-9, 1e-9)),
    ]
    for steps, limits, t_ref, (early, late) in cases:
        ends = []
        for dt in (10.0, 60.0):
            res = lumped(steps, dt, **limits)
            ends.append(res.time[-1])
            assert t_ref - early <= res.time[-1] <= t_ref + late + 1e-6, (steps, dt, res.time[-1], t_ref)
        assert abs(ends[0] - ends[1]) <= max(early, late) + 1e-6, (steps, ends)
    res = lumped(["Discharge at 1C"], 60.0, minimum_cell_voltage=2.0)
    assert res.events[-1].key == "load.minimum_cell_state_of_charge"
    assert res.stop_reason == (
        "minimum cell state of charge 0.05 reached by cell_1_1: the default "
        "minimum_cell_state_of_charge limit (AcuSolve BATTERY_MODULE's default); set "
        "load.minimum_cell_state_of_charge to change it")


CASE_3D = """
name: thevenin_single_cell
geometry:
  busbars: [{{path: [[0, 0], [0.01, 0]], width: 0.01, thickness: 0.001}}]
cell:
  capacity: {Q}
  ocv: [[0.0, 3.0], [1.0, 4.2]]
  R0: {R0}
  rc_pairs: [{{R: {R1}, tau: {TAU}}}]
  sigma_pos: 1.0e10
  sigma_neg: 1.0e10
  initial_soc: 0.5
load: {load}
thermal:
  boundaries: [{{type: convection, regions: [exterior], h: 10.0}}]
solver: {{analysis: transient, t_end: 5000.0, dt: {dt}, event_tolerance: {TOL},
          electrical_solver: lu, thermal_solver: lu}}
"""


def run_3d(tmp_path, load, dt):
    """One 20 x 20 x 40 mm cell between full-face 0.5 mm copper plates: with collector
    conductivities of 1e10 S/m the resistance outside the ECM is ~0.1 uOhm, so the 3D
    terminal behaves as the Thevenin cell."""
    comm = MPI.COMM_WORLD
    h = 0.04
    cell = {"name": "cell_1_1", "lo": (0, 0, 0), "hi": (0.02, 0.02, h), "kind": "cell", "field": None,
            "stage": 1, "parallel": 1}
    pos = {"name": "tab_pos_1_1", "lo": (0, 0, h), "hi": (0.02, 0.02, h + 5e-4), "material": "copper", "field": 1}
    neg = {"name": "tab_neg_1_1", "lo": (0, 0, -5e-4), "hi": (0.02, 0.02, 0.0), "material": "copper", "field": 2}
    bundle = box_bundle(comm, [cell, pos, neg], {"terminal_pos": ("tab_pos_1_1", "zmax"),
                                                 "terminal_neg": ("tab_neg_1_1", "zmin")}, size=0.01)
    path = tmp_path / "case.yaml"
    if comm.rank == 0:
        path.write_text(textwrap.dedent(CASE_3D.format(Q=Q, R0=R0, R1=R1, TAU=TAU, TOL=TOL, dt=dt, load=load)))
    comm.barrier()
    case, src = load_case(path)
    sim = Simulation(case, src, comm)
    sim.setup(bundle=bundle)
    sim.run()
    sim.close()
    return sim


@pytest.mark.parametrize("dt", [10.0, 60.0])
def test_3d_cccv_ends_within_2s_of_the_reference(tmp_path, cccv_reference, dt):
    t_switch, t_end = cccv_reference
    sim = run_3d(tmp_path, "{steps: %s, maximum_cell_state_of_charge: 1.0}" % CCCV, dt)
    t = sim.rows[-1]["time [s]"]
    assert "cut-off current reached" in sim.stop_reason
    assert [e["kind"] for e in sim.events] == ["voltage", "current"]
    assert abs(sim.events[0]["time"] - t_switch) < 0.05  # + the plates' 0.1 uOhm
    assert abs(t - t_end) < 2.0
    assert abs(sim.rows[-1]["current [A]"]) == pytest.approx(Q / 50, rel=1e-3)


def test_3d_voltage_cut_off_lands_within_tolerance(tmp_path):
    t_v, _ = cc_reference(Q, until=lambda t, v, s: v - 3.2)
    sim = run_3d(tmp_path, "{steps: ['Discharge at 1C until 3.2 V']}", 60.0)
    t = sim.rows[-1]["time [s]"]
    assert sim.events[-1]["key"] == "step.until_voltage"
    # the copper plates lower the terminal a little but the cell voltage decides
    assert t_v - 1e-6 <= t <= t_v + TOL + 0.02
    assert np.isclose(sim.rows[-1]["V_cell_1_1 [V]"], 3.2, atol=1e-4)
