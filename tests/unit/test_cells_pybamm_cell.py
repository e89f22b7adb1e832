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
