"""PyBaMM cells as a batch model (busbarfem.cells.pybamm_cell) against standalone PyBaMM."""

import warnings

import numpy as np
import pytest

pybamm = pytest.importorskip("pybamm")

from busbarfem.cells.pybamm_cell import PyBaMMCells  # noqa: E402


@pytest.fixture(scope="module")
def run():
    """Three SPMe Chen2020 cells from SOC 1 for 60 x 10 s: at 1C (5 A), at 0.5C, and at 1C
    again (the batch must not mix cells)."""
    cells = PyBaMMCells(3, "SPMe", "Chen2020", initial_soc=1.0, dt=10.0)
    current = np.array([5.0, 2.5, 5.0])
    rows = []
    for _ in range(60):
        rows.append(cells.step(current, 298.15, 10.0))
        cells.commit()
    return cells, current, rows


def test_spme_cell_through_the_batch_reproduces_standalone_pybamm(run):
    """1C discharge: the wrapper's end-of-step voltage equals PyBaMM's own SPMe solve to
    < 2 mV (issue 17; measured 0.02 mV); a 0.5C cell in the same batch too."""
    cells, current, rows = run
    t = 10.0 * np.arange(1, 61)
    V = np.array([r["voltage"] for r in rows])
    for col, amps in ((0, 5.0), (1, 2.5)):
        pv = pybamm.ParameterValues("Chen2020")
        pv.set_initial_state(1.0)
        pv.update({"Current function [A]": amps})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = pybamm.Simulation(pybamm.lithium_ion.SPMe(), parameter_values=pv).solve([0.0, 600.0])
        ref = sol["Voltage [V]"](t)
        assert np.max(np.abs(V[:, col] - ref)) < 2e-3
    np.testing.assert_allclose(V[:, 2], V[:, 0], atol=1e-9)
    assert cells.time_in_model > 0.0


def test_step_linearisation_predicts_another_current(run):
    """V_end(I') = E - R I' from the step at I predicts a step at I' = 1.1 I to < 0.5 mV
    (measured 0.19 mV: the Butler-Volmer curvature) and at 1.01 I to < 5 uV (the error
    is second order), R is of the cell's order (10-100 mOhm), the heat is positive."""
    cells, current, rows = run
    lin = cells.step(current, 298.15, 10.0)
    for factor, tol in ((1.1, 5e-4), (1.01, 5e-6)):
        other = cells.step(factor * current, 298.15, 10.0)
        pred = lin["E"] - lin["R"] * factor * current
        assert np.max(np.abs(pred - other["voltage"])) < tol
    assert np.all((lin["R"] > 0.01) & (lin["R"] < 0.1))
    assert np.all(lin["heat"] > 0.0)
    # step() without commit() leaves the state: the same step again gives the same voltage
    np.testing.assert_allclose(cells.step(current, 298.15, 10.0)["voltage"], lin["voltage"], atol=1e-12)


def test_commit_at_the_solved_current_and_instantaneous_step():
    """commit(I') after a step at I: within 10 dI the end state is interpolated (the next
    step's voltage equals that of an exact step at I' to < 1 uV, the error being second
    order), farther away the step is integrated again (equal to 1e-9 V); dt = 0 leaves the
    state alone and gives the instantaneous voltage (below the rest voltage under load)."""
    I = np.array([5.0, 5.0])
    cells = PyBaMMCells(2, "SPMe", "Chen2020", initial_soc=0.8)
    exact = PyBaMMCells(2, "SPMe", "Chen2020", initial_soc=0.8)
    rest = cells.step(np.zeros(2), 298.15, 0.0)["voltage"]
    inst = cells.step(I, 298.15, 0.0)
    assert np.all(inst["voltage"] < rest - 0.03) and np.allclose(inst["voltage"], inst["E"] - inst["R"] * I)
    for other in (np.array([5.005, 4.995]), np.array([5.5, 4.5])):
        cells.step(I, 298.15, 10.0)
        cells.commit(other)
        exact.step(other, 298.15, 10.0)
        exact.commit()
        a, b = cells.step(I, 298.15, 10.0)["voltage"], exact.step(I, 298.15, 10.0)["voltage"]
        tol = 1e-6 if other[0] < 5.1 else 1e-9
        assert np.max(np.abs(a - b)) < tol, (other, a - b)
