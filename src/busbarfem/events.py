r"""Terminations and step-size control shared by the 3D and the lumped time loops.

A time loop asks two things of a step from ``t`` to ``t + h``:

1. *Did a termination happen inside it, and where exactly?* Terminations are typed
   :class:`Condition` records (an :class:`EventKind` plus a signed ``margin`` that is
   >= 0 once the limit is reached). Scheduled ones (a step duration, the end of a profile,
   the end time) are landed on by shortening the step to their time beforehand
   (:meth:`busbarfem.loads.LoadController.next_event_time`). Threshold ones (a cell
   voltage, a cut-off current, an SOC, a temperature) are located by :func:`locate`: the
   step is re-solved with a shorter ``h`` and the root of ``margin(h)`` is found by the
   Illinois (modified regula falsi) method, safeguarded by bisection, until it is
   bracketed within ``tolerance`` seconds, or until a secant puts the crossing less
   than 0.3-0.5 ``tolerance`` before a reached trial. The step returned is the shortest one found
   that reaches the limit, so the run ends (or switches steps) no more than
   ``tolerance`` after the true crossing, whatever the step size.

2. *Was the step accurate enough?* During a held voltage (or power) the current changes
   within the step. The cell update then takes the current from its start to its end
   value in a shape: linear in time on the first step of a hold, after that the
   exponential with the decay time the previous held step showed (exact for one decaying
   exponential; the RC pairs are still integrated exactly for that current,
   :func:`busbarfem.cells.ecm.step_source`, :class:`busbarfem.cells.ecm.HeldCurrent`).
   :class:`HoldCurrentControl` sizes the first step of a hold from the cells' decay time
   (:func:`hold_decay_time`) and the current change (about ``target_change``, rejected
   above twice that), every later one from a local error estimate of the step's charge
   held to ``rtol`` of the current (rejected above twice that). The end of a CV charge is
   then independent of the nominal ``dt``, and the steps grow as the decay settles into
   one exponential. A cut-off current is located on ``ln(I_cut / |I|)``
   (:attr:`Condition.decay_limit`), linear in time for such a decay.

Both loops call the same two pieces: :func:`locate` with a ``trial(h)`` that re-solves
the step from its saved start, and :class:`HoldCurrentControl` for held-voltage and
held-power steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum


class Landing(Enum):
    """How a time loop lands on an event."""

    SCHEDULED = "scheduled"  # its time is known in advance: the step is cut to it
    THRESHOLD = "threshold"  # a quantity crosses a limit: located by root finding


class EventKind(Enum):
    """What ended a step or stopped the run."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    SOC = "soc"
    TEMPERATURE = "temperature"
    DURATION = "duration"
    PROFILE_END = "profile_end"
    END_TIME = "end_time"

    @property
    def landing(self) -> Landing:
        """Scheduled (known time) or threshold (located by root finding)."""
        if self in (EventKind.DURATION, EventKind.PROFILE_END, EventKind.END_TIME):
            return Landing.SCHEDULED
        return Landing.THRESHOLD


@dataclass(frozen=True)
class Condition:
    """One termination condition evaluated on a state.

    Attributes:
        kind: what is compared.
        key: which condition, stable between evaluations (e.g. ``"step.until_voltage"``,
            ``"load.minimum_cell_voltage"``): the root finder follows one key.
        margin: signed distance to the limit in the quantity's unit; >= 0 past it.
        reached: the condition holds (normally ``margin >= 0``).
        reason: human-readable text for the event.
        stop: it stops the run (a limit) rather than ending the step.
        cell: the cell that triggered it, if any.
        voltage_value: the voltage of a voltage condition (for CC -> CV hand-over).
        decay_limit: the margin is ``decay_limit - |x|`` of a quantity ``x`` that decays
            about exponentially (a held-voltage current): the root finder interpolates
            ``ln(decay_limit / |x|)``, linear in time for an exponential (None: the margin).
    """

    kind: EventKind
    key: str
    margin: float
    reached: bool
    reason: str
    stop: bool = False
    cell: str | None = None
    voltage_value: float | None = None
    decay_limit: float | None = None

    @property
    def search_margin(self) -> float:
        """The margin as the root finder interpolates it (same sign, see ``decay_limit``)."""
        L = self.decay_limit
        if L is None or not L > 0.0 or not math.isfinite(self.margin):
            return self.margin
        return math.log(L / max(L - self.margin, 1e-300 * L))


