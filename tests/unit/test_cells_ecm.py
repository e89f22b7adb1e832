"""ECM parameters and state: exact RC update, coulomb counting, Arrhenius, tables, presets."""

import numpy as np
import pytest
from pydantic import ValidationError

from busbarfem.case.cells import CellModel, available_presets
from busbarfem.cells.ecm import CellParameters, ECMState, advance, arrhenius_factor, emf, step_source


def simple_cell(**kw):
    data = dict(capacity=2.0, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=0.01,
                rc_pairs=[{"R": 0.005, "tau": 20.0}, {"R": 0.002, "tau": 300.0}], initial_soc=0.8)
    data.update(kw)
    return CellModel(**data)


def test_rc_update_is_exact_for_constant_current():
    params = CellParameters(simple_cell(), 3)
    state = ECMState.initial(params)
    current = np.array([2.0, -1.0, 0.5])
    for _ in range(100):
        state = advance(params, state, current, 7.0)
    t = 700.0
    expected = np.outer(current, [0.005, 0.002]) * (1.0 - np.exp(-t / np.array([20.0, 300.0])))
    np.testing.assert_allclose(state.v_rc, expected, rtol=1e-12, atol=1e-15)
    # e.g. the 300 s pair at 2 A after 700 s: 0.004 * (1 - e^-2.333) = 3.612 mV
    assert state.v_rc[0, 1] == pytest.approx(3.6122e-3, rel=1e-4)


def test_soc_coulomb_counting_with_capacity_spread():
    params = CellParameters(simple_cell(), 2, capacity_factors=[1.0, 0.5])
    state = ECMState.initial(params)
    for _ in range(18):
        state = advance(params, state, np.array([2.0, 2.0]), 100.0)
    # 2 A for 1800 s = 1 Ah: -0.5 SOC on the 2 Ah cell, -1.0 on the 1 Ah cell
    np.testing.assert_allclose(state.soc, [0.3, -0.2], rtol=1e-12)


def test_arrhenius_factor_and_r0():
    # exp(25000/8.314462618 * (1/318.15 - 1/298.15)) = 0.5305 (hand computed)
    assert arrhenius_factor(318.15, 298.15, 25000.0) == pytest.approx(0.5305, abs=2e-4)
    params = CellParameters(simple_cell(R0_activation_energy=25000.0), 2, R0_factors=[1.0, 1.5])
    np.testing.assert_allclose(params.R0(np.array([0.5, 0.5]), 318.15), [0.005305, 0.0079575],
                               rtol=5e-4)
    np.testing.assert_allclose(params.R0(np.array([0.5, 0.5]), 298.15), [0.01, 0.015])


def test_rc_arrhenius_and_step_consistency():
    cell = simple_cell(rc_pairs=[{"R": 0.005, "tau": 20.0, "activation_energy": 25000.0},
                                 {"R": 0.002, "tau": 300.0}])
    params = CellParameters(cell, 2)
    soc = np.array([0.5, 0.5])
    # pair 1 follows Arrhenius (0.5305 at 318.15 K, see above), pair 2 has no T effect
    np.testing.assert_allclose(params.rc_R(soc, 318.15), [[0.005 * 0.5305, 0.002]] * 2, rtol=5e-4)
    np.testing.assert_allclose(params.rc_R(soc, 298.15), [[0.005, 0.002]] * 2, rtol=1e-14)
    np.testing.assert_allclose(params.rc_R(soc), params.rc_R(soc, cell.T_ref), rtol=1e-14)
    # the end-of-step voltage predicted by step_source is the one the advanced state gives
    # (linear OCV: exact), at a temperature where the RC resistance differs from T_ref
    T = np.array([318.15, 278.15])
    state = ECMState(soc=soc.copy(), v_rc=np.array([[0.003, 0.001], [0.002, 0.0]]), capacity_Ah=np.array([2.0, 2.0]))
    I, dt = np.array([3.0, -2.0]), 15.0
    E, R, _ = step_source(params, state, T, dt)
    new = advance(params, state, I, dt, T)
    V_end = params.ocv(new.soc, T) - new.v_rc.sum(axis=1) - params.R0(new.soc, T) * I
    np.testing.assert_allclose(E - R * I, V_end, rtol=0, atol=1e-12)
    # advancing at T_ref instead would not match: the test can fail
    wrong = advance(params, state, I, dt)
    assert np.max(np.abs(wrong.v_rc - new.v_rc)) > 1e-4


