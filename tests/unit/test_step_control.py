"""The adaptive step's SOC cap: a ladder of lengths, so a capped step repeats to the last bit.

Against plain arithmetic: the rung is the largest ``2**(k/16)`` s not above the length
that moves the most loaded cell's SOC by ``SOC_STEP``, and the controller takes it as the
next ``dt`` exactly (not ``h * (cap / h)``), so the thermal factorisation keyed by dt is
reused. The old cap (halve the overshoot) gave a new length every step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from busbarfem.coupling.stepper import StepSizeController, TrialResult
from busbarfem.coupling.transient import SOC_RUNGS, SOC_STEP, FEMSystem, soc_rung


@pytest.mark.parametrize("h", [1e-3, 0.37, 1.0, 2.0, 29.999999, 30.0, 107.99, 108.0, 1234.5, 2.0 ** (23 / 16)])
def test_rung_is_the_largest_ladder_length_not_above(h):
    r = soc_rung(h)
    k = round(SOC_RUNGS * math.log2(r))
    assert r == 2.0 ** (k / SOC_RUNGS)  # on the ladder, bit for bit
    assert r <= h < 2.0 ** ((k + 1) / SOC_RUNGS) * (1 + 1e-12)


def test_rungs_of_random_lengths():
    rng = np.random.default_rng(7)
    for h in 10.0 ** rng.uniform(-2, 4, 2000):
        r = soc_rung(h)
        assert r <= h and h / r < 2.0 ** (1 / SOC_RUNGS) * (1 + 1e-12)


class _Cells:
    def __init__(self, current, capacity_Ah):
        self.current = np.asarray(current, dtype=float)
        self.capacity_Ah = np.asarray(capacity_Ah, dtype=float)


class _Model:
    def __init__(self, cells):
        self.cells = cells


def _system(current, capacity_Ah):
    s = object.__new__(FEMSystem)  # step_cap reads only model.cells
    s.model = _Model(_Cells(current, capacity_Ah))
    return s


def test_cap_keeps_the_soc_change_at_or_below_soc_step():
    # 4s2p at 1C: 5 Ah cells, the most loaded of the pair carries ~5 A
    s = _system([4.9, 5.1, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0])
    cap = s.step_cap(100.0)
    h_soc = SOC_STEP * 3600 * 5.0 / 5.1
    assert cap == soc_rung(h_soc)
    assert cap <= h_soc < cap * 2.0 ** (1 / SOC_RUNGS)
    assert _system([0.0, 0.0], [5.0, 5.0]).step_cap(100.0) is None  # no current, no cap


def test_capped_step_repeats_while_the_currents_drift():
    """The controller's dt stays the same bit pattern while the currents move by ~1 %, and
    every step's SOC change stays at or below SOC_STEP; the old rule (growth
    0.5 (1 + SOC_STEP / dsoc) when over) gave a new length each step, above SOC_STEP."""
    ctl = StepSizeController(30.0, dt_max=120.0, adaptive=True, max_temperature_change=10.0)
    calm = TrialResult(payload=None, dT=0.1)
    h, dts, old_h, old_dts = 30.0, [], 30.0, []
    i0 = SOC_STEP * 3600 * 5.0 / 2.0 ** (107.8 / SOC_RUNGS)  # 5.07 A: 0.8 of a rung above 2**(107/16) s
    for n in range(30):
        i = i0 * (1 + 0.0004 * n)  # slow drift: 1.2 % over the run, inside one rung
        sys_ = _system([i, 0.98 * i], [5.0, 5.0])
        h = ctl.next_dt(h, False, calm, sys_.step_cap(h))
        dts.append(h)
        assert i * h / (3600 * 5.0) <= SOC_STEP * (1 + 1e-12)
        dsoc = i * old_h / (3600 * 5.0)  # the old cap, for contrast
        g = 1.5 if dsoc <= SOC_STEP else min(1.5, 0.5 * (1 + SOC_STEP / dsoc))
        old_h = min(old_h * g, 120.0)
        old_dts.append(old_h)
    tail = dts[5:]
    assert len(set(tail)) == 1, tail
    assert tail[0] == 2.0 ** (107 / SOC_RUNGS)
    assert len(set(old_dts[5:])) > 10  # what the thermal factorisation saw before