def first_reached(conditions: Sequence[Condition]) -> Condition | None:
    """The first reached condition (the list is in priority order), or None."""
    return next((c for c in conditions if c.reached), None)


def margin_of(conditions: Sequence[Condition], key: str, search: bool = False) -> float:
    """Margin of the condition ``key`` (-inf when it is not active in this state); with
    ``search`` as the root finder interpolates it (:attr:`Condition.search_margin`)."""
    return next((c.search_margin if search else c.margin for c in conditions if c.key == key), -math.inf)


#: Terminal targets under which the cell currents change within a step even with the
#: cell parameters frozen (held voltage, held power, a resistor across the terminals):
#: these steps use the linear-in-time current update and :class:`HoldCurrentControl`.
VARYING_CURRENT_MODES = ("voltage", "power", "resistance")

Trial = Callable[[float], tuple[object, list[Condition]]]


def locate(trial: Trial, h: float, tolerance: float, first=None,
           margin_at_start: Callable[[str], float] | None = None, max_trials: int = 60):
    """Shorten a step that reached a threshold so that it ends at the crossing.

    Args:
        trial: ``trial(h) -> (result, conditions)`` re-solves the step from its start with
            length ``h`` and returns whatever the caller needs plus the evaluated
            conditions at the end of it. It may change solver state: on return the state
            is that of the last call, which is always at the returned ``h``.
        h: the step length tried first.
        tolerance: bracket width [s] at which the search stops.
        first: ``trial(h)`` already computed (saves one solve).
        margin_at_start: margin of a condition key at the start of the step (h = 0), if
            known (as :func:`margin_of` with ``search``); else the first iteration bisects.
        max_trials: safety limit on re-solves.

    Returns:
        ``(h_event, result, condition)``: the step to take, the trial result at it and the
        reached condition (None if nothing was reached at ``h``). If the first reached
        condition is scheduled, or ``h <= tolerance``, ``h`` is returned unchanged.
    """
    result, conds = first if first is not None else trial(h)
    cond = first_reached(conds)
    if cond is None or cond.kind.landing is Landing.SCHEDULED or h <= tolerance:
        return h, result, cond
    lo, hi = 0.0, h
    g_hi = cond.search_margin
    g_lo = margin_at_start(cond.key) if margin_at_start is not None else None
    if g_lo is not None and math.isfinite(g_lo) and g_lo >= 0.0 and h > tolerance:
        # reached already at the start of the step (the last step's end state fell just
        # short of the limit in its own trial): the crossing is at the start, the step to
        # take is the shortest one (no bisection from h down to the tolerance)
        res_x, conds_x = trial(0.5 * tolerance)
        reached = first_reached(conds_x)
        if reached is not None and reached.kind.landing is Landing.THRESHOLD:
            return 0.5 * tolerance, res_x, reached
        lo, g_lo = 0.5 * tolerance, min(margin_of(conds_x, cond.key, True), -1e-300)
        if not math.isfinite(g_lo):
            g_lo = None
    g_lo_true = g_lo  # the last not-reached margin, unscaled by Illinois (for the landing test)
    prev = (hi, g_hi)  # the last trial of this key (for a local secant slope)
    last_at_hi = True
    side = 0  # +1: the last new point replaced hi, -1: it replaced lo (Illinois)
    n = slow = 0
    while hi - lo > tolerance and n < max_trials:
        n += 1
        usable = (g_lo is not None and math.isfinite(g_lo) and math.isfinite(g_hi)
                  and g_lo < 0.0 <= g_hi and g_hi > g_lo)
        if usable and slow < 2:
            # the secant root, biased by tolerance/5 to the reached side: a good prediction
            # then ends the search at once (see _secant_lands)
            x = hi - g_hi * (hi - lo) / (g_hi - g_lo) + 0.2 * tolerance
            # step at least tolerance/2 inside the bracket, so a root approached from one
            # side is bracketed within the tolerance in one more trial
            x = min(max(x, lo + 0.5 * tolerance), hi - 0.5 * tolerance)
        else:
            x = 0.5 * (lo + hi)
        width = hi - lo
        res_x, conds_x = trial(x)
        reached = first_reached(conds_x)
        if reached is not None and reached.kind.landing is Landing.THRESHOLD:
            same = reached.key == cond.key
            if not same:
                # an earlier crossing of another condition: follow that one
                g_lo = margin_at_start(reached.key) if margin_at_start is not None and lo == 0.0 else None
                g_lo_true = g_lo
                side = 0
            elif side == 1 and g_lo is not None:
                g_lo *= 0.5
            hi, g_hi, result, cond = x, reached.search_margin, res_x, reached
            side, last_at_hi = 1, True
            if same and (_secant_lands(lo, g_lo_true, hi, g_hi, tolerance)
                         or _secant_lands(*prev, hi, g_hi, tolerance, within=0.5)):
                break  # the crossing is predicted just before this reached end
            prev = (x, g_hi)
        else:
            g = margin_of(conds_x, cond.key, True)
            if side == -1:
                g_hi *= 0.5
            lo, g_lo = x, (g if g < 0.0 else -1e-300)
            g_lo_true = g_lo
            prev = (x, g)
            side, last_at_hi = -1, False
        # regula falsi can creep from one side: bisect after two trials that did not
        # halve the bracket
        slow = slow + 1 if (hi - lo) > 0.5 * width else 0
    if not last_at_hi:
        result, conds = trial(hi)
        reached = first_reached(conds)
        cond = reached if reached is not None else cond
    return hi, result, cond


