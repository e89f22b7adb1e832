"""Stepping around CC-CV events (issue 20: "no step restarts from a tiny dt after an event").

The Thevenin cell of tests/verification/test_events.py (5 Ah, R0 = 20 mOhm, one RC pair
15 mOhm / 30 s, OCV = 3.0 + 1.2 SOC) is charged at 1C to 4.2 V, then held at 4.2 V until
C/50. The reference is integrated here with scipy's solve_ivp (rtol 1e-12), independently
of busbarfem. Asserted, for dt = 60 s and 300 s:

- the CC -> CV switch is located in at most two solves after the first trial of the step
  (secant from the step's start margin), no earlier than the crossing and less than the
  event tolerance after it;
- the first held step is sized by the hold control's own decay-time estimate: accepted on its
  first attempt and between 0.5 and 2 times the step over which the reference current
  falls by the control's 5 % target (not a tiny dt that grows back over many steps);
- no held step is rejected; the cut-off is located in at most two further solves;
- the held current history equals the reference at every accepted time within 1e-3 of 1C
  and decreases monotonically.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import busbarfem.cells.lumped as lumped_mod
from busbarfem.case.cells import CellModel
from busbarfem.case.loads import Load

Q, R0, R1, TAU = 5.0, 0.020, 0.015, 30.0
TOL = 0.01
CELL = dict(capacity=Q, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=R0, rc_pairs=[{"R": R1, "tau": TAU}],
            initial_soc=0.5)


def ocv(soc):
    return 3.0 + 1.2 * soc


def cv_current(y):
    return (ocv(y[0]) - y[1] - 4.2) / R0


@pytest.fixture(scope="module")
def reference():
    """(t_switch, dense CV solution) of the CC-CV, by solve_ivp."""
    def cc(t, y):
        return [Q / (3600 * Q), (-R1 * Q - y[1]) / TAU]

    def reach(t, y):
        return ocv(y[0]) - y[1] + R0 * Q - 4.2

    reach.terminal = True
    s1 = solve_ivp(cc, [0, 1e5], [0.5, 0.0], events=reach, rtol=1e-12, atol=1e-14, method="LSODA")
    t1, y1 = s1.t_events[0][0], s1.y_events[0][0]

    def cv(t, y):
        i = cv_current(y)
        return [-i / (3600 * Q), (R1 * i - y[1]) / TAU]

    s2 = solve_ivp(cv, [t1, t1 + 4000.0], y1, rtol=1e-12, atol=1e-14, method="LSODA", dense_output=True)
    return t1, s2.sol


@pytest.mark.parametrize("dt", [60.0, 300.0])
def test_cccv_steps_around_events_without_wasted_attempts(monkeypatch, reference, dt):
    t_switch, sol = reference
    trials = []
    orig = lumped_mod.LumpedSystem.trial

    def counting(self, t, h, step, start, i_start):
        trials.append((step, t, h, self.controller.step_index))
        return orig(self, t, h, step, start, i_start)

    monkeypatch.setattr(lumped_mod.LumpedSystem, "trial", counting)
    res = lumped_mod.run_lumped(CellModel(**CELL), Load(steps=["Charge at 1C until 4.2 V", "Hold at 4.2 V until C/50"],
                                                        maximum_cell_state_of_charge=1.0),
                                1, 1, dt=dt, event_tolerance=TOL)
    assert "cut-off current reached" in res.stop_reason
    ts = res.events[0].time
    assert t_switch - 1e-6 <= ts <= t_switch + TOL

    per_step: dict[int, list] = {}
    for step, t, h, idx in trials:
        per_step.setdefault(step, []).append((t, h, idx))
    switch_step = next(s for s, v in per_step.items() if v[0][0] < ts <= v[0][0] + v[0][1] + 1e-9)
    assert len(per_step[switch_step]) <= 3, per_step[switch_step]  # first trial + <= 2 to locate

    held = [s for s, v in per_step.items() if v[0][2] == 1]
    last = held[-1]
    for s in held[:-1]:
        assert len(per_step[s]) == 1, (s, per_step[s])  # no held step rejected
    assert len(per_step[last]) <= 3, per_step[last]  # the cut-off: first trial + <= 2

    # the first held step against the reference's 5 % decay time
    i0 = abs(cv_current(sol(ts)))
    h5 = brentq(lambda h: abs(cv_current(sol(ts + h))) - 0.95 * i0, 1e-6, 2000.0)
    h_first = per_step[held[0]][0][1]
    assert 0.5 * h5 <= h_first <= 2.0 * h5, (h_first, h5)

    k = res.time > ts + 1e-9
    current = np.abs(res.module_current[k])
    ref = np.array([abs(cv_current(sol(t))) for t in res.time[k]])
    assert np.max(np.abs(current - ref)) <= 1e-3 * Q
    assert np.all(np.diff(current) < 0.0)