def test_ocv_temperature_and_emf():
    cell = simple_cell(entropic_coefficient=[[0.0, -2e-4], [1.0, 2e-4]])
    params = CellParameters(cell, 1)
    # soc 0.25: OCV_ref = 3.3 V, dU/dT = -1e-4 V/K; at T_ref + 10 K: 3.299 V
    assert params.ocv(0.25, 308.15) == pytest.approx(3.299, abs=1e-12)
    state = ECMState(soc=np.array([0.25]), v_rc=np.array([[0.01, 0.002]]), capacity_Ah=np.array([2.0]))
    assert emf(params, state, 298.15)[0] == pytest.approx(3.3 - 0.012)


def test_state_roundtrip():
    params = CellParameters(simple_cell(), 4)
    state = advance(params, ECMState.initial(params), np.arange(4.0), 5.0)
    again = ECMState.from_dict(state.to_dict())
    np.testing.assert_array_equal(again.v_rc, state.v_rc)
    np.testing.assert_array_equal(again.soc, state.soc)
    copy = state.copy()
    copy.soc[0] = 0.0
    assert state.soc[0] != 0.0


def test_soc_tables_are_validated_with_useful_messages():
    with pytest.raises(ValidationError, match="strictly increasing"):
        simple_cell(ocv=[[0.0, 3.0], [0.5, 3.6], [0.4, 3.7], [1.0, 4.2]])
    with pytest.raises(ValidationError, match=r"SOC must lie in \[0, 1\]"):
        simple_cell(ocv=[[0.0, 3.0], [1.2, 4.2]])
    with pytest.raises(ValidationError, match="must not decrease"):
        simple_cell(ocv=[[0.0, 3.0], [0.5, 3.9], [1.0, 3.8]])
    with pytest.raises(ValidationError, match="R0 .*must be > 0"):
        simple_cell(R0=[[0.0, 0.01], [1.0, -0.01]])
    with pytest.raises(ValidationError, match="rc_pairs"):
        simple_cell(rc_pairs=[{"R": 0.01, "tau": -1.0}])
    with pytest.raises(ValidationError, match="extra"):
        simple_cell(capacitance=1.0)


def test_soc_dependent_rc_resistance():
    cell = simple_cell(rc_pairs=[{"R": [[0.0, 0.02], [1.0, 0.01]], "tau": 10.0}])
    params = CellParameters(cell, 2)
    np.testing.assert_allclose(params.rc_R(np.array([0.0, 0.5])), [[0.02], [0.015]])


def test_lg_m50_preset_and_override():
    assert "LG_M50" in available_presets()
    cell = CellModel(preset="LG_M50", initial_soc=0.5, R0=0.02)
    assert cell.capacity == 5.0 and cell.initial_soc == 0.5 and cell.R0 == 0.02
    params = CellParameters(cell, 1)
    assert params.ocv_ref(0.0) == pytest.approx(2.5) and params.ocv_ref(1.0) == pytest.approx(4.2)
    # O'Regan 2022: entropic coefficient negative at low SOC, positive above ~45 %
    assert params.dUdT(0.2) < 0 < params.dUdT(0.8)
    with pytest.raises(ValidationError, match="valid presets: .*LG_M50"):
        CellModel(preset="LG_M5O")


def test_variation_factors_seeded_and_explicit():
    cell = simple_cell(variation={"capacity_std": 0.05, "R0_std": 0.1, "seed": 3})
    a = CellParameters(cell, 8)
    b = CellParameters(cell, 8)
    np.testing.assert_array_equal(a.capacity_factors, b.capacity_factors)
    assert 0.0 < np.std(a.R0_factors) < 0.3 and not np.allclose(a.R0_factors, 1.0)
    cell = simple_cell(variation={"R0_factors": [1, 2]})
    assert CellParameters(cell, 2).R0(np.array([0.5, 0.5]), 298.15)[1] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="needs 3 values"):
        CellParameters(cell, 3)


def test_step_source_past_full_charge_is_finite():
    """A cell pushed a little past SOC 1 (a circulating current between parallel cells at
    different temperatures) keeps a finite step source: the clamped OCV table has zero slope
    there, while inside the table the OCV term is the central-difference slope dt/(3600 Q)."""
    params = CellParameters(CellModel(preset="LG_M50"), 3)
    soc = np.array([0.5, 1.0 + 1e-5, -1e-5])
    state = ECMState(soc=soc.copy(), v_rc=np.zeros((3, params.n_rc)), capacity_Ah=np.full(3, 5.0))
    E, R, R_ocv = step_source(params, state, np.full(3, 310.0), 10.0)
    assert np.all(np.isfinite(E)) and np.all(np.isfinite(R))
    assert R_ocv[1] == 0.0 and R_ocv[2] == 0.0
    d = 1e-6
    slope = (params.ocv(np.array([0.5 + d]), 310.0) - params.ocv(np.array([0.5 - d]), 310.0))[0] / (2 * d)
    assert R_ocv[0] == pytest.approx(slope * 10.0 / (3600.0 * 5.0), rel=1e-9) and R_ocv[0] > 0