def _secant_lands(x0: float, g0: float | None, hi: float, g_hi: float, tolerance: float,
                  within: float = 0.3) -> bool:
    """A reached trial at ``hi`` (margin ``g_hi >= 0``) is close enough: the secant through
    it and another trial ``(x0, g0)`` of the same condition (the last not-reached one:
    ``within = 0.3``; the previous trial, a local slope: 0.5) puts the crossing less than
    ``within * tolerance`` before ``hi``. The true crossing is then within ``tolerance``
    before ``hi`` unless the margin's slope at ``hi`` is below ``within`` times the secant's."""
    if g0 is None or not (math.isfinite(g0) and math.isfinite(g_hi)) or g_hi < 0.0 or x0 == hi:
        return False
    slope = (g_hi - g0) / (hi - x0)
    return slope > 0.0 and g_hi / slope <= within * tolerance


class HoldCurrentControl:
    """Step-size control and current shape of held-voltage (held-power, resistor) steps.

    The first step of a hold (no earlier held step to compare with) is judged by the
    relative change of the cell currents: aimed at ``target_change``, rejected above twice
    that. Every later step uses an exponential current shape and a local error estimate:

    * shape (:meth:`shape_decay`): per cell the decay time the previous held step showed,
      ``tau_I = h_prev / ln(I_prev / I_start)`` (an exponential through the step's two
      ends, exact for a current decaying exponentially with ``tau_I``; linear in time when
      the current changed sign or not at all);
    * error (:meth:`error`): the charge of the step under that shape against the charge
      of ``exp(quadratic in t)`` through the previous step's start, this step's start and
      its end (a quadratic of the current itself when a current changes sign), converted to
      a current error by the cell's decay time (an SOC error ``dQ`` shifts a held current
      by ``dQ / tau``): ``err_c = |dQ_c| / max(|tau_c|, h)``;
    * the step is rejected when ``max_c err_c / (rtol max(|I_c|, floor))`` exceeds 2, and
      the next (or retried) step is ``h (1 / ratio)^(1/3)`` (a third-order estimate), at
      most twice the last.

    A pure exponential decay is integrated exactly, so the steps grow as the current's
    decay becomes one exponential (the end of a CV charge).

    Args:
        target_change: aimed-at max relative change of a cell current over the first step [-].
        current_floor: currents below this [A] count as this (a vanishing current must
            not force vanishing steps).
        rtol: aimed-at local current error per step, relative to the cell current [-];
            None: the relative-change control on every step (and the linear shape).
    """

    def __init__(self, target_change: float = 0.05, current_floor: float = 1e-3, rtol: float | None = 1e-4):
        self.target_change = float(target_change)
        self.current_floor = float(current_floor)
        self.rtol = None if rtol is None else float(rtol)

    def change(self, start, end) -> float:
        """Largest relative change of the cell currents between two arrays [-]."""
        worst = 0.0
        for a, b in zip(start, end, strict=True):
            worst = max(worst, abs(b - a) / max(abs(b), abs(a), self.current_floor))
        return worst

    def judge(self, start, end, h: float, previous=None, decay=None) -> tuple[bool, float]:
        """``(accept, h_next)`` after a trial of length ``h`` from the cell currents
        ``start`` to ``end``.

        ``previous = (I_prev, h_prev[, jump])``: the start currents and the length of the
        previous held step, and the jump of the currents between its end and this start
        (None: the first step of the hold, judged by the relative change; rejected above
        twice the target); ``decay``: the shape's decay times of the trial
        (:meth:`shape_decay`). ``h_next`` is the suggested length of the retried (rejected)
        or of the next (accepted) step.
        """
        if previous is not None and self.rtol is not None:
            jump = previous[2] if len(previous) > 2 else None
            r = self.error_ratio(previous[0], start, end, previous[1], h, decay, jump)
            if r <= 0.0:
                return True, 2.0 * h
            if r > 2.0:
                return False, h * max(0.2, 0.9 * r ** (-1.0 / 3.0))
            return True, h * min(2.0, 0.9 * r ** (-1.0 / 3.0))
        r = self.change(start, end)
        if r <= 0.0:
            return True, 2.0 * h
        ratio = math.sqrt(self.target_change / r)  # the change grows ~ linearly with h
        if r > 2.0 * self.target_change:
            return False, h * max(0.2, 0.9 * ratio)
        if self.rtol is None:
            return True, h * min(2.0, ratio)
        # the first step of an error-controlled hold: not grown; where its shape came from
        # the decay time at the start (the current's log-slope there), its error estimate
        # against that slope sizes the next step (at most halved)
        h_next = h * min(1.0, ratio)
        if decay is not None:
            import numpy as np

            d = np.asarray(decay, dtype=float)
            if np.all(np.isfinite(d) & (d != 0.0)):
                hs = 1e-2 * h
                prev = np.asarray(start, dtype=float) * np.exp(hs / d)
                e = self.error_ratio(prev, start, end, hs, h, decay)
                if e > 0.0:
                    h_next = min(h_next, h * max(0.5, 0.9 * e ** (-1.0 / 3.0)))
        return True, h_next

    def shape_decay(self, previous, start):
        """Per-cell decay times [s] of the exponential current shape of a held step that
        starts at the currents ``start`` after a held step of ``previous = (I_prev,
        h_prev)``: ``h_prev / ln(I_prev / I_start)`` where both have one sign and differ,
        else inf (linear in time). None without ``previous`` (or with ``rtol`` None)."""
        import numpy as np

        if previous is None or self.rtol is None:
            return None
        ia, i0 = np.asarray(previous[0], dtype=float), np.asarray(start, dtype=float)
        ok = (ia * i0 > 0.0) & (ia != i0)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = previous[1] / np.log(np.where(ok, ia / np.where(ok, i0, 1.0), 2.0))
        return np.where(ok, tau, np.inf)

    def error(self, i_prev, start, end, h_prev: float, h: float, decay, jump=None) -> "np.ndarray":
        """Per-cell local current error [A] of a held step (see the class docstring).

        ``jump``: the currents' jump at the start of this step (a splitting error of the
        last step, e.g. the temperature it ended at: first order in the step), counted as
        the charge error ``|jump| h / 2`` scaled to this step, ``h / h_prev``."""
        import numpy as np

        from busbarfem.cells.ecm import mean_shape

        ia, i0, i1 = (np.asarray(v, dtype=float) for v in (i_prev, start, end))
        # reference charge: exp(quadratic) through the three currents (one sign), else a
        # quadratic of the current, integrated over [0, h] by 5-point Gauss-Legendre
        xg, wg = np.polynomial.legendre.leggauss(5)
        tg = 0.5 * h * (xg + 1.0)
        one_sign = (ia * i0 > 0.0) & (i0 * i1 > 0.0)
        sgn = np.sign(i0)
        with np.errstate(divide="ignore", invalid="ignore"):
            la, l0, l1 = (np.log(np.where(one_sign, np.abs(v), 1.0)) for v in (ia, i0, i1))
        ref = np.empty_like(i0)
        for vals, log in (((la, l0, l1), True), ((ia, i0, i1), False)):
            ya, y0, y1 = vals
            # Newton form through (-h_prev, ya), (0, y0), (h, y1)
            d1 = (y1 - y0) / h
            d0 = (y0 - ya) / h_prev
            c = (d1 - d0) / (h + h_prev)
            b = d1 - c * h
            y = y0[:, None] + b[:, None] * tg + c[:, None] * tg * tg
            q = 0.5 * h * ((np.exp(y) * sgn[:, None]) if log else y) @ wg
            ref = np.where(one_sign, q, ref) if log else np.where(one_sign, ref, q)
        g = mean_shape(h, decay)
        dq = np.abs(ref - h * ((1.0 - g) * i0 + g * i1))
        if jump is not None:
            dq = dq + 0.5 * np.abs(np.asarray(jump, dtype=float)) * h * (h / h_prev)
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.abs(h / np.log(np.where(i0 * i1 > 0.0, i1 / np.where(i0 != 0, i0, 1.0), np.e)))
        tau = np.where(np.isfinite(tau), np.maximum(tau, h), np.inf)
        return np.abs(dq) / tau

    def error_ratio(self, i_prev, start, end, h_prev: float, h: float, decay, jump=None) -> float:
        """Largest local current error over its tolerance ``rtol max(|I|, floor)`` [-]."""
        import numpy as np

        err = self.error(i_prev, start, end, h_prev, h, decay, jump)
        scale = self.rtol * np.maximum(np.maximum(np.abs(np.asarray(start, dtype=float)),
                                                  np.abs(np.asarray(end, dtype=float))), self.current_floor)
        return float(np.max(err / scale)) if err.size else 0.0

    def first_step(self, tau: float) -> float:
        """Length of the first step of a hold from the current's decay time ``tau`` [s]:
        the step over which an exponential decay changes the current by ``target_change``."""
        return -tau * math.log1p(-self.target_change)


