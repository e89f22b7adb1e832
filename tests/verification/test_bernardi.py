"""Bernardi heat: a published worked example for an 18650 NMC/graphite cell at 1C, 50 % SOC."""

import numpy as np
import pytest

from busbarfem.cells.bernardi import bernardi_heat


def test_bernardi_18650_worked_example():
    # I = 3 A, Vb = 16.5 cm^3, Eoc - V = 3.85 - 3.72 = 0.13 V, dU/dT = -1e-4 V/K, 298 K.
    q_irr, q_rev, q = bernardi_heat(3.0, 3.72, 3.85, 298.0, -1.0e-4, 16.5e-6)
    assert q_irr == pytest.approx(23_636, rel=5e-3)
    assert q_rev == pytest.approx(5_418, rel=5e-3)  # positive: discharge with dU/dT < 0
    assert q == pytest.approx(29_054, rel=5e-3)


def test_reversible_heat_changes_sign_with_current_and_dudt():
    q_irr, q_rev, _ = bernardi_heat(np.array([3.0, -3.0, 3.0]), np.array([3.72, 3.98, 3.72]),
                                    3.85, 298.0, np.array([-1e-4, -1e-4, 1e-4]), 16.5e-6)
    assert np.all(q_irr > 0)  # charge: V > OCV and I < 0, still dissipative
    assert q_rev[0] > 0 and q_rev[1] < 0 and q_rev[2] < 0
