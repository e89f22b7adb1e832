"""The shared event mechanism (busbarfem.events) and the linear-current ECM update."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from busbarfem.case.cells import CellModel
from busbarfem.cells.ecm import CellParameters, ECMState, advance, step_source
from busbarfem.events import Condition, EventKind, HoldCurrentControl, Landing, locate


def _threshold(value: float, limit: float) -> list[Condition]:
    return [Condition(kind=EventKind.VOLTAGE, key="k", margin=value - limit,
                      reached=value >= limit, reason="r")]


@pytest.mark.parametrize("func, limit, root", [
    (lambda h: h * h, 2.0, math.sqrt(2.0)),                          # smooth, convex
    (lambda h: 1.0 - math.exp(-h / 3.0), 0.5, 3.0 * math.log(2.0)),  # concave
    (lambda h: math.floor(4.0 * h) / 4.0, 1.25, 1.25),              # steps: bisection fallback
])
def test_locate_brackets_the_crossing_within_tolerance(func, limit, root):
    calls = []

    def trial(h):
        calls.append(h)
        return h, _threshold(func(h), limit)

    tol = 1e-3
    h, result, cond = locate(trial, 10.0, tol)
    assert result == h and cond.key == "k"
    assert func(h) >= limit                      # the returned step reaches the limit
    assert root - 1e-12 <= h <= root + tol       # and ends no later than tol after it
    assert calls[-1] == h                        # the solver state is that of h
    assert len(calls) < 30


def test_locate_leaves_scheduled_events_and_short_steps_alone():
    sched = [Condition(kind=EventKind.DURATION, key="d", margin=0.0, reached=True, reason="r")]
    assert EventKind.DURATION.landing is Landing.SCHEDULED
    assert EventKind.CURRENT.landing is Landing.THRESHOLD
    h, _, cond = locate(lambda h: (h, sched), 7.0, 0.01)
    assert h == 7.0 and cond.kind is EventKind.DURATION
    h, _, cond = locate(lambda h: (h, _threshold(h, 0.001)), 0.005, 0.01)
    assert h == 0.005 and cond is not None


def test_locate_follows_an_earlier_crossing_of_another_condition():
    def trial(h):
        return h, [Condition(EventKind.VOLTAGE, "late", h - 8.0, h >= 8.0, "late"),
                   Condition(EventKind.SOC, "early", h - 3.0, h >= 3.0, "early")]

    h, _, cond = locate(trial, 10.0, 1e-3)
    assert cond.key == "early" and 3.0 <= h <= 3.0 + 1e-3


def test_hold_control_rejects_large_changes_and_sizes_the_next_step():
    # the relative-change control (rtol None: on every held step)
    ctl = HoldCurrentControl(target_change=0.05, current_floor=0.01, rtol=None)
    ok, h_next = ctl.judge(np.array([-5.0]), np.array([-4.0]), 60.0)  # 25 % change
    assert not ok and h_next < 60.0
    ok, h_next = ctl.judge(np.array([-1.0]), np.array([-0.99]), 10.0)  # 1 % change
    assert ok and h_next == pytest.approx(20.0)  # grows at most 2x
    assert ctl.change([0.0], [0.001]) == pytest.approx(0.1)  # floor: 0.001 / 0.01
    # with the error control the first step of a hold is judged alike but not grown
    ctl = HoldCurrentControl(target_change=0.05, current_floor=0.01)
    ok, h_next = ctl.judge(np.array([-5.0]), np.array([-4.0]), 60.0)
    assert not ok and h_next < 60.0
    ok, h_next = ctl.judge(np.array([-1.0]), np.array([-0.99]), 10.0)
    assert ok and h_next == pytest.approx(10.0)


def test_hold_error_estimate_vanishes_for_an_exponential_and_grows_as_h_cubed():
    """The exponential shape is exact for a pure exponential decay (no error, the step
    doubles); for a current with a curved log (two exponentials) the estimate is close to
    the true charge error of the shape and scales as h^3."""
    ctl = HoldCurrentControl(current_floor=0.01)
    tau, h = 300.0, 40.0
    i = lambda t: -5.0 * np.exp(-t / tau)  # noqa: E731
    prev = (np.array([i(-h)]), h)
    decay = ctl.shape_decay(prev, np.array([i(0.0)]))
    assert decay[0] == pytest.approx(tau, rel=1e-12)
    assert ctl.error(prev[0], [i(0.0)], [i(h)], h, h, decay)[0] == pytest.approx(0.0, abs=1e-12)
    ok, h_next = ctl.judge(np.array([i(0.0)]), np.array([i(h)]), h, prev, decay)
    assert ok and h_next == pytest.approx(2 * h)

    def two(t):
        return -4.0 * np.exp(-t / tau) - 1.0 * np.exp(-t / 20.0)

    from busbarfem.cells.ecm import mean_shape
    errs = []
    for hh in (4.0, 8.0):
        prev = (np.array([two(-hh)]), hh)
        d = ctl.shape_decay(prev, np.array([two(0.0)]))
        est = ctl.error(prev[0], [two(0.0)], [two(hh)], hh, hh, d)[0]
        g = mean_shape(hh, d)[0]
        true_q = -4.0 * tau * (1 - np.exp(-hh / tau)) - 20.0 * (1 - np.exp(-hh / 20.0))
        shape_q = hh * ((1 - g) * two(0.0) + g * two(hh))
        true = abs(true_q - shape_q) / max(abs(hh / np.log(two(hh) / two(0.0))), hh)
        assert est == pytest.approx(true, rel=0.5)
        errs.append(est)
    assert errs[1] / errs[0] == pytest.approx(8.0, rel=0.2)


def test_linear_current_update_is_exact_for_a_ramp():
    """advance(..., current_start) integrates a current ramp exactly (RC and SOC), and
    step_source predicts the end-of-step voltage the advanced state gives."""
    cell = CellModel(capacity=5.0, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=0.02,
                     rc_pairs=[{"R": 0.015, "tau": 30.0}, {"R": 0.004, "tau": 400.0}])
    params = CellParameters(cell, 1)
    state = ECMState(soc=np.array([0.6]), v_rc=np.array([[-0.02, 0.003]]), capacity_Ah=np.array([5.0]))
    i0, i1, h = -5.0, -2.0, 45.0

    def rhs(t, y):
        i = i0 + (i1 - i0) * t / h
        return [-i / (3600 * 5.0), (0.015 * i - y[1]) / 30.0, (0.004 * i - y[2]) / 400.0]

    ref = solve_ivp(rhs, [0, h], [0.6, -0.02, 0.003], rtol=1e-12, atol=1e-14).y[:, -1]
    new = advance(params, state, np.array([i1]), h, current_start=np.array([i0]))
    np.testing.assert_allclose([new.soc[0], *new.v_rc[0]], ref, rtol=1e-9, atol=1e-12)
    E, R, _ = step_source(params, state, 298.15, h, current_start=np.array([i0]))
    v_pred = E[0] - R[0] * i1
    v_state = params.ocv(new.soc, 298.15)[0] - new.v_rc.sum() - 0.02 * i1
    assert v_pred == pytest.approx(v_state, abs=1e-12)


@pytest.mark.parametrize("func, limit, root, h0", [
    (lambda h: 0.01 * h, 1.003, 100.3, 300.0),                            # linear (CC voltage)
    (lambda h: 1.0 - math.exp(-h / 400.0), 0.05, -400.0 * math.log(0.95), 30.0),  # held current's decay
])
def test_locate_with_the_start_margin_lands_in_two_solves(func, limit, root, h0):
    # the secant from the step's start margin, moved tolerance/5 past the root, is
    # accepted by the landing test: at most two solves after the first trial (issue 20)
    calls = []

    def trial(h):
        calls.append(h)
        return h, _threshold(func(h), limit)

    tol = 0.5
    h, _, cond = locate(trial, h0, tol, first=trial(h0), margin_at_start=lambda key: func(0.0) - limit)
    assert func(h) >= limit and root - 1e-12 <= h <= root + tol
    assert calls[-1] == h
    assert len(calls) <= 3, calls


def test_locate_takes_the_shortest_step_when_reached_at_the_start():
    calls = []

    def trial(h):
        calls.append(h)
        return h, _threshold(1.0 + 0.01 * h, 1.0)

    h, _, cond = locate(trial, 300.0, 0.5, first=trial(300.0), margin_at_start=lambda key: 0.001)
    assert h == 0.25 and cond.key == "k" and calls == [300.0, 0.25]


def test_hold_decay_time_matches_the_cv_current_of_a_thevenin_cell():
    from busbarfem.events import hold_decay_time

    # 5 Ah, R0 20 mOhm, RC 15 mOhm / 30 s, OCV 3.0 + 1.2 SOC: after a 1C charge (RC at
    # steady state) tau = R0 3600 Q / (dOCV/dSOC) = 300 s; from rest the RC pair adds
    # R1/(R0 tau1) to the rate: 1/tau = 1/300 + 0.015/(0.02 * 30)
    params = CellParameters(CellModel(capacity=5.0, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=0.02,
                                      rc_pairs=[{"R": 0.015, "tau": 30.0}], initial_soc=0.8), 1)
    st = ECMState.initial(params)
    i = np.array([-5.0])
    st.v_rc[:] = 0.015 * i[:, None]
    assert hold_decay_time(params, st, np.array([298.15]), i) == pytest.approx(300.0, rel=1e-6)
    st.v_rc[:] = 0.0
    assert hold_decay_time(params, st, np.array([298.15]), i) == pytest.approx(1.0 / (1 / 300 + 0.025), rel=1e-6)
    assert hold_decay_time(params, st, np.array([298.15]), np.array([0.0])) is None
    # the first held step changes the current by the control's 5 %
    assert HoldCurrentControl().first_step(300.0) == pytest.approx(-300.0 * math.log(0.95))


@pytest.mark.parametrize("tau_i", [250.0, -250.0, 30.0, 1e7])
def test_exponential_current_update_is_exact_for_an_exponential(tau_i):
    """advance(..., HeldCurrent) integrates a current that moves exponentially (decay time
    tau_I, towards an asymptote of 0.3 A; negative tau_I: growing) from I0 to I1 exactly (RC
    and SOC), and step_source predicts the end-of-step voltage the advanced state gives."""
    from busbarfem.cells.ecm import HeldCurrent

    cell = CellModel(capacity=5.0, ocv=[[0.0, 3.0], [1.0, 4.2]], R0=0.02,
                     rc_pairs=[{"R": 0.015, "tau": 30.0}, {"R": 0.004, "tau": 400.0}])
    params = CellParameters(cell, 1)
    state = ECMState(soc=np.array([0.6]), v_rc=np.array([[-0.02, 0.003]]), capacity_Ah=np.array([5.0]))
    h, i0 = 45.0, -5.0
    e = math.exp(-h / tau_i)
    i1 = i0 * e + 0.3 * (1 - e)

    def rhs(t, y):
        i = i0 + (i1 - i0) * (-math.expm1(-t / tau_i)) / (-math.expm1(-h / tau_i))
        return [-i / (3600 * 5.0), (0.015 * i - y[1]) / 30.0, (0.004 * i - y[2]) / 400.0]

    ref = solve_ivp(rhs, [0, h], [0.6, -0.02, 0.003], rtol=1e-12, atol=1e-14).y[:, -1]
    held = HeldCurrent(np.array([i0]), np.array([tau_i]))
    new = advance(params, state, np.array([i1]), h, current_start=held)
    np.testing.assert_allclose([new.soc[0], *new.v_rc[0]], ref, rtol=1e-9, atol=1e-12)
    E, R, _ = step_source(params, state, 298.15, h, current_start=held)
    v_state = params.ocv(new.soc, 298.15)[0] - new.v_rc.sum() - 0.02 * i1
    assert E[0] - R[0] * i1 == pytest.approx(v_state, abs=1e-12)


def test_exponential_weights_join_the_linear_ones_continuously():
    from busbarfem.cells.ecm import held_current_weights, linear_current_weights, mean_shape

    tau, dt = np.array([30.0, 400.0]), 10.0
    w_lin = linear_current_weights(tau, dt)[1]
    for x in (1e-3, -1e-3):  # the switch to the interpolated small-x form
        a = held_current_weights(tau, dt, np.array([dt / (x * (1 - 1e-9))]))[1]
        b = held_current_weights(tau, dt, np.array([dt / (x * (1 + 1e-9))]))[1]
        np.testing.assert_allclose(a, b, rtol=1e-9)
    np.testing.assert_allclose(held_current_weights(tau, dt, np.array([np.inf]))[1][0], w_lin, rtol=1e-15)
    np.testing.assert_allclose(held_current_weights(tau, dt, np.array([dt / 1e-7]))[1][0], w_lin, rtol=1e-6)
    assert mean_shape(dt, None) == 0.5
    # the mean of g: 1/(1 - e^-x) - 1/x (its series below |x| = 0.01)
    for x in (0.5, 0.0099, 0.0101, -2.0):
        assert float(mean_shape(dt, np.array([dt / x]))[0]) == pytest.approx(1 / -math.expm1(-x) - 1 / x, rel=1e-9)