def hold_decay_time(params, state, T, current, floor: float = 1e-3) -> float | None:
    """Decay time [s] of the cell currents at the start of a held terminal voltage.

    With ``V = OCV(SOC) - sum_k V_RC,k - R0 I`` held, ``dSOC/dt = -I / (3600 Q)`` and
    ``dV_RC,k/dt = (R_k I - V_RC,k) / tau_k``, the current's rate at the start is
    ``dI/dt = (-dOCV/dSOC I / (3600 Q) - sum_k (R_k I - V_RC,k) / tau_k) / R0``: after a
    constant-current phase (RC pairs at steady state) ``tau = R0 3600 Q / (dOCV/dSOC)``,
    from rest the RC pairs' relaxation dominates. Returns the smallest
    ``max(|I|, floor) / |dI/dt|`` of the cells, None when no current changes.

    Args:
        params: :class:`busbarfem.cells.ecm.CellParameters`; state: its ``ECMState``;
        T: cell temperatures [K]; current: cell currents at the start of the hold [A].
    """
    import numpy as np

    from busbarfem.cells.ecm import _ocv_slope

    i = np.asarray(current, dtype=float).ravel()
    slope = np.asarray(_ocv_slope(params, state.surface_soc, T), dtype=float).ravel()
    R0 = np.asarray(params.R0(state.soc, T), dtype=float).ravel()
    rate = -slope * i / (3600.0 * np.asarray(state.capacity_Ah, dtype=float).ravel())
    if params.n_rc:
        R = np.asarray(params.rc_R(state.soc, T), dtype=float).reshape(i.size, -1)
        rate = rate - ((R * i[:, None] - state.v_rc) / np.asarray(params.rc_tau, dtype=float)).sum(axis=1)
    rel = np.abs(rate / np.where(R0 > 0.0, R0, np.inf)) / np.maximum(np.abs(i), floor)
    worst = float(np.max(rel)) if rel.size else 0.0
    return 1.0 / worst if worst > 0.0 and math.isfinite(worst) else None


class Runaway(Exception):
    """No steady state / unbounded temperature growth (a result, not a crash).

    Attributes:
        where: optional place of the hot spot (``x``, ``region``).
    """

    def __init__(self, message: str, where: dict | None = None):
        super().__init__(message)
        self.where = where or {}


class StopKind(Enum):
    """Why a run ended (the stop reason's text says the details)."""

    STEADY = "steady state reached"
    END_TIME = "end time reached"
    LOAD = "load event"            # a stop condition of the load (limit, end of the steps)
    TEMPERATURE_LIMIT = "temperature limit"
    RUNAWAY = "thermal runaway"
    CONTRIBUTION = "contribution"  # a physics contribution stopped the run
    POWER_LIMIT = "power not deliverable"
    FAILED = "solver failure"
