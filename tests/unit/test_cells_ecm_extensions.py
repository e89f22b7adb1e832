"""The ECM's optional diffusion lag and Butler-Volmer element (issue 17) against independent
integrations (scipy solve_ivp), and backward compatibility of the state."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load
from busbarfem.cells.ecm import CellParameters, ECMState, advance, step_source
from busbarfem.cells.lumped import run_lumped

OCV = [[0.0, 3.0], [0.1, 3.4], [0.5, 3.7], [0.9, 4.0], [1.0, 4.2]]


def cell(**kw):
    data = dict(capacity=2.0, ocv=OCV, R0=0.01, rc_pairs=[{"R": 0.005, "tau": 20.0}],
                initial_soc=0.9)
    data.update(kw)
    return CellModel(**data)


def reference(c: CellModel, amps: float, t_end: float, t_eval):
    """solve_ivp of SOC, V_RC and the lag x: V = OCV(SOC - x) - R0 I - eta(I) - V_RC."""
    ocv = np.asarray(OCV)
    d = c.diffusion
    rc = c.rc_pairs[0]

    def rhs(t, y):
        soc, v, x = y
        dx = 0.0 if d is None else (d.lag_1C * amps / c.capacity - x) / d.tau
        return [-amps / (3600.0 * c.capacity), (rc.R * amps - v) / rc.tau, dx]

    sol = solve_ivp(rhs, (0.0, t_end), [c.initial_soc, 0.0, 0.0], t_eval=t_eval, rtol=1e-11, atol=1e-13)
    soc, v, x = sol.y
    eta = 0.0 if c.kinetics is None else c.kinetics.R * c.kinetics.current_scale * np.arcsinh(amps / c.kinetics.current_scale)
    return np.interp(soc - x, ocv[:, 0], ocv[:, 1]) - c.R0 * amps - eta - v


@pytest.mark.parametrize("kw", [{"diffusion": {"tau": 600.0, "lag_1C": 0.04}},
                                {"kinetics": {"R": 0.015, "current_scale": 1.5}},
                                {"diffusion": {"tau": 600.0, "lag_1C": 0.04},
                                 "kinetics": {"R": 0.015, "current_scale": 1.5}}])
def test_lumped_cc_discharge_matches_solve_ivp(kw):
    """4 A (2C) for 1300 s (surface SOC stays > 0) through the lumped runner (10 s steps, the end-of-step
    linearisation) vs an independent integration: < 0.2 mV after the first step (the
    Butler-Volmer term is linearised about the previous step's current, so only the step
    where the current jumps is off)."""
    c = cell(**kw)
    res = run_lumped(c, Load(current=4.0, minimum_cell_voltage=2.0, minimum_cell_state_of_charge=0.0),
                     1, 1, t_end=1300.0, dt=10.0)
    t = res.time[2:]
    ref = reference(c, 4.0, 1300.0, t)
    assert np.max(np.abs(res.cell_voltage[2:, 0, 0] - ref)) < 2e-4
    # and the elements matter: without them the voltage differs by > 10 mV somewhere
    plain = reference(cell(), 4.0, 1300.0, t)
    assert np.max(np.abs(plain - ref)) > 0.01


def test_diffusion_lag_state_update_is_exact():
    """The lag follows x = lag_1C I/Q (1 - e^(-t/tau)) exactly under constant current, and in
    a linear-current step as the RC pairs do; the surface SOC trails the bulk SOC."""
    c = cell(diffusion={"tau": 300.0, "lag_1C": 0.05})
    p = CellParameters(c, 2)
    st = ECMState.initial(p)
    for _ in range(50):
        st = advance(p, st, np.array([2.0, -1.0]), 12.0)
    expect = 0.05 * np.array([2.0, -1.0]) / 2.0 * (1.0 - np.exp(-600.0 / 300.0))
    np.testing.assert_allclose(st.soc_lag, expect, rtol=1e-12)
    assert st.surface_soc[0] < st.soc[0] and st.surface_soc[1] > st.soc[1]
    # linear current 2 -> 0 A over 100 s: integral form vs the update
    st2 = advance(p, st, np.array([0.0, 0.0]), 100.0, current_start=np.array([2.0, -1.0]))
    s = np.linspace(0.0, 100.0, 200001)
    for i, i0 in enumerate((2.0, -1.0)):
        current = i0 * (1.0 - s / 100.0)
        integral = np.trapezoid(np.exp(-(100.0 - s) / 300.0) * 0.05 / 2.0 * current / 300.0, s)
        assert st2.soc_lag[i] == pytest.approx(np.exp(-100.0 / 300.0) * st.soc_lag[i] + integral, rel=1e-8)


def test_step_source_with_diffusion_predicts_the_end_of_step_voltage():
    """E_eff - R_eff I equals the voltage of the advanced state (to the OCV linearisation)."""
    c = cell(diffusion={"tau": 300.0, "lag_1C": 0.05})
    p = CellParameters(c, 1)
    st = ECMState.initial(p)
    for _ in range(30):
        st = advance(p, st, np.array([3.0]), 10.0)
    E, R, _ = step_source(p, st, np.array([298.15]), 10.0)
    new = advance(p, st, np.array([3.0]), 10.0)
    v_end = p.ocv(new.surface_soc, 298.15) - new.v_rc.sum(axis=1) - p.R0(st.soc, 298.15) * 3.0
    np.testing.assert_allclose(E - R * 3.0, v_end, atol=1e-9)


def test_old_checkpoint_and_parameter_files_still_load():
    """A state without soc_lag/current (checkpoints of earlier versions) loads with zeros;
    cell sets without diffusion/kinetics give the unchanged ECM."""
    st = ECMState.from_dict({"soc": [0.5], "v_rc": [[0.001]], "capacity_Ah": [2.0]})
    assert st.soc_lag.tolist() == [0.0] and st.current.tolist() == [0.0]
    assert ECMState.from_dict(st.to_dict()).to_dict() == st.to_dict()
    p = CellParameters(CellModel(preset="LG_M50"), 1)
    assert p.diffusion is None and p.kinetics is None
